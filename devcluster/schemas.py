"""The official Kubernetes schemas, read from the JSON schemas `kubernetes-validate` ships.

They are JSON Schema translations of the API server's OpenAPI document: `$ref`s point at
`#/$defs/<definition>`, and most types are `[type, "null"]`. Everything else in devcluster
(validation, strategic merge, OpenAPI, `kubectl explain`) reads them through this module.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import kubernetes_validate

SCHEMA_VERSION = "v1.37.0-local"
_REF_PREFIX = "#/$defs/"


@functools.cache
def definitions() -> dict[str, dict[str, Any]]:
    """All definitions by their OpenAPI name, e.g. `io.k8s.api.core.v1.Pod`."""
    root = Path(kubernetes_validate.__file__).parent / "kubernetes-json-schema" / SCHEMA_VERSION
    with open(root / "_definitions.json", encoding="utf-8") as handle:
        return json.load(handle)["$defs"]


@functools.cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    index: dict[tuple[str, str, str], str] = {}
    for name, schema in definitions().items():
        for gvk in schema.get("x-kubernetes-group-version-kind", []):
            # The first definition wins: `io.k8s.api.*` precedes aliases such as meta's.
            index.setdefault((gvk["group"], gvk["version"], gvk["kind"]), name)
    return index


def definition_for(group: str, version: str, kind: str) -> str | None:
    """The definition name that describes a group/version/kind."""
    return _gvk_index().get((group, version, kind))


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    """Follow a `$ref` (possibly with sibling keys such as `description`)."""
    ref = schema.get("$ref")
    while ref is not None:
        schema = definitions()[ref[len(_REF_PREFIX) :]]
        ref = schema.get("$ref")
    return schema


def ref_name(schema: dict[str, Any]) -> str | None:
    ref = schema.get("$ref")
    return ref[len(_REF_PREFIX) :] if ref else None


def schema_type(schema: dict[str, Any]) -> str | None:
    """The non-null JSON type of a schema, or None when it accepts anything."""
    declared = schema.get("type")
    if isinstance(declared, list):
        rest = [t for t in declared if t != "null"]
        return rest[0] if len(rest) == 1 else None
    return declared


def to_openapi_v3(schema: Any) -> Any:
    """Translate a JSON-Schema definition back to the OpenAPI v3 shape the server publishes."""
    if isinstance(schema, list):
        return [to_openapi_v3(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "$ref":
            out["$ref"] = "#/components/schemas/" + value[len(_REF_PREFIX) :]
        elif key == "type" and isinstance(value, list):
            rest = [t for t in value if t != "null"]
            if len(rest) == 1:
                out["type"] = rest[0]
        elif key == "oneOf" and all(
            isinstance(option, dict) and set(option) == {"type"} for option in value
        ):
            # int-or-string and Quantity: the real document says so with a format.
            kinds = {schema_type(option) for option in value}
            out["type"] = "string"
            out["format"] = "int-or-string" if "integer" in kinds else "quantity"
            if "integer" in kinds:
                out["x-kubernetes-int-or-string"] = True
        elif key in ("properties", "patternProperties"):
            out[key] = {name: to_openapi_v3(sub) for name, sub in value.items()}
        else:
            out[key] = to_openapi_v3(value)
    if "$ref" in out and len(out) > 1:
        # OpenAPI 3.0 ignores siblings of $ref; the real server wraps refs in allOf.
        ref = out.pop("$ref")
        out["allOf"] = [{"$ref": ref}]
    return out
