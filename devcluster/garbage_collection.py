"""Background controllers the API server itself relies on: owner-reference garbage collection
(background, foreground, orphan), namespace cleanup, pod grace-period expiry and quota status.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from typing import Any

from devcluster.api import CRD_CLEANUP, CRD_KEY, FOREGROUND, NAMESPACES, ORPHAN, PODS, ApiServer
from devcluster.errors import ApiError

log = logging.getLogger(__name__)


def _expired(timestamp: str | None) -> bool:
    if not timestamp:
        return True
    moment = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    return moment <= datetime.datetime.now(datetime.UTC)


NODE_LEASE_GRACE = 40.0  # seconds; the node lifecycle controller's default grace period


def node_agent_alive(api: ApiServer, node_name: str) -> bool:
    """Whether a node agent heartbeats for `node_name` through its Lease."""
    lease = api.store.get(("coordination.k8s.io", "leases"), "kube-node-lease", node_name)
    renewed = ((lease or {}).get("spec") or {}).get("renewTime")
    if not renewed:
        return False
    moment = datetime.datetime.fromisoformat(renewed.replace("Z", "+00:00"))
    age = (datetime.datetime.now(datetime.UTC) - moment).total_seconds()
    return age < NODE_LEASE_GRACE


class GarbageCollector:
    """Runs inside the server's event loop; every step is idempotent."""

    def __init__(
        self, api: ApiServer, interval: float = 0.05, sweep_interval: float = 0.25
    ) -> None:
        self.api = api
        self.interval = interval
        # Namespace and CRD cleanup scan every kind; they run less often than the cheap steps.
        self.sweep_interval = sweep_interval
        self._next_sweep = 0.0

    def run_once(self) -> None:
        api = self.api
        with api.store.lock:
            self._owners_gone()
            self._finalizing()
            now = time.monotonic()
            if now >= self._next_sweep:
                self._next_sweep = now + self.sweep_interval
                self._namespaces()
                self._crds()
            self._graceful_pods()
            api.quota.flush()

    def _owners_gone(self) -> None:
        api = self.api
        uids, api.gc_owner_uids = api.gc_owner_uids, set()
        for uid in uids:
            if api.store.by_uid(uid) is not None:
                continue
            for key, dependent in api.store.dependents(uid):
                self._collect(key, dependent)

    def _collect(self, key: tuple[str, str], dependent: dict[str, Any]) -> None:
        meta = dependent["metadata"]
        refs = meta.get("ownerReferences") or []
        alive = [r for r in refs if self.api.store.by_uid(r.get("uid", "")) is not None]
        if alive:
            if len(alive) != len(refs):
                self._mutate(
                    key,
                    meta,
                    lambda o, keep=alive: o["metadata"].__setitem__("ownerReferences", keep),
                )
            return
        if not meta.get("deletionTimestamp"):
            self._delete(key, meta)

    def _finalizing(self) -> None:
        api = self.api
        for where in list(api.gc_finalizing):
            key, namespace, name = where
            obj = api.store.get(key, namespace, name)
            finalizers = set((obj or {}).get("metadata", {}).get("finalizers") or [])
            if obj is None or not finalizers & {ORPHAN, FOREGROUND}:
                api.gc_finalizing.discard(where)
                continue
            uid = obj["metadata"]["uid"]
            dependents = api.store.dependents(uid)
            if ORPHAN in finalizers:
                for dep_key, dependent in dependents:
                    self._mutate(
                        dep_key,
                        dependent["metadata"],
                        lambda o, u=uid: o["metadata"].__setitem__(
                            "ownerReferences",
                            [
                                r
                                for r in o["metadata"].get("ownerReferences") or []
                                if r.get("uid") != u
                            ],
                        ),
                    )
                self._drop_finalizer(key, obj, ORPHAN)
            elif dependents:
                for dep_key, dependent in dependents:
                    if not dependent["metadata"].get("deletionTimestamp"):
                        self._delete(dep_key, dependent["metadata"])
            else:
                self._drop_finalizer(key, obj, FOREGROUND)

    def _drop_finalizer(self, key: tuple[str, str], obj: dict[str, Any], name: str) -> None:
        self._mutate(
            key,
            obj["metadata"],
            lambda o: o["metadata"].__setitem__(
                "finalizers", [f for f in o["metadata"].get("finalizers") or [] if f != name]
            ),
        )

    def _namespaces(self) -> None:
        api = self.api
        for namespace in list(api.terminating_namespaces):
            remaining = 0
            for resource in api.registry.all():
                if not resource.namespaced or resource.version != resource.storage_version:
                    continue
                for obj in api.store.list(resource.key, namespace)[0]:
                    remaining += 1
                    if not obj["metadata"].get("deletionTimestamp"):
                        self._delete(resource.key, obj["metadata"])
            ns = api.store.get(NAMESPACES, "", namespace)
            if ns is None:
                api.terminating_namespaces.discard(namespace)
            elif remaining == 0 and not ns["metadata"].get("finalizers"):
                api.terminating_namespaces.discard(namespace)
                resource = api.registry.storage(*NAMESPACES)
                if resource is not None:
                    api._remove(resource, ns)

    def _crds(self) -> None:
        """Delete a terminating CRD's objects; drop its cleanup finalizer once none remain."""
        api = self.api
        for name in list(api.terminating_crds):
            crd = api.store.get(CRD_KEY, "", name)
            if crd is None or CRD_CLEANUP not in (crd["metadata"].get("finalizers") or []):
                api.terminating_crds.discard(name)
                continue
            key = (crd["spec"]["group"], crd["spec"]["names"]["plural"])
            remaining = api.store.list(key)[0]
            for obj in remaining:
                if not obj["metadata"].get("deletionTimestamp"):
                    self._delete(key, obj["metadata"])
            if not remaining:
                api.terminating_crds.discard(name)
                self._drop_finalizer(CRD_KEY, crd, CRD_CLEANUP)

    def _graceful_pods(self) -> None:
        """Finish graceful deletions nobody else will finish.

        A pod on a node with a live node agent (its Lease in kube-node-lease renewed within
        the last 40 s, as a kubelet does) waits for the agent's own `gracePeriodSeconds=0`
        delete, exactly as on a real cluster. Without a live agent the server removes the pod
        once its grace period has passed, so tests without an agent do not hang.
        """
        api = self.api
        if api.node_agent is not None and api.node_agent.owns_graceful_deletion():
            return
        for namespace, name in list(api.graceful_pods):
            pod = api.store.get(PODS, namespace, name)
            if pod is None:
                api.graceful_pods.discard((namespace, name))
            elif _expired(pod["metadata"].get("deletionTimestamp")) and not node_agent_alive(
                api, (pod.get("spec") or {}).get("nodeName", "")
            ):
                api.confirm_pod_deleted(namespace, name)

    def _delete(self, key: tuple[str, str], meta: dict[str, Any]) -> None:
        try:
            self.api.system_delete(
                key, meta.get("namespace", ""), meta["name"], {"propagationPolicy": "Background"}
            )
        except ApiError as exc:
            log.debug("garbage collection could not delete %s: %s", meta["name"], exc)

    def _mutate(self, key: tuple[str, str], meta: dict[str, Any], change: Any) -> None:
        try:
            self.api.system_mutate(key, meta.get("namespace", ""), meta["name"], change)
        except ApiError as exc:
            log.debug("garbage collection could not update %s: %s", meta["name"], exc)

    def has_work(self) -> bool:
        api = self.api
        return bool(
            api.gc_owner_uids
            or api.gc_finalizing
            or api.terminating_namespaces
            or api.graceful_pods
            or api.terminating_crds
        )

    async def run(self) -> None:
        """Loop forever; cheap when idle."""
        while True:
            await asyncio.sleep(self.interval)
            if self.has_work():
                try:
                    self.run_once()
                except Exception:  # a controller must not die of one bad object
                    log.exception("garbage collection step failed")
