"""PATCH bodies: JSON patch (RFC 6902), JSON merge patch (RFC 7386), strategic merge patch and
server-side apply, driven by the `x-kubernetes-patch-*` / `x-kubernetes-list-*` extensions of
the official schemas (built-ins) or the CRD's structural schema.
"""

from __future__ import annotations

import copy
import json
from typing import Any

from devcluster import schemas
from devcluster.errors import ApiError, bad_request

Schema = dict[str, Any] | None

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_CBOR = "application/apply-patch+cbor"


# -- schema navigation (works on built-in JSON schemas and CRD structural schemas alike) ---------
def child(schema: Schema, key: str) -> Schema:
    if not schema:
        return None
    schema = schemas.resolve(schema)
    props = schema.get("properties")
    if props and key in props:
        return props[key]
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        return extra
    if key == "metadata" and schema.get("x-kubernetes-embedded-resource"):
        return {"$ref": "#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"}
    return None


def items(schema: Schema) -> Schema:
    if not schema:
        return None
    schema = schemas.resolve(schema)
    found = schema.get("items")
    return found if isinstance(found, dict) else None


def list_keys(schema: Schema) -> list[str]:
    """Keys identifying list items (list-map keys or the patch merge key)."""
    if not schema:
        return []
    schema = schemas.resolve(schema)
    if schema.get("x-kubernetes-list-type") == "map":
        return list(schema.get("x-kubernetes-list-map-keys") or [])
    key = schema.get("x-kubernetes-patch-merge-key")
    return [key] if key else []


def is_set_list(schema: Schema) -> bool:
    return bool(schema) and schemas.resolve(schema).get("x-kubernetes-list-type") == "set"


# -- JSON patch ----------------------------------------------------------------------------------
def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk_to(doc: Any, parts: list[str]) -> Any:
    for part in parts:
        if isinstance(doc, list):
            doc = doc[int(part)]
        elif isinstance(doc, dict):
            doc = doc[part]
        else:
            raise KeyError(part)
    return doc


def json_patch(doc: Any, operations: Any) -> Any:
    """Apply RFC 6902 operations to a copy of `doc`."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in operations:
        try:
            doc = _json_patch_op(doc, op)
        except ApiError:
            raise
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise ApiError(
                422,
                "Invalid",
                f"the server rejected our request due to an error in our request: "
                f"jsonpatch {op.get('op')} operation does not apply: doc is missing "
                f"path: {op.get('path')!r}: {exc}",
            ) from None
    return doc


def _json_patch_op(doc: Any, op: dict[str, Any]) -> Any:
    kind = op.get("op")
    parts = _pointer(op.get("path", ""))
    if kind == "test":
        if _walk_to(doc, parts) != op.get("value"):
            raise ApiError(422, "Invalid", f"testing value {op.get('path')} failed")
        return doc
    if kind in ("move", "copy"):
        value = copy.deepcopy(_walk_to(doc, _pointer(op["from"])))
        if kind == "move":
            doc = _json_patch_op(doc, {"op": "remove", "path": op["from"]})
        return _json_patch_op(doc, {"op": "add", "path": op["path"], "value": value})
    if not parts:
        if kind in ("add", "replace"):
            return copy.deepcopy(op["value"])
        raise bad_request("cannot remove the root document")
    parent = _walk_to(doc, parts[:-1])
    last = parts[-1]
    if kind == "add":
        if isinstance(parent, list):
            parent.insert(len(parent) if last == "-" else int(last), copy.deepcopy(op["value"]))
        else:
            parent[last] = copy.deepcopy(op["value"])
    elif kind == "remove":
        if isinstance(parent, list):
            del parent[int(last)]
        else:
            del parent[last]
    elif kind == "replace":
        if isinstance(parent, list):
            parent[int(last)] = copy.deepcopy(op["value"])
        else:
            if last not in parent:
                raise KeyError(last)
            parent[last] = copy.deepcopy(op["value"])
    else:
        raise bad_request(f"unknown json patch operation {kind!r}")
    return doc


# -- JSON merge patch ----------------------------------------------------------------------------
def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge, null deletes, everything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


# -- strategic merge patch -------------------------------------------------------------------------
_DIRECTIVE_PREFIXES = ("$setElementOrder/", "$deleteFromPrimitiveList/", "$retainKeys")


def strategic_merge(original: Any, patch: Any, schema: Schema) -> Any:
    """Kubernetes strategic merge patch for built-in kinds."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result = dict(original) if isinstance(original, dict) else {}
    for key, value in patch.items():
        if key == "$patch" or key.startswith(_DIRECTIVE_PREFIXES):
            continue
        sub = child(schema, key)
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and "replace" in (
            (sub or {}).get("x-kubernetes-patch-strategy") or ""
        ):
            result[key] = _strip_directives(copy.deepcopy(value))  # e.g. a PDB's selector
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value, sub)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, sub)
        else:
            result[key] = copy.deepcopy(value)
    for key, value in patch.items():
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in value]
    retain = patch.get("$retainKeys")
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(original: Any, patch: list[Any], schema: Schema) -> list[Any]:
    resolved = schemas.resolve(schema) if schema else {}
    strategy = resolved.get("x-kubernetes-patch-strategy", "")
    if any(isinstance(v, dict) and v.get("$patch") == "replace" for v in patch):
        return [
            copy.deepcopy(v)
            for v in patch
            if not (isinstance(v, dict) and v.get("$patch") == "replace")
        ]
    if "merge" not in strategy.split(",") or not isinstance(original, list):
        return [
            _strip_directives(copy.deepcopy(v))
            for v in patch
            if not (isinstance(v, dict) and v.get("$patch") == "delete")
        ]
    key = resolved.get("x-kubernetes-patch-merge-key")
    result = list(original)
    if not key:
        for value in patch:
            if value not in result:
                result.append(copy.deepcopy(value))
        return result
    item_schema = items(schema)
    for value in patch:
        if not isinstance(value, dict):
            continue
        position = next(
            (
                i
                for i, o in enumerate(result)
                if isinstance(o, dict) and o.get(key) == value.get(key)
            ),
            None,
        )
        if value.get("$patch") == "delete":
            if position is not None:
                del result[position]
            continue
        if position is None:
            result.append(_strip_directives(copy.deepcopy(value)))
        else:
            result[position] = strategic_merge(result[position], value, item_schema)
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip_directives(v)
            for k, v in value.items()
            if k != "$patch" and not k.startswith(_DIRECTIVE_PREFIXES)
        }
    if isinstance(value, list):
        return [_strip_directives(v) for v in value]
    return value


# -- server-side apply ----------------------------------------------------------------------------
def field_set(value: Any, schema: Schema) -> dict[str, Any]:
    """The FieldsV1 set an applied configuration owns."""
    out: dict[str, Any] = {}
    if not isinstance(value, dict):
        return out
    for key, sub_value in value.items():
        if key in ("apiVersion", "kind"):
            continue
        sub_schema = child(schema, key)
        name = f"f:{key}"
        if isinstance(sub_value, dict) and sub_value:
            out[name] = field_set(sub_value, sub_schema)
        elif isinstance(sub_value, list) and sub_value and list_keys(sub_schema):
            keys = list_keys(sub_schema)
            entries: dict[str, Any] = {}
            for item in sub_value:
                if isinstance(item, dict):
                    ident = json.dumps(
                        {k: item.get(k) for k in keys if k in item},
                        separators=(",", ":"),
                        sort_keys=True,
                    )
                    entries[f"k:{ident}"] = {".": {}} | field_set(item, items(sub_schema))
            out[name] = entries
        elif isinstance(sub_value, list) and sub_value and is_set_list(sub_schema):
            out[name] = {f"v:{json.dumps(v, separators=(',', ':'))}": {} for v in sub_value}
        else:
            out[name] = {}
    return out


def apply_merge(live: Any, applied: Any, schema: Schema) -> Any:
    """Merge an applied configuration into the live object (maps and keyed lists merge)."""
    if not isinstance(applied, dict) or not isinstance(live, dict):
        return copy.deepcopy(applied)
    result = dict(live)
    for key, value in applied.items():
        sub = child(schema, key)
        if isinstance(value, dict):
            result[key] = apply_merge(result.get(key), value, sub)
        elif isinstance(value, list) and isinstance(result.get(key), list):
            keys = list_keys(sub)
            if keys:
                merged = list(result[key])
                for item in value:
                    ident = {k: item.get(k) for k in keys} if isinstance(item, dict) else None
                    position = next(
                        (
                            i
                            for i, o in enumerate(merged)
                            if isinstance(o, dict) and {k: o.get(k) for k in keys} == ident
                        ),
                        None,
                    )
                    if position is None:
                        merged.append(copy.deepcopy(item))
                    else:
                        merged[position] = apply_merge(merged[position], item, items(sub))
                result[key] = merged
            elif is_set_list(sub):
                result[key] = list(result[key]) + [v for v in value if v not in result[key]]
            else:
                result[key] = copy.deepcopy(value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def remove_unapplied(obj: Any, previous: dict[str, Any], current: dict[str, Any]) -> None:
    """Delete fields a manager applied before but no longer applies (in place)."""
    if not isinstance(obj, dict):
        return
    for name, sub_prev in previous.items():
        if name == ".":
            continue
        sub_curr = current.get(name)
        if name.startswith("f:"):
            field = name[2:]
            if sub_curr is None:
                obj.pop(field, None)
            elif sub_prev and field in obj:
                target = obj[field]
                if isinstance(target, list):
                    _remove_from_list(target, sub_prev, sub_curr)
                else:
                    remove_unapplied(target, sub_prev, sub_curr)


def _remove_from_list(target: list[Any], previous: dict[str, Any], current: dict[str, Any]) -> None:
    for name, sub_prev in previous.items():
        if name.startswith("k:"):
            ident = json.loads(name[2:])
            position = next(
                (
                    i
                    for i, o in enumerate(target)
                    if isinstance(o, dict) and all(o.get(k) == v for k, v in ident.items())
                ),
                None,
            )
            if position is None:
                continue
            if name not in current:
                del target[position]
            else:
                remove_unapplied(target[position], sub_prev, current[name])
        elif name.startswith("v:") and name not in current:
            value = json.loads(name[2:])
            if value in target:
                target.remove(value)
