"""Deletion semantics: preconditions, finalizers, `deletionTimestamp`, propagation policies,
graceful pod deletion and deletecollection (mixed into `api.ApiServer`)."""

from __future__ import annotations

import json
from typing import Any

from devcluster.auth import Authenticator
from devcluster.calls import (
    CRD_CLEANUP,
    CRD_KEY,
    FOREGROUND,
    NAMESPACES,
    ORPHAN,
    PODS,
    Call,
    Obj,
    Result,
    now_rfc3339,
)
from devcluster.errors import ApiError, bad_request, invalid, not_found
from devcluster.resources import Registry, Resource
from devcluster.store import Store


class DeletionMixin:
    """DELETE and deletecollection for `ApiServer` (which provides these attributes)."""

    store: Store
    registry: Registry
    authenticator: Authenticator
    quota: Any
    gc_owner_uids: set[str]
    gc_finalizing: set[tuple[tuple[str, str], str, str]]
    terminating_namespaces: set[str]
    terminating_crds: set[str]
    graceful_pods: set[tuple[str, str]]

    def _delete_options(self, call: Call) -> Obj:
        options: Obj = {}
        if call.body:
            try:
                options = json.loads(call.body) or {}
            except ValueError:
                raise bad_request("the body of the request could not be decoded") from None
        for key in ("gracePeriodSeconds", "propagationPolicy", "orphanDependents"):
            if key in call.query:
                value: Any = call.query[key]
                if key == "gracePeriodSeconds":
                    value = int(value)
                elif key == "orphanDependents":
                    value = value == "true"
                options[key] = value
        if "dryRun" in options and options["dryRun"] == ["All"]:
            call.query = dict(call.query, dryRun="All")
        return options

    def delete(self, call: Call) -> Result:
        info, resource = call.info, call.resource
        namespace = info.namespace if resource.namespaced else ""
        options = self._delete_options(call)
        obj = self.store.get(resource.key, namespace, info.name)
        if obj is None:
            raise not_found(resource.plural, resource.group, info.name)
        return self.delete_object(call, resource, obj, options)

    def delete_object(self, call: Call, resource: Resource, obj: Obj, options: Obj) -> Result:
        meta = obj["metadata"]
        preconditions = options.get("preconditions") or {}
        if preconditions.get("uid") and preconditions["uid"] != meta["uid"]:
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {resource.plural} "{meta["name"]}"'
                f": Precondition failed: UID in precondition: {preconditions['uid']}"
                f", UID in object meta: {meta['uid']}",
                {"name": meta["name"], "kind": resource.plural, "group": resource.group},
            )
        if (
            preconditions.get("resourceVersion")
            and preconditions["resourceVersion"] != meta["resourceVersion"]
        ):
            raise ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {resource.plural} "{meta["name"]}"'
                f": Precondition failed: ResourceVersion in precondition: "
                f"{preconditions['resourceVersion']}, ResourceVersion in object "
                f"meta: {meta['resourceVersion']}",
                {"name": meta["name"], "kind": resource.plural, "group": resource.group},
            )
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy not in (None, "Background", "Foreground", "Orphan"):
            raise invalid(
                "DeleteOptions",
                "",
                "",
                [
                    {
                        "reason": "FieldValueNotSupported",
                        "field": "propagationPolicy",
                        "message": f'Unsupported value: "{policy}": supported values: '
                        '"Foreground", "Background", "Orphan", "nil"',
                    }
                ],
            )
        finalizers = list(meta.get("finalizers") or [])
        if policy == "Orphan" and ORPHAN not in finalizers:
            finalizers.append(ORPHAN)
        elif policy == "Foreground" and FOREGROUND not in finalizers:
            finalizers.append(FOREGROUND)
        grace = self._grace_period(resource, obj, options)
        namespace_delete = resource.key == NAMESPACES
        if not finalizers and not grace and not namespace_delete:
            if call.dry_run:
                return Result(200, self._deleted_body(resource, obj))
            final = self._remove(resource, obj)
            return Result(200, self._deleted_body(resource, final or obj))
        if meta.get("deletionTimestamp") and not grace:
            # Already being deleted: only a shorter grace period changes anything.
            if (
                resource.key == PODS
                and (meta["namespace"], meta["name"]) in self.graceful_pods
                and options.get("gracePeriodSeconds") == 0
                and not meta.get("finalizers")
            ):
                self.graceful_pods.discard((meta["namespace"], meta["name"]))
                final = self._remove(resource, obj)
                return Result(200, self.output(resource, final or obj))
            if finalizers == list(meta.get("finalizers") or []):
                return Result(200, self.output(resource, obj))
        new = dict(obj)
        new["metadata"] = (
            dict(meta, finalizers=finalizers)
            if finalizers
            else {k: v for k, v in meta.items() if k != "finalizers"}
        )
        if not meta.get("deletionTimestamp"):
            new["metadata"]["deletionTimestamp"] = now_rfc3339(grace or 0)
            new["metadata"]["deletionGracePeriodSeconds"] = grace or 0
        if namespace_delete:
            new["status"] = dict(obj.get("status") or {}, phase="Terminating")
        if call.dry_run:
            return Result(200, self.output(resource, new))
        if grace and resource.key == PODS:
            self.graceful_pods.add((meta["namespace"], meta["name"]))
        stored = self.store.put(resource.key, new, "MODIFIED", obj)
        if namespace_delete:
            self.terminating_namespaces.add(meta["name"])
        if resource.key == CRD_KEY and CRD_CLEANUP in finalizers:
            self.terminating_crds.add(meta["name"])
        if set(finalizers) & {ORPHAN, FOREGROUND}:
            self.gc_finalizing.add((resource.key, meta.get("namespace", ""), meta["name"]))
        return Result(200, self.output(resource, stored))

    def _grace_period(self, resource: Resource, obj: Obj, options: Obj) -> int:
        """Pods bound to a node are deleted gracefully; everything else at once."""
        if resource.key != PODS:
            return 0
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return 0
        grace = options.get("gracePeriodSeconds")
        if grace is None:
            grace = spec.get("terminationGracePeriodSeconds", 30)
        return max(0, int(grace))

    def _deleted_body(self, resource: Resource, obj: Obj) -> Obj:
        if resource.is_crd or resource.key == PODS:
            return self.output(resource, obj)
        meta = obj["metadata"]
        return {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": meta["name"],
                "group": resource.group,
                "kind": resource.plural,
                "uid": meta["uid"],
            },
        }

    def _remove(self, resource: Resource, obj: Obj) -> Obj | None:
        """Remove an object for good and queue its dependents for garbage collection."""
        meta = obj["metadata"]
        final = self.store.remove(resource.key, meta.get("namespace", ""), meta["name"])
        if final is None:
            return None
        self.gc_owner_uids.add(meta["uid"])
        if resource.key == CRD_KEY:
            spec = obj["spec"]
            self.store.drop_key((spec["group"], spec["names"]["plural"]))
            self.registry.replace_group_resource(spec["group"], spec["names"]["plural"], [])
        elif resource.key == ("", "serviceaccounts"):
            self.authenticator.revoke_service_account(meta["namespace"], meta["name"])
        self.quota.flush()
        return final

    def delete_collection(self, call: Call) -> Result:
        info, resource = call.info, call.resource
        options = self._delete_options(call)
        listed = self.list(call)
        deleted = []
        for obj in listed.objects or []:
            try:
                deleted.append(self.delete_object(call, resource, obj, options).body)
            except ApiError as exc:
                if exc.code != 404:
                    raise
        body = {
            "kind": f"{resource.kind}List",
            "apiVersion": resource.api_version,
            "metadata": {"resourceVersion": str(self.store.resource_version)},
            "items": [d for d in deleted if d.get("kind") != "Status"],
        }
        del info
        return Result(200, body)
