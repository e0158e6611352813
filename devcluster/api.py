"""The REST semantics of resources: create, get, list, update, patch, delete, deletecollection
and subresources, with metadata, validation, admission and deletion handled as the real API
server does. No HTTP here: `server.py` translates requests, and the node agent may call the
`system_*` methods in process.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import yaml

from devcluster import admission, crds, defaults, patching, validation
from devcluster.auth import Authenticator, User
from devcluster.calls import (  # re-exported: other modules import these from here
    CRD_CLEANUP,
    CRD_KEY,
    FOREGROUND,
    NAMESPACES,
    ORPHAN,
    PODS,
    Call,
    Obj,
    Result,
    clone,
    now_rfc3339,
)
from devcluster.deletion import DeletionMixin
from devcluster.errors import (
    ApiError,
    already_exists,
    bad_request,
    forbidden,
    invalid,
    method_not_allowed,
    not_found,
    stale_conflict,
    unsupported_media_type,
)
from devcluster.requestinfo import RequestInfo
from devcluster.resources import VIRTUAL, Registry, Resource
from devcluster.selectors import parse_field_selector, parse_label_selector
from devcluster.store import Store
from devcluster.subresources import SubresourceMixin

__all__ = [
    "CRD_CLEANUP",
    "CRD_KEY",
    "FOREGROUND",
    "NAMESPACES",
    "ORPHAN",
    "PODS",
    "ApiServer",
    "Call",
    "NodeAgentSeam",
    "Obj",
    "Result",
    "clone",
    "now_rfc3339",
]

_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
# Fields the server owns; they are never taken from a create request.
_SERVER_META = (
    "uid",
    "resourceVersion",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "generation",
    "selfLink",
)


class NodeAgentSeam:
    """What the node agent registers. All optional; defaults keep pods Pending."""

    def pod_log(self, namespace: str, name: str, container: str, params: Mapping[str, str]) -> Any:
        """Return bytes, or an async iterator of bytes when following."""
        raise NotImplementedError

    def owns_graceful_deletion(self) -> bool:
        """True when the agent confirms pod deletion itself (delete with grace 0)."""
        return False


class ApiServer(DeletionMixin, SubresourceMixin):
    """All resource semantics over one store."""

    def __init__(
        self,
        store: Store | None = None,
        registry: Registry | None = None,
        authenticator: Authenticator | None = None,
    ) -> None:
        self.store = store or Store()
        self.registry = registry or Registry()
        self.authenticator = authenticator or Authenticator()
        self.quota = admission.QuotaTracker(self.store)
        self.node_agent: NodeAgentSeam | None = None
        # Work the garbage collector picks up (owner uids gone; objects being finalized).
        self.gc_owner_uids: set[str] = set()
        self.gc_finalizing: set[tuple[tuple[str, str], str, str]] = set()
        self.terminating_namespaces: set[str] = set()
        self.terminating_crds: set[str] = set()
        self.graceful_pods: set[tuple[str, str]] = set()
        self.authorizer_hook: Callable[[User, RequestInfo], Any] | None = None

    # -- helpers ---------------------------------------------------------------------------------
    def output(self, resource: Resource, obj: Obj) -> Obj:
        """The stored object as the requested version (CRD versions share storage)."""
        if obj.get("apiVersion") != resource.api_version:
            obj = dict(obj, apiVersion=resource.api_version)
        return obj

    def _decode(self, call: Call) -> Obj:
        """The request body as data; like Go's decoder, unpaired UTF-16 surrogates in JSON
        escapes become U+FFFD, so every stored string is valid Unicode."""
        if not call.body:
            raise bad_request("the body of the request is empty")
        try:
            if call.content_type.endswith("yaml"):
                decoded = yaml.safe_load(call.body)
            else:
                decoded = json.loads(call.body)
        except (ValueError, yaml.YAMLError) as exc:
            raise bad_request(f"the body of the request could not be decoded: {exc}") from None
        if not isinstance(decoded, dict | list):
            raise bad_request("the body of the request must be a JSON object")
        return replace_lone_surrogates(decoded)  # type: ignore[return-value]

    def _check_namespace(self, resource: Resource, namespace: str, for_create: bool) -> None:
        if not resource.namespaced:
            return
        if not namespace:
            raise bad_request("the namespace of the object is required")
        ns = self.store.get(NAMESPACES, "", namespace)
        if ns is None:
            raise not_found("namespaces", "", namespace)
        if for_create and ns["metadata"].get("deletionTimestamp"):
            raise forbidden(
                resource.plural,
                resource.group,
                "",
                f"unable to create new content in namespace {namespace} because "
                f"it is being terminated",
            )

    def _normalize(self, call: Call, resource: Resource, obj: Obj, old: Obj | None) -> Obj:
        """Default, prune and validate `obj` (a private copy) for `resource`."""
        name = obj["metadata"].get("name") or obj["metadata"].get("generateName") or ""
        if resource.is_crd:
            unknown: list[str] = []
            schema = resource.crd_schema or {}
            crds.prune(obj, schema, "", unknown, root=True)
            self._unknown_fields(call, resource, unknown)
            crds.apply_defaults(obj, schema)
            causes: list[dict[str, str]] = []
            crds.validate(obj, schema, "", causes, root=True)
            findings = validation.Findings()
            validation.validate_metadata(
                obj, resource.group, resource.kind, resource.namespaced, findings
            )
            causes = findings.causes + causes
            if crds.has_rules(schema):
                crds.check_transitions(obj, old, schema, "", causes)
            if causes:
                raise invalid(resource.kind, resource.group, name, causes)
            return obj
        if resource.definition is None:
            return obj
        defaults.apply_builtin_defaults(resource.group, resource.plural, obj)
        findings = validation.validate_builtin(
            obj, resource.definition, resource.group, resource.kind, resource.namespaced
        )
        if findings.type_errors:
            raise bad_request(
                f'{resource.kind} in version "{resource.version}" cannot be '
                f"handled as a {resource.kind}: {findings.type_errors[0]}"
            )
        self._unknown_fields(call, resource, findings.unknown)
        causes = findings.causes
        if resource.key == CRD_KEY:
            causes = causes + crds.check_crd(obj)
            if old is not None and old["spec"].get("group") != obj["spec"].get("group"):
                causes.append(
                    {
                        "reason": "FieldValueInvalid",
                        "field": "spec.group",
                        "message": "Invalid value: field is immutable",
                    }
                )
        if causes:
            raise invalid(resource.kind, resource.group, name, causes)
        return obj

    @staticmethod
    def _unknown_fields(call: Call, resource: Resource, unknown: list[str]) -> None:
        if not unknown:
            return
        mode = call.field_validation
        if mode == "Strict":
            described = ", ".join(f'unknown field "{u}"' for u in unknown)
            if resource.is_crd:
                raise bad_request(f"strict decoding error: {described}")
            raise bad_request(
                f'{resource.kind} in version "{resource.version}" cannot be '
                f"handled as a {resource.kind}: strict decoding error: {described}"
            )
        if mode == "Warn":
            call.warnings.extend(f'unknown field "{u}"' for u in unknown)

    def _generate_name(self, resource: Resource, meta: Obj) -> None:
        if not meta.get("name") and meta.get("generateName"):
            for _ in range(10):
                suffix = "".join(secrets.choice(_GENERATE_ALPHABET) for _ in range(5))
                candidate = meta["generateName"] + suffix
                if self.store.get(resource.key, meta.get("namespace", ""), candidate) is None:
                    meta["name"] = candidate
                    return
            meta["name"] = candidate

    @staticmethod
    def _spec_changed(resource: Resource, old: Obj, new: Obj) -> bool:
        ignored = (
            {"metadata", "status"} if (resource.has_status or not resource.is_crd) else {"metadata"}
        )
        keys = (set(old) | set(new)) - ignored
        return any(old.get(k) != new.get(k) for k in keys)

    # -- read --------------------------------------------------------------------------------------
    def get(self, call: Call) -> Result:
        info, resource = call.info, call.resource
        obj = self.store.get(resource.key, info.namespace if resource.namespaced else "", info.name)
        if obj is None:
            raise not_found(resource.plural, resource.group, info.name)
        if info.subresource == "scale":
            return Result(200, self._scale_of(resource, obj))
        return Result(200, self.output(resource, obj), objects=[obj])

    def list(self, call: Call) -> Result:
        info, resource, query = call.info, call.resource, call.query
        label_match = parse_label_selector(query.get("labelSelector"))
        field_match = parse_field_selector(query.get("fieldSelector"), resource.field_labels)
        items, rv = self.store.list(resource.key, info.namespace if resource.namespaced else None)
        if label_match:
            items = [o for o in items if label_match(o["metadata"].get("labels") or {})]
        if field_match:
            items = [o for o in items if field_match(o)]
        meta: Obj = {"resourceVersion": str(rv)}
        continue_token = query.get("continue")
        if continue_token:
            try:
                state = json.loads(base64.urlsafe_b64decode(continue_token.encode()))
                start = tuple(state["start"])
            except (ValueError, KeyError, TypeError):
                raise bad_request("continue key is not valid") from None
            items = [
                o
                for o in items
                if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start
            ]
        limit = int(query.get("limit") or 0)
        if limit and len(items) > limit:
            remaining = len(items) - limit
            items = items[:limit]
            last = items[-1]["metadata"]
            token = json.dumps({"rv": rv, "start": [last.get("namespace", ""), last["name"]]})
            meta["continue"] = base64.urlsafe_b64encode(token.encode()).decode()
            meta["remainingItemCount"] = remaining
        body = {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": meta,
            "items": [self.output(resource, o) for o in items],
        }
        return Result(200, body, objects=items, list_meta=meta)

    # -- create ------------------------------------------------------------------------------------
    def create(self, call: Call) -> Result:
        info, resource = call.info, call.resource
        if info.subresource:
            return self._create_subresource(call)
        if resource.key in VIRTUAL:
            return self._review(call)
        obj = self._decode(call)
        if not isinstance(obj, dict):
            raise bad_request("the body of the request must be a JSON object")
        return self.create_object(call, resource, obj)

    def create_object(self, call: Call, resource: Resource, obj: Obj) -> Result:
        """Create from a decoded body: checks, defaults, admission, store."""
        info = call.info
        self._check_type(resource, obj)
        meta = obj.setdefault("metadata", {})
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        namespace = info.namespace if resource.namespaced else ""
        if resource.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise bad_request(
                    "the namespace of the provided object does not match the "
                    "namespace sent on the request"
                )
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        for key in _SERVER_META:
            meta.pop(key, None)
        obj["apiVersion"] = (
            resource.api_version
            if not resource.is_crd
            else (f"{resource.group}/{resource.storage_version}")
        )
        obj["kind"] = resource.kind
        if resource.has_status:
            obj.pop("status", None)
        defaults.initial_status(resource.group, resource.plural, obj)
        self._check_namespace(resource, namespace, for_create=True)
        if resource.is_crd:
            crd = self.store.get(CRD_KEY, "", f"{resource.plural}.{resource.group}")
            if crd is not None and crd["metadata"].get("deletionTimestamp"):
                raise method_not_allowed(
                    "create not allowed while custom resource definition is terminating"
                )
        obj = self._normalize(call, resource, obj, None)
        self._generate_name(resource, meta)
        if self.store.get(resource.key, namespace, meta["name"]) is not None:
            raise already_exists(resource.plural, resource.group, meta["name"])
        self._admit_create(call, resource, obj, namespace)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = now_rfc3339()
        meta["generation"] = 1
        if resource.key == CRD_KEY:
            crds.default_crd(obj)
            obj["status"] = crds.accepted_status(obj, meta["creationTimestamp"])
            # As on a real server: deleting the CRD first deletes its objects.
            meta["finalizers"] = [*(meta.get("finalizers") or []), CRD_CLEANUP]
        if call.dry_run:
            return Result(201, self.output(resource, obj), objects=[obj])
        with self.store.lock:
            if self.store.get(resource.key, namespace, meta["name"]) is not None:
                raise already_exists(resource.plural, resource.group, meta["name"])
            stored = self.store.put(resource.key, obj, "ADDED")
        self._after_create(resource, stored)
        return Result(201, self.output(resource, stored), objects=[stored])

    @staticmethod
    def _check_type(resource: Resource, obj: Obj) -> None:
        api_version, kind = obj.get("apiVersion"), obj.get("kind")
        if kind and kind != resource.kind:
            raise bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({resource.kind})"
            )
        if api_version and api_version != resource.api_version:
            # CRDs: any served version of the group is accepted (conversion None).
            group = api_version.rpartition("/")[0]
            if not (resource.is_crd and group == resource.group):
                raise bad_request(
                    f"the API version in the data ({api_version}) does not "
                    f"match the expected API version ({resource.api_version})"
                )

    def _admit_create(self, call: Call, resource: Resource, obj: Obj, namespace: str) -> None:
        if resource.key == PODS:
            ranges = self.store.list(("", "limitranges"), namespace)[0]
            if ranges:
                admission.apply_limit_ranges(obj, ranges)
                obj["status"]["qosClass"] = defaults.qos_class(obj.get("spec") or {})
            call.warnings.extend(
                admission.check_pod_security(obj, self.store.get(NAMESPACES, "", namespace))
            )
        if resource.namespaced:
            self.quota.admit(resource.key, obj, namespace)

    def _after_create(self, resource: Resource, obj: Obj) -> None:
        meta = obj["metadata"]
        if resource.key == NAMESPACES:
            self.system_create(
                ("", "serviceaccounts"),
                {
                    "apiVersion": "v1",
                    "kind": "ServiceAccount",
                    "metadata": {"name": "default", "namespace": meta["name"]},
                },
            )
        elif resource.key == CRD_KEY:
            self._install_crd(obj)
        for ref in meta.get("ownerReferences") or []:
            if self.store.by_uid(ref.get("uid", "")) is None:
                self.gc_owner_uids.add(ref.get("uid", ""))
        self.quota.flush()

    def _install_crd(self, crd: Obj) -> None:
        spec = crd["spec"]
        self.registry.replace_group_resource(
            spec["group"], spec["names"]["plural"], crds.resources_for(crd)
        )

    # -- update / patch ---------------------------------------------------------------------------
    def update(self, call: Call) -> Result:
        info, resource = call.info, call.resource
        body = self._decode(call)
        if info.subresource == "finalize" and resource.key == NAMESPACES:
            # namespaces/finalize changes spec.finalizers and nothing else.
            old = self.store.get(NAMESPACES, "", info.name)
            if old is None:
                raise not_found("namespaces", "", info.name)
            finalizers = ((body.get("spec") or {}) if isinstance(body, dict) else {}).get(
                "finalizers"
            ) or []
            new = clone(old)
            new["spec"] = {k: v for k, v in (new.get("spec") or {}).items() if k != "finalizers"}
            if finalizers:
                new["spec"]["finalizers"] = finalizers
            return self._write_update(call, resource, old, new, "", check_rv=False)
        if not isinstance(body, dict):
            raise bad_request("the body of the request must be a JSON object")
        namespace = info.namespace if resource.namespaced else ""
        if info.subresource == "scale":
            return self._update_scale(call, body)
        self._check_type(resource, body)
        body_meta = body.get("metadata") or {}
        if body_meta.get("name") and body_meta["name"] != info.name:
            raise bad_request(
                f"the name of the object ({body_meta['name']}) does not match the "
                f"name on the URL ({info.name})"
            )
        old = self.store.get(resource.key, namespace, info.name)
        if old is None:
            raise not_found(resource.plural, resource.group, info.name)
        return self._write_update(call, resource, old, body, info.subresource)

    def _write_update(
        self,
        call: Call,
        resource: Resource,
        old: Obj,
        new: Obj,
        subresource: str,
        *,
        check_rv: bool = True,
    ) -> Result:
        """The common tail of PUT and PATCH: preserve what the server owns, validate, store."""
        old_meta = old["metadata"]
        meta = new.get("metadata")
        if not isinstance(meta, dict):
            meta = new["metadata"] = {}
        wanted_rv = meta.get("resourceVersion")
        if check_rv and wanted_rv and wanted_rv != old_meta["resourceVersion"]:
            raise stale_conflict(resource.plural, resource.group, old_meta["name"])
        if subresource == "status":
            if not resource.has_status:
                raise not_found(resource.plural, resource.group, old_meta["name"])
            status = new.get("status")
            new = dict(old)
            new["metadata"] = dict(old_meta)
            if status is None:
                new.pop("status", None)
            else:
                new["status"] = status
            meta = new["metadata"]
        else:
            for key in (
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "name",
                "namespace",
            ):
                if key in old_meta:
                    meta[key] = old_meta[key]
                else:
                    meta.pop(key, None)
            if resource.has_status and subresource != "binding":
                if "status" in old:
                    new["status"] = old["status"]
                else:
                    new.pop("status", None)
            new["apiVersion"] = old["apiVersion"]
            new["kind"] = old["kind"]
            if old_meta.get("deletionTimestamp"):
                added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
                if added:
                    raise forbidden(
                        resource.plural,
                        resource.group,
                        old_meta["name"],
                        "no new finalizers can be added if the object is being "
                        "deleted, found new finalizers " + json.dumps(sorted(added)),
                    )
        meta["resourceVersion"] = old_meta["resourceVersion"]
        new = self._normalize(call, resource, new, old)
        if resource.key == ("", "pods") and subresource not in ("status", "binding"):
            self._check_pod_update(old, new)
        if self._spec_changed(resource, old, new):
            meta["generation"] = int(old_meta.get("generation") or 1) + 1
        if resource.key == CRD_KEY and subresource != "status":
            new["status"] = crds.accepted_status(new, old_meta["creationTimestamp"])
            new["status"]["conditions"] = (old.get("status") or {}).get(
                "conditions", new["status"]["conditions"]
            )
        if new == old:
            return Result(200, self.output(resource, old), objects=[old])  # no-op: no new rv
        if call.dry_run:
            return Result(200, self.output(resource, new), objects=[new])
        with self.store.lock:
            current = self.store.get(resource.key, old_meta.get("namespace", ""), old_meta["name"])
            if (
                current is None
                or current["metadata"]["resourceVersion"] != old_meta["resourceVersion"]
            ):
                raise stale_conflict(resource.plural, resource.group, old_meta["name"])
            stored = self.store.put(resource.key, new, "MODIFIED", old)
        if resource.key == CRD_KEY:
            self._install_crd(stored)
        self._after_update(resource, old, stored)
        return Result(200, self.output(resource, stored), objects=[stored])

    @staticmethod
    def _check_pod_update(old: Obj, new: Obj) -> None:
        """Pod specs are immutable apart from images and a few fields, as on a real server."""
        mutable = {
            "activeDeadlineSeconds",
            "tolerations",
            "terminationGracePeriodSeconds",
            "schedulingGates",
        }
        old_spec, new_spec = dict(old.get("spec") or {}), dict(new.get("spec") or {})
        for spec in (old_spec, new_spec):
            for key in mutable:
                spec.pop(key, None)
            spec["containers"] = [
                {k: v for k, v in c.items() if k != "image"} for c in spec.get("containers") or []
            ]
            spec["initContainers"] = [
                {k: v for k, v in c.items() if k != "image"}
                for c in spec.get("initContainers") or []
            ]
        if old_spec != new_spec:
            raise invalid(
                "Pod",
                "",
                old["metadata"]["name"],
                [
                    {
                        "reason": "FieldValueForbidden",
                        "field": "spec",
                        "message": "Forbidden: pod updates may not change fields other than "
                        "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                        "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions "
                        "to existing tolerations),`spec.terminationGracePeriodSeconds` "
                        "(allow it to be set to 1 if it was previously negative)",
                    }
                ],
            )

    def _after_update(self, resource: Resource, old: Obj, new: Obj) -> None:
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            if resource.key == PODS and (meta["namespace"], meta["name"]) in self.graceful_pods:
                pass  # still waiting for the node agent or the grace period
            elif resource.key == NAMESPACES:
                pass  # the namespace cleaner finishes namespaces
            else:
                self._remove(resource, new)
        elif meta.get("deletionTimestamp"):
            finalizers = set(meta.get("finalizers") or [])
            if finalizers & {ORPHAN, FOREGROUND}:
                self.gc_finalizing.add((resource.key, meta.get("namespace", ""), meta["name"]))
        old_owners = {r.get("uid") for r in old["metadata"].get("ownerReferences") or []}
        for ref in meta.get("ownerReferences") or []:
            if ref.get("uid") not in old_owners and self.store.by_uid(ref.get("uid", "")) is None:
                self.gc_owner_uids.add(ref.get("uid", ""))
        self.quota.flush()

    def patch(self, call: Call) -> Result:
        info, resource = call.info, call.resource
        namespace = info.namespace if resource.namespaced else ""
        content_type = call.content_type.split(";")[0].strip()
        old = self.store.get(resource.key, namespace, info.name)
        if content_type in (patching.APPLY_PATCH, patching.APPLY_CBOR):
            return self._apply(call, old)
        if old is None:
            raise not_found(resource.plural, resource.group, info.name)
        patch = self._decode(call)
        if info.subresource == "scale":
            current = self._scale_of(resource, old)
            if content_type == patching.JSON_PATCH:
                return self._update_scale(call, patching.json_patch(current, patch))
            return self._update_scale(call, patching.merge_patch(current, patch))
        base = old
        if content_type == patching.JSON_PATCH:
            new = patching.json_patch(base, patch)
        elif content_type == patching.MERGE_PATCH:
            new = patching.merge_patch(clone(base), patch)
        elif content_type == patching.STRATEGIC_PATCH:
            if resource.is_crd or resource.definition is None:
                raise ApiError(
                    415,
                    "UnsupportedMediaType",
                    "the body of the request was in an unknown format - accepted "
                    "media types include: application/json-patch+json, "
                    "application/merge-patch+json, application/apply-patch+yaml",
                )
            new = patching.strategic_merge(
                clone(base), patch, {"$ref": "#/$defs/" + resource.definition}
            )
        else:
            raise unsupported_media_type(content_type)
        if not isinstance(new, dict):
            raise bad_request("the patch must produce an object")
        # A patch only checks resourceVersion if it carries one itself.
        carried = isinstance(patch, dict) and "resourceVersion" in (patch.get("metadata") or {})
        if not carried:
            new.setdefault("metadata", {})["resourceVersion"] = old["metadata"]["resourceVersion"]
        return self._write_update(call, resource, old, new, info.subresource)

    def _schema_of(self, resource: Resource) -> dict[str, Any] | None:
        if resource.is_crd:
            return resource.crd_schema
        return {"$ref": "#/$defs/" + resource.definition} if resource.definition else None

    def _apply(self, call: Call, old: Obj | None) -> Result:
        """Server-side apply: merge the applied config, drop what this manager stopped applying.

        Conflicts with other managers are not detected (every apply acts as `--force-conflicts`).
        """
        info, resource = call.info, call.resource
        manager = call.query.get("fieldManager")
        if not manager:
            raise bad_request("PATCH, application/apply-patch+yaml requires fieldManager to be set")
        applied = self._decode(call)
        if not isinstance(applied, dict):
            raise bad_request("the applied configuration must be an object")
        if not applied.get("apiVersion") or not applied.get("kind"):
            raise bad_request("apiVersion and kind are required in an applied configuration")
        schema = self._schema_of(resource)
        fields = patching.field_set(applied, schema)
        fields.pop("f:status", None) if info.subresource != "status" else None
        entry = {
            "manager": manager,
            "operation": "Apply",
            "apiVersion": resource.api_version,
            "time": now_rfc3339(),
            "fieldsType": "FieldsV1",
            "fieldsV1": fields,
        }
        if info.subresource == "status":
            entry["subresource"] = "status"
        if old is None:
            if info.subresource:
                raise not_found(resource.plural, resource.group, info.name)
            obj = clone(applied)
            obj.setdefault("metadata", {})["name"] = info.name
            obj["metadata"]["managedFields"] = [entry]
            return self.create_object(call, resource, obj)
        merged = patching.apply_merge(clone(old), applied, schema)
        managed = [
            m
            for m in old["metadata"].get("managedFields") or []
            if not (
                m.get("manager") == manager
                and m.get("operation") == "Apply"
                and m.get("subresource", "") == entry.get("subresource", "")
            )
        ]
        previous = next(
            (
                m
                for m in old["metadata"].get("managedFields") or []
                if m.get("manager") == manager
                and m.get("operation") == "Apply"
                and m.get("subresource", "") == entry.get("subresource", "")
            ),
            None,
        )
        if previous is not None:
            patching.remove_unapplied(merged, previous.get("fieldsV1") or {}, fields)
        merged.setdefault("metadata", {})["managedFields"] = [*managed, entry]
        applied_rv = (applied.get("metadata") or {}).get("resourceVersion")
        merged["metadata"]["resourceVersion"] = applied_rv or old["metadata"]["resourceVersion"]
        return self._write_update(call, resource, old, merged, info.subresource)

    # -- in-process API for the node agent and internal controllers -------------------------------
    def system_create(self, key: tuple[str, str], obj: Obj) -> Obj | None:
        """Create as the system (no auth); returns None if it already exists."""
        resource = self.registry.storage(*key)
        if resource is None:
            raise KeyError(key)
        namespace = obj["metadata"].get("namespace", "")
        info = RequestInfo(
            path="",
            verb="create",
            is_resource=True,
            group=key[0],
            resource=key[1],
            namespace=namespace,
        )
        try:
            return self.create_object(Call(info, resource, {}), resource, obj).body
        except ApiError as exc:
            if exc.code == 409:
                return None
            raise

    def system_mutate(
        self,
        key: tuple[str, str],
        namespace: str,
        name: str,
        mutate: Callable[[Obj], None],
        subresource: str = "",
    ) -> Obj:
        """Apply `mutate` to a copy of an object and store it with the usual semantics.

        With `subresource="status"` only the status changes are kept (what a kubelet does).
        """
        resource = self.registry.storage(*key)
        if resource is None:
            raise KeyError(key)
        with self.store.lock:
            old = self.store.get(key, namespace, name)
            if old is None:
                raise not_found(resource.plural, resource.group, name)
            new = clone(old)
            mutate(new)
            info = RequestInfo(
                path="",
                verb="update",
                is_resource=True,
                group=key[0],
                resource=key[1],
                namespace=namespace,
                name=name,
                subresource=subresource,
            )
            return self._write_update(
                Call(info, resource, {}), resource, old, new, subresource, check_rv=False
            ).body

    def system_delete(
        self, key: tuple[str, str], namespace: str, name: str, options: Obj | None = None
    ) -> None:
        """Delete as the system (GC, namespace cleanup, node agent confirming a pod)."""
        resource = self.registry.storage(*key)
        obj = self.store.get(key, namespace, name)
        if resource is None or obj is None:
            return
        info = RequestInfo(
            path="",
            verb="delete",
            is_resource=True,
            group=key[0],
            resource=key[1],
            namespace=namespace,
            name=name,
        )
        self.delete_object(Call(info, resource, {}), resource, obj, options or {})

    def confirm_pod_deleted(self, namespace: str, name: str) -> None:
        """The node agent says the pod's processes are gone: remove it now."""
        self.graceful_pods.discard((namespace, name))
        pod = self.store.get(PODS, namespace, name)
        resource = self.registry.storage(*PODS)
        if pod is not None and resource is not None and not pod["metadata"].get("finalizers"):
            self._remove(resource, pod)


def replace_lone_surrogates(value: Any) -> Any:
    """``value`` with every unpaired surrogate in its strings (keys too) turned into U+FFFD.

    json.loads joins valid surrogate pairs into one character, so any surrogate left is alone.
    """
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [replace_lone_surrogates(item) for item in value]
    if isinstance(value, dict):
        return {replace_lone_surrogates(k): replace_lone_surrogates(v) for k, v in value.items()}
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")
