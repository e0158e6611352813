"""OpenAPI v3 (per group-version, as `kubectl` fetches it for field validation support,
`explain` and client-side apply) and a JSON OpenAPI v2 document for older code paths.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
from typing import Any

from devcluster import schemas
from devcluster.resources import Registry, Resource

_META = "io.k8s.apimachinery.pkg.apis.meta.v1"
_WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")


def _param(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "schema": {"type": kind, "uniqueItems": True}}


def _reachable(roots: list[str]) -> set[str]:
    seen: set[str] = set()
    stack = list(roots)
    definitions = schemas.definitions()
    while stack:
        name = stack.pop()
        if name in seen or name not in definitions:
            continue
        seen.add(name)
        text = json.dumps(definitions[name])
        for part in text.split('"#/$defs/')[1:]:
            stack.append(part.split('"', 1)[0])
    return seen


def _crd_definition_name(resource: Resource) -> str:
    reversed_group = ".".join(reversed(resource.group.split(".")))
    return f"{reversed_group}.{resource.version}.{resource.kind}"


def crd_component(resource: Resource) -> dict[str, Any]:
    """A CRD version's schema as the server publishes it (metadata as ObjectMeta)."""
    schema = copy.deepcopy(resource.crd_schema or {"type": "object"})
    props = schema.setdefault("properties", {})
    props["apiVersion"] = {
        "type": "string",
        "description": "APIVersion defines the versioned "
        "schema of this representation of an object.",
    }
    props["kind"] = {
        "type": "string",
        "description": "Kind is a string value representing "
        "the REST resource this object represents.",
    }
    props["metadata"] = {
        "allOf": [{"$ref": f"#/components/schemas/{_META}.ObjectMeta"}],
        "description": "Standard object's metadata.",
    }
    schema["x-kubernetes-group-version-kind"] = [
        {"group": resource.group, "version": resource.version, "kind": resource.kind}
    ]
    return schema


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _operation(
    resource: Resource, action: str, schema_name: str, sub: str = "", body: bool = False
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": f"{action}{resource.kind}{sub.capitalize()}",
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {
            "group": resource.group,
            "version": resource.version,
            "kind": resource.kind,
        },
        "responses": {
            "200": {
                "description": "OK",
                "content": {"application/json": {"schema": _ref(schema_name)}},
            }
        },
    }
    if body:
        op["parameters"] = [_param(p) for p in _WRITE_PARAMS]
        if action == "patch":
            op["parameters"].append(_param("force", "boolean"))
            op["requestBody"] = {
                "content": {
                    t: {"schema": _ref(f"{_META}.Patch")}
                    for t in (
                        "application/json-patch+json",
                        "application/merge-patch+json",
                        "application/strategic-merge-patch+json",
                        "application/apply-patch+yaml",
                    )
                }
            }
        else:
            op["requestBody"] = {"content": {"application/json": {"schema": _ref(schema_name)}}}
    return op


def _paths(resource: Resource, schema_name: str) -> dict[str, Any]:
    prefix = (
        f"/apis/{resource.group}/{resource.version}"
        if resource.group
        else f"/api/{resource.version}"
    )
    base = (
        f"{prefix}/namespaces/{{namespace}}/{resource.plural}"
        if resource.namespaced
        else f"{prefix}/{resource.plural}"
    )
    list_name = schema_name + "List"
    paths: dict[str, Any] = {
        base: {
            "get": _operation(resource, "list", list_name),
            "post": _operation(resource, "post", schema_name, body=True),
            "delete": _operation(resource, "deletecollection", f"{_META}.Status"),
        },
        f"{base}/{{name}}": {
            "get": _operation(resource, "get", schema_name),
            "put": _operation(resource, "put", schema_name, body=True),
            "patch": _operation(resource, "patch", schema_name, body=True),
            "delete": _operation(resource, "delete", f"{_META}.Status"),
        },
    }
    for sub in ("status", "scale"):
        if sub in resource.subresources:
            name = schema_name if sub == "status" else "io.k8s.api.autoscaling.v1.Scale"
            paths[f"{base}/{{name}}/{sub}"] = {
                "get": _operation(resource, "get", name, sub),
                "put": _operation(resource, "put", name, sub, body=True),
                "patch": _operation(resource, "patch", name, sub, body=True),
            }
    return paths


class OpenApi:
    """Builds and caches documents; CRD changes invalidate through the registry generation."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._lock = threading.Lock()
        self._cache: dict[tuple[int, str], bytes] = {}

    def group_versions(self) -> list[str]:
        keys = {(r.group, r.version) for r in self.registry.all()}
        return sorted(f"apis/{g}/{v}" if g else f"api/{v}" for g, v in keys)

    def index(self) -> dict[str, Any]:
        paths = {}
        for gv in self.group_versions():
            digest = hashlib.sha256(self.document(gv)).hexdigest()[:32].upper()
            paths[gv] = {"serverRelativeURL": f"/openapi/v3/{gv}?hash={digest}"}
        return {"paths": paths}

    def document(self, gv: str) -> bytes:
        """The serialized OpenAPI v3 document for `api/v1` or `apis/<group>/<version>`."""
        key = (self.registry.generation, gv)
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        parts = gv.split("/")
        group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
        resources = [r for r in self.registry.all() if r.group == group and r.version == version]
        if not resources:
            raise KeyError(gv)
        roots = [
            f"{_META}.Status",
            f"{_META}.Patch",
            f"{_META}.ObjectMeta",
            f"{_META}.DeleteOptions",
            f"{_META}.ListMeta",
        ]
        paths: dict[str, Any] = {}
        components: dict[str, Any] = {}
        for resource in resources:
            if resource.is_crd:
                name = _crd_definition_name(resource)
                components[name] = crd_component(resource)
                components[name + "List"] = {
                    "type": "object",
                    "properties": {
                        "apiVersion": {"type": "string"},
                        "kind": {"type": "string"},
                        "items": {"type": "array", "items": _ref(name)},
                        "metadata": {"allOf": [_ref(f"{_META}.ListMeta")]},
                    },
                    "x-kubernetes-group-version-kind": [
                        {"group": group, "version": version, "kind": resource.kind + "List"}
                    ],
                }
            elif resource.definition:
                name = resource.definition
                roots += [name, name + "List"]
            else:
                continue
            if "scale" in resource.subresources:
                roots.append("io.k8s.api.autoscaling.v1.Scale")
            paths.update(_paths(resource, name))
        for name in _reachable(roots):
            components[name] = schemas.to_openapi_v3(schemas.definitions()[name])
        document = {
            "openapi": "3.0.0",
            "info": {"title": "Kubernetes (devcluster)", "version": "v1.37.0"},
            "paths": paths,
            "components": {"schemas": components},
        }
        encoded = json.dumps(document, separators=(",", ":")).encode()
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if k[0] == self.registry.generation}
            self._cache[key] = encoded
        return encoded

    def v2(self) -> bytes:
        """A JSON OpenAPI v2 document (definitions only plus paths), for v2-only clients."""
        key = (self.registry.generation, "v2")
        with self._lock:
            cached = self._cache.get(key)
        if cached is not None:
            return cached
        definitions: dict[str, Any] = {}
        paths: dict[str, Any] = {}
        for gv in self.group_versions():
            doc = json.loads(self.document(gv))
            for name, schema in doc["components"]["schemas"].items():
                definitions[name] = schema
            paths.update(doc["paths"])
        text = json.dumps(
            {
                "swagger": "2.0",
                "info": {"title": "Kubernetes (devcluster)", "version": "v1.37.0"},
                "paths": {},
                "definitions": definitions,
            },
            separators=(",", ":"),
        )
        encoded = text.replace("#/components/schemas/", "#/definitions/").encode()
        with self._lock:
            self._cache[key] = encoded
        return encoded
