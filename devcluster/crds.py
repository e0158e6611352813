"""CustomResourceDefinitions: checking a CRD, serving its resource, and the structural-schema
semantics of its objects (pruning, defaulting, validation, `self == oldSelf` rules).
"""

from __future__ import annotations

import copy
import functools
import re
from typing import Any

from devcluster import cel
from devcluster.resources import Resource

Schema = dict[str, Any]
Causes = list[dict[str, str]]


@functools.cache
def _compiled(rule: str) -> cel.CompiledRule:
    """Rules are compiled once; `cel` refuses anything outside its subset."""
    return cel.compile_rule(rule)


_META_KEYS = {"apiVersion", "kind", "metadata"}
_OBJECT_META_FIELDS = {
    "name",
    "generateName",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
    "selfLink",
}


def _cause(reason: str, field: str, message: str) -> dict[str, str]:
    return {"reason": reason, "field": field, "message": message}


def _shown(value: Any) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return '"object"'
    if isinstance(value, list):
        return '"array"'
    if value is None:
        return '"null"'
    return str(value)


# -- checking a CRD -------------------------------------------------------------------------------
def check_crd(crd: dict[str, Any]) -> Causes:
    """The CRD validation the real server does that matters here, plus devcluster's CEL limit."""
    causes: Causes = []
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    group = spec.get("group") or ""
    name = (crd.get("metadata") or {}).get("name", "")
    if not group:
        causes.append(_cause("FieldValueRequired", "spec.group", "Required value"))
    if not names.get("plural"):
        causes.append(_cause("FieldValueRequired", "spec.names.plural", "Required value"))
    if not names.get("kind"):
        causes.append(_cause("FieldValueRequired", "spec.names.kind", "Required value"))
    if names.get("plural") and group and name != f"{names['plural']}.{group}":
        causes.append(
            _cause(
                "FieldValueInvalid",
                "metadata.name",
                f'Invalid value: "{name}": must be spec.names.plural+"."+spec.group',
            )
        )
    if spec.get("scope") not in ("Namespaced", "Cluster"):
        causes.append(
            _cause(
                "FieldValueNotSupported",
                "spec.scope",
                f'Unsupported value: "{spec.get("scope")}": supported values: '
                f'"Cluster", "Namespaced"',
            )
        )
    versions = spec.get("versions") or []
    if not versions:
        causes.append(_cause("FieldValueRequired", "spec.versions", "Required value"))
    storage = [v for v in versions if v.get("storage")]
    if versions and len(storage) != 1:
        causes.append(
            _cause(
                "FieldValueInvalid",
                "spec.versions",
                "Invalid value: ...: must have exactly one version marked as storage version",
            )
        )
    for index, version in enumerate(versions):
        schema = (version.get("schema") or {}).get("openAPIV3Schema")
        where = f"spec.versions[{index}].schema.openAPIV3Schema"
        if schema is None:
            causes.append(
                _cause("FieldValueRequired", where, "Required value: schemas are required")
            )
            continue
        _check_schema(schema, where, causes, root=True)
    return causes


def _check_schema(schema: Schema, where: str, causes: Causes, root: bool = False) -> None:
    if not isinstance(schema, dict):
        return
    if root and schema.get("type") != "object":
        causes.append(
            _cause(
                "FieldValueInvalid",
                f"{where}.type",
                "Invalid value: ...: must be object at the root",
            )
        )
    for index, rule in enumerate(schema.get("x-kubernetes-validations") or []):
        field = f"{where}.x-kubernetes-validations[{index}]"
        text = rule.get("rule", "")
        try:
            _compiled(text)
        except cel.CelSyntaxError as error:
            causes.append(
                _cause(
                    "FieldValueInvalid",
                    f"{field}.rule",
                    f"Invalid value: {_shown(text)}: devcluster cannot evaluate this CEL rule "
                    f"({error}); it supports self/oldSelf, field selection, has(), size(), "
                    f'comparisons, !, && and || (e.g. the transition rule "self == oldSelf"). '
                    f"A rule it would ignore is refused instead.",
                )
            )
        if rule.get("messageExpression"):
            causes.append(
                _cause(
                    "FieldValueInvalid",
                    f"{field}.messageExpression",
                    "Invalid value: ...: devcluster does not evaluate messageExpression; use "
                    "message",
                )
            )
    for key in ("properties", "patternProperties"):
        for name, sub in (schema.get(key) or {}).items():
            _check_schema(sub, f"{where}.{key}[{name}]", causes)
    if isinstance(schema.get("items"), dict):
        _check_schema(schema["items"], f"{where}.items", causes)
    if isinstance(schema.get("additionalProperties"), dict):
        _check_schema(schema["additionalProperties"], f"{where}.additionalProperties", causes)
    for key in ("allOf", "anyOf", "oneOf"):
        for index, sub in enumerate(schema.get(key) or []):
            _check_schema(sub, f"{where}.{key}[{index}]", causes)


def resources_for(crd: dict[str, Any]) -> list[Resource]:
    """One served `Resource` per served version of an accepted CRD."""
    spec = crd["spec"]
    names = spec["names"]
    versions = spec.get("versions") or []
    storage = next((v["name"] for v in versions if v.get("storage")), versions[0]["name"])
    entries = []
    for version in versions:
        if not version.get("served", True):
            continue
        subresources = set()
        declared = version.get("subresources") or {}
        if "status" in declared:
            subresources.add("status")
        if "scale" in declared:
            subresources.add("scale")
        columns = version.get("additionalPrinterColumns") or []
        entries.append(
            Resource(
                group=spec["group"],
                version=version["name"],
                plural=names["plural"],
                kind=names["kind"],
                namespaced=spec.get("scope") == "Namespaced",
                singular=names.get("singular") or names["kind"].lower(),
                short_names=list(names.get("shortNames") or []),
                categories=list(names.get("categories") or []),
                subresources=subresources,
                crd_schema=(version.get("schema") or {}).get("openAPIV3Schema") or {},
                crd=crd,
                printer_columns=columns,
                storage_version=storage,
                field_labels={
                    f.get("jsonPath", "").lstrip("."): f.get("jsonPath", "").lstrip(".")
                    for f in version.get("selectableFields") or []
                },
            )
        )
    return entries


def accepted_status(crd: dict[str, Any], now: str) -> dict[str, Any]:
    """The status the apiextensions controllers would settle on for an accepted CRD."""
    spec = crd["spec"]
    names = dict(spec["names"])
    names.setdefault("singular", names["kind"].lower())
    names.setdefault("listKind", names["kind"] + "List")
    condition = {"lastTransitionTime": now, "status": "True"}
    return {
        "acceptedNames": names,
        "conditions": [
            condition
            | {"type": "NamesAccepted", "reason": "NoConflicts", "message": "no conflicts found"},
            condition
            | {
                "type": "Established",
                "reason": "InitialNamesAccepted",
                "message": "the initial names have been accepted",
            },
        ],
        "storedVersions": [v["name"] for v in spec.get("versions") or [] if v.get("storage")],
    }


def default_crd(crd: dict[str, Any]) -> None:
    """Defaults the server fills into a CRD (so clients see them on read)."""
    spec = crd.setdefault("spec", {})
    names = spec.setdefault("names", {})
    if names.get("kind"):
        names.setdefault("singular", names["kind"].lower())
        names.setdefault("listKind", names["kind"] + "List")
    spec.setdefault("conversion", {"strategy": "None"})
    for version in spec.get("versions") or []:
        version.setdefault("served", True)


# -- structural schema semantics ------------------------------------------------------------------
def prune(
    value: Any, schema: Schema | None, path: str, unknown: list[str], root: bool = False
) -> Any:
    """Drop fields the schema does not declare (unless it preserves unknown fields)."""
    if schema is None or not isinstance(value, dict | list):
        return value
    if isinstance(value, list):
        sub = schema.get("items")
        if isinstance(sub, dict):
            for index, item in enumerate(value):
                value[index] = prune(item, sub, f"{path}[{index}]", unknown)
        return value
    properties = schema.get("properties")
    additional = schema.get("additionalProperties")
    preserve = schema.get("x-kubernetes-preserve-unknown-fields")
    embedded = schema.get("x-kubernetes-embedded-resource")
    for key in list(value):
        if (root or embedded) and key in _META_KEYS:
            if key == "metadata" and isinstance(value[key], dict):
                for meta_key in list(value[key]):
                    if meta_key not in _OBJECT_META_FIELDS:
                        unknown.append(f"{path + '.' if path else ''}metadata.{meta_key}")
                        del value[key][meta_key]
            continue
        field = f"{path}.{key}" if path else key
        if properties and key in properties:
            value[key] = prune(value[key], properties[key], field, unknown)
        elif isinstance(additional, dict):
            value[key] = prune(value[key], additional, field, unknown)
        elif additional is True or preserve:
            continue
        else:
            unknown.append(field)
            del value[key]
    return value


def apply_defaults(value: Any, schema: Schema | None) -> None:
    """Fill `default`s for missing properties, recursively (in place)."""
    if schema is None:
        return
    if isinstance(value, dict):
        for key, sub in (schema.get("properties") or {}).items():
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                apply_defaults(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key, item in value.items():
                if key not in (schema.get("properties") or {}):
                    apply_defaults(item, extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for item in value:
            apply_defaults(item, schema["items"])


def _type_ok(value: Any, expected: str, schema: Schema) -> bool:
    if schema.get("x-kubernetes-int-or-string"):
        return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
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


def validate(
    value: Any, schema: Schema | None, path: str, causes: Causes, root: bool = False
) -> None:
    """OpenAPI v3 validation with the real server's messages and field paths."""
    if schema is None:
        return
    if value is None:
        if not schema.get("nullable") and schema.get("type") and not root:
            causes.append(
                _cause(
                    "FieldValueTypeInvalid",
                    path,
                    f'Invalid value: "null": {path} in body must be of type '
                    f'{schema["type"]}: "null"',
                )
            )
        return
    expected = schema.get("type")
    if expected and not _type_ok(value, expected, schema):
        causes.append(
            _cause(
                "FieldValueTypeInvalid",
                path,
                f"Invalid value: {_shown(value)}: {path} in body must be of type "
                f"{expected}: {_shown(value)}",
            )
        )
        return
    if "enum" in schema and value not in schema["enum"]:
        causes.append(
            _cause(
                "FieldValueNotSupported",
                path,
                f"Unsupported value: {_shown(value)}: supported values: "
                + ", ".join(_shown(v) for v in schema["enum"]),
            )
        )
    if isinstance(value, str):
        _validate_string(value, schema, path, causes)
    elif isinstance(value, int | float) and not isinstance(value, bool):
        _validate_number(value, schema, path, causes)
    elif isinstance(value, list):
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            causes.append(
                _cause(
                    "FieldValueTooMany",
                    path,
                    f"Too many: {len(value)}: must have at most {schema['maxItems']} items",
                )
            )
        if "minItems" in schema and len(value) < schema["minItems"]:
            causes.append(
                _cause(
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {len(value)}: {path} in body should have at "
                    f"least {schema['minItems']} items",
                )
            )
        sub = schema.get("items")
        if isinstance(sub, dict):
            for index, item in enumerate(value):
                validate(item, sub, f"{path}[{index}]", causes)
    elif isinstance(value, dict):
        _validate_object(value, schema, path, causes, root)
    for option in schema.get("allOf") or []:
        validate(value, option, path, causes)
    if schema.get("anyOf") and not any(_passes(value, option, path) for option in schema["anyOf"]):
        causes.append(
            _cause(
                "FieldValueInvalid",
                path,
                f"Invalid value: {_shown(value)}: {path} in body must match "
                f"at least one schema in anyOf",
            )
        )
    if schema.get("oneOf"):
        matches = sum(_passes(value, option, path) for option in schema["oneOf"])
        if matches != 1:
            causes.append(
                _cause(
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {_shown(value)}: {path} in body must match "
                    f"exactly one schema in oneOf",
                )
            )
    if isinstance(schema.get("not"), dict) and _passes(value, schema["not"], path):
        causes.append(
            _cause(
                "FieldValueInvalid",
                path,
                f"Invalid value: {_shown(value)}: {path} in body should not "
                f"match the schema in not",
            )
        )


def _passes(value: Any, schema: Schema, path: str) -> bool:
    found: Causes = []
    validate(value, schema, path, found)
    for key in schema.get("required") or []:
        if isinstance(value, dict) and key not in value:
            return False
    return not found


def _validate_string(value: str, schema: Schema, path: str, causes: Causes) -> None:
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        causes.append(
            _cause(
                "FieldValueTooLong",
                path,
                f"Too long: may not be more than {schema['maxLength']} bytes",
            )
        )
    if "minLength" in schema and len(value) < schema["minLength"]:
        causes.append(
            _cause(
                "FieldValueInvalid",
                path,
                f"Invalid value: {_shown(value)}: {path} in body should be at "
                f"least {schema['minLength']} chars long",
            )
        )
    pattern = schema.get("pattern")
    if pattern and not re.search(pattern, value):
        causes.append(
            _cause(
                "FieldValueInvalid",
                path,
                f"Invalid value: {_shown(value)}: {path} in body should match '{pattern}'",
            )
        )


def _validate_number(value: float, schema: Schema, path: str, causes: Causes) -> None:
    if "minimum" in schema:
        low = schema["minimum"]
        if value < low or (schema.get("exclusiveMinimum") and value == low):
            relation = (
                "greater than" if schema.get("exclusiveMinimum") else ("greater than or equal to")
            )
            causes.append(
                _cause(
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {_shown(value)}: {path} in body should be {relation} {low}",
                )
            )
    if "maximum" in schema:
        high = schema["maximum"]
        if value > high or (schema.get("exclusiveMaximum") and value == high):
            relation = "less than" if schema.get("exclusiveMaximum") else "less than or equal to"
            causes.append(
                _cause(
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {_shown(value)}: {path} in body should be {relation} {high}",
                )
            )


def _validate_object(
    value: dict[str, Any], schema: Schema, path: str, causes: Causes, root: bool
) -> None:
    for key in schema.get("required") or []:
        if key not in value:
            causes.append(
                _cause("FieldValueRequired", f"{path}.{key}" if path else key, "Required value")
            )
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        causes.append(
            _cause(
                "FieldValueTooMany",
                path,
                f"Too many: {len(value)}: must have at most {schema['maxProperties']} items",
            )
        )
    properties = schema.get("properties") or {}
    additional = schema.get("additionalProperties")
    for key, item in value.items():
        if root and key in _META_KEYS:
            continue
        field = f"{path}.{key}" if path else key
        if key in properties:
            validate(item, properties[key], field, causes)
        elif isinstance(additional, dict):
            validate(item, additional, field, causes)


_REASONS = {"FieldValueInvalid", "FieldValueForbidden", "FieldValueRequired", "FieldValueDuplicate"}


def check_transitions(new: Any, old: Any, schema: Schema | None, path: str, causes: Causes) -> None:
    """Evaluate `x-kubernetes-validations` where the value exists.

    Transition rules (those using `oldSelf`) run only on updates where the old value exists
    too, as on a real server. `old` is None on create and for values that are new.
    """
    if schema is None or new is None:
        return
    for rule in schema.get("x-kubernetes-validations") or []:
        text = rule.get("rule", "")
        compiled = _compiled(text)
        if compiled.uses_old_self and old is None:
            continue
        try:
            passed = compiled.evaluate(new, old)
        except cel.CelEvaluationError as error:
            causes.append(
                _cause(
                    "FieldValueInvalid",
                    path,
                    f"Invalid value: {_shown(new)}: rule evaluation error: {error}",
                )
            )
            continue
        if not passed:
            message = rule.get("message") or f"failed rule: {' '.join(text.split())}"
            field = rule.get("fieldPath") or ""
            reason = rule.get("reason") or "FieldValueInvalid"
            causes.append(
                _cause(
                    reason if reason in _REASONS else "FieldValueInvalid",
                    path + field if field else path,
                    f"Invalid value: {_shown(new)}: {message}",
                )
            )
    if isinstance(new, dict):
        old_map = old if isinstance(old, dict) else {}
        for key, sub in (schema.get("properties") or {}).items():
            if key in new:
                check_transitions(
                    new[key], old_map.get(key), sub, f"{path}.{key}" if path else key, causes
                )
    elif isinstance(new, list) and isinstance(schema.get("items"), dict):
        # Only list-map items can be correlated with their old selves.
        keys = schema.get("x-kubernetes-list-map-keys") or []
        correlate = schema.get("x-kubernetes-list-type") == "map" and keys and isinstance(old, list)
        by_key = (
            {tuple(o.get(k) for k in keys): o for o in old if isinstance(o, dict)}
            if correlate
            else {}
        )
        for index, item in enumerate(new):
            previous = (
                by_key.get(tuple(item.get(k) for k in keys))
                if correlate and isinstance(item, dict)
                else None
            )
            check_transitions(item, previous, schema["items"], f"{path}[{index}]", causes)


def has_rules(schema: Schema | None) -> bool:
    """Whether any transition rule exists (skips the walk on every update when none do)."""
    if not isinstance(schema, dict):
        return False
    if schema.get("x-kubernetes-validations"):
        return True
    subs = list((schema.get("properties") or {}).values())
    if isinstance(schema.get("items"), dict):
        subs.append(schema["items"])
    return any(has_rules(s) for s in subs)
