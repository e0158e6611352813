"""Validation of built-in kinds against the official schemas, plus the checks the real server
makes in code (names, required fields) that the schemas do not carry.

One walk over the object finds type errors, missing required fields and unknown fields (which
are dropped, as decoding into the server's Go structs drops them).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from devcluster import schemas

_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")

SUBDOMAIN_MESSAGE = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)
LABEL_MESSAGE = (
    "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and "
    "must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex "
    "used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
)

# Kinds whose names must be DNS labels rather than subdomains.
_LABEL_NAMED = {("", "Namespace"), ("", "Service")}
_TYPE_NAMES = {
    "string": "string",
    "integer": "int",
    "number": "number",
    "boolean": "bool",
    "object": "object",
    "array": "array",
}


@dataclass
class Findings:
    """What one walk found: `causes` make a 422, `type_errors` a 400, `unknown` warnings."""

    causes: list[dict[str, str]] = field(default_factory=list)
    type_errors: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)

    def required(self, path: str) -> None:
        self.causes.append(
            {"reason": "FieldValueRequired", "message": "Required value", "field": path}
        )

    def invalid(self, path: str, value: Any, why: str) -> None:
        shown = f'"{value}"' if isinstance(value, str) else _json_value(value)
        self.causes.append(
            {
                "reason": "FieldValueInvalid",
                "message": f"Invalid value: {shown}: {why}",
                "field": path,
            }
        )


def _json_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        return '"object"' if isinstance(value, dict) else '"array"'
    return str(value)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _type_ok(value: Any, expected: str) -> bool:
    if expected == "object":
        return isinstance(value, dict)
    if expected == "array":
        return isinstance(value, list)
    if expected == "string":
        return isinstance(value, str)
    if expected == "boolean":
        return isinstance(value, bool)
    if expected == "integer":
        return (isinstance(value, int) and not isinstance(value, bool)) or (
            isinstance(value, float) and value.is_integer()
        )
    if expected == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return True


def walk(value: Any, schema: dict[str, Any], path: str, findings: Findings) -> None:
    """Check `value` against a built-in schema; drop unknown fields in place."""
    if value is None:
        return  # every optional field accepts null, meaning "not set"
    schema = schemas.resolve(schema)
    options = schema.get("oneOf")
    if options is not None and "properties" not in schema:
        if not any(_type_ok(value, schemas.schema_type(o) or "") for o in options):
            findings.type_errors.append(
                f"{path}: expected a string or a number, got {_json_value(value)}"
            )
        return
    expected = schemas.schema_type(schema)
    if expected is None:
        return
    if not _type_ok(value, expected):
        findings.type_errors.append(
            f"json: cannot unmarshal {_go_type(value)} into Go struct field .{path} of type "
            f"{_TYPE_NAMES.get(expected, expected)}"
        )
        return
    if expected == "object":
        _walk_object(value, schema, path, findings)
    elif expected == "array":
        items = schema.get("items")
        if items:
            for index, item in enumerate(value):
                walk(item, items, f"{path}[{index}]", findings)
    elif "enum" in schema and value not in schema["enum"]:
        findings.causes.append(
            {
                "reason": "FieldValueNotSupported",
                "message": f'Unsupported value: "{value}": supported values: '
                + ", ".join(f'"{v}"' for v in schema["enum"]),
                "field": path,
            }
        )


def _walk_object(
    value: dict[str, Any], schema: dict[str, Any], path: str, findings: Findings
) -> None:
    properties = schema.get("properties")
    additional = schema.get("additionalProperties")
    for name in schema.get("required", ()):
        if value.get(name) is None:
            findings.required(_join(path, name))
    if properties is None:
        if isinstance(additional, dict):
            for key, item in value.items():
                walk(item, additional, _join(path, key), findings)
        return  # free-form object (RawExtension, FieldsV1, ...)
    for key in list(value):
        sub = properties.get(key)
        if sub is not None:
            walk(value[key], sub, _join(path, key), findings)
        elif isinstance(additional, dict):
            walk(value[key], additional, _join(path, key), findings)
        elif not schema.get("x-kubernetes-preserve-unknown-fields"):
            findings.unknown.append(_join(path, key))
            del value[key]


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, str):
        return "string"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, list):
        return "array"
    return "object"


def validate_metadata(
    obj: dict[str, Any], group: str, kind: str, namespaced: bool, findings: Findings
) -> None:
    """The object-meta checks the real server does for every kind."""
    meta = obj.get("metadata") or {}
    name = meta.get("name")
    if not name and not meta.get("generateName"):
        findings.causes.append(
            {
                "reason": "FieldValueRequired",
                "message": "name or generateName is required",
                "field": "metadata.name",
            }
        )
    elif name:
        if (group, kind) in _LABEL_NAMED:
            if len(name) > 63 or not _DNS1123_LABEL.fullmatch(name):
                findings.invalid("metadata.name", name, LABEL_MESSAGE)
        elif (len(name) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(name)) and not (
            # RBAC names are path segments (`system:controller:x` is valid).
            group == "rbac.authorization.k8s.io" and "/" not in name
        ):
            findings.invalid("metadata.name", name, SUBDOMAIN_MESSAGE)
    for key, label in (meta.get("labels") or {}).items():
        prefix, _, short = key.rpartition("/")
        if (
            not short
            or len(short) > 63
            or not _LABEL_NAME.fullmatch(short)
            or (prefix and not _DNS1123_SUBDOMAIN.fullmatch(prefix))
        ):
            findings.invalid(
                "metadata.labels",
                key,
                "name part must consist of alphanumeric characters, '-', '_' or "
                "'.', and must start and end with an alphanumeric character",
            )
        if not isinstance(label, str) or len(label) > 63 or not _LABEL_VALUE.fullmatch(label):
            findings.invalid(
                "metadata.labels",
                label,
                "a valid label must be an empty string or consist of alphanumeric "
                "characters, '-', '_' or '.', and must start and end with an "
                "alphanumeric character",
            )


def validate_builtin(
    obj: dict[str, Any], definition: str, group: str, kind: str, namespaced: bool
) -> Findings:
    """Walk a built-in object against its definition and add the kind's coded checks."""
    findings = Findings()
    walk(obj, {"$ref": "#/$defs/" + definition}, "", findings)
    validate_metadata(obj, group, kind, namespaced, findings)
    if (group, kind) == ("", "Pod") and not findings.type_errors:
        spec = obj.get("spec") or {}
        if not spec.get("containers"):
            findings.required("spec.containers")
        seen: set[str] = set()
        for index, container in enumerate(spec.get("containers") or []):
            cname = container.get("name") or ""
            if not cname:
                findings.required(f"spec.containers[{index}].name")
            elif not _DNS1123_LABEL.fullmatch(cname):
                findings.invalid(f"spec.containers[{index}].name", cname, LABEL_MESSAGE)
            if cname in seen:
                findings.causes.append(
                    {
                        "reason": "FieldValueDuplicate",
                        "message": f'Duplicate value: "{cname}"',
                        "field": f"spec.containers[{index}].name",
                    }
                )
            seen.add(cname)
            if not container.get("image"):
                findings.required(f"spec.containers[{index}].image")
    if (group, kind) == ("apps", "Deployment") and not findings.type_errors:
        spec = obj.get("spec") or {}
        if not spec.get("selector"):
            findings.required("spec.selector")
        if not (spec.get("template") or {}).get("spec", {}).get("containers"):
            findings.required("spec.template.spec.containers")
    unique = {(c["field"], c["message"]): c for c in findings.causes}
    findings.causes = list(unique.values())
    return findings
