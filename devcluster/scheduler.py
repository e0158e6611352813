"""The scheduler loop: places unbound pods through `pods/binding`, as kube-scheduler does.

Decisions come from `scheduling`. A pod that fits nowhere gets `PodScheduled=False`,
`reason: Unschedulable` and the scheduler's message through `pods/status`, and is retried
whenever pods or nodes change, and periodically.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from typing import Any

from devcluster import scheduling
from devcluster.kube_client import ApiError, Informer, KubeClient
from devcluster.pod_events import EventRecorder

log = logging.getLogger(__name__)
Obj = dict[str, Any]


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def unschedulable_patch(pod: Obj, message: str, now: str) -> Obj | None:
    """The `pods/status` merge patch recording the failure, or None if already recorded."""
    conditions = list((pod.get("status") or {}).get("conditions") or [])
    existing = next((c for c in conditions if c.get("type") == "PodScheduled"), None)
    if (
        existing
        and existing.get("status") == "False"
        and existing.get("reason") == "Unschedulable"
        and existing.get("message") == message
    ):
        return None
    since = (
        existing.get("lastTransitionTime")
        if existing and existing.get("status") == "False"
        else now
    )
    condition = {
        "type": "PodScheduled",
        "status": "False",
        "reason": "Unschedulable",
        "message": message,
        "lastProbeTime": None,
        "lastTransitionTime": since,
    }
    others = [c for c in conditions if c.get("type") != "PodScheduled"]
    return {"status": {"phase": "Pending", "conditions": [condition, *others]}}


def binding(pod: Obj, node: str) -> Obj:
    """The Binding object a scheduler POSTs to `pods/{name}/binding`."""
    meta = pod["metadata"]
    return {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta.get("uid")},
        "target": {"apiVersion": "v1", "kind": "Node", "name": node},
    }


def _priority_order(pod: Obj) -> tuple[int, str, str]:
    spec, meta = pod.get("spec") or {}, pod.get("metadata") or {}
    return (
        -int(spec.get("priority") or 0),
        meta.get("creationTimestamp", ""),
        meta.get("name", ""),
    )


class Scheduler:
    """Schedules pending pods onto any Node in the cluster."""

    def __init__(
        self,
        client: KubeClient,
        pods: Informer,
        nodes: Informer,
        paused: threading.Event,
        retry_seconds: float = 5.0,
    ) -> None:
        self.client = client
        self.pods = pods
        self.nodes = nodes
        self.paused = paused
        self.retry_seconds = retry_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._assumed: dict[str, tuple[str, Obj]] = {}  # pod uid -> (node, pod) until seen bound
        self._thread: threading.Thread | None = None
        self.binding_supported: bool | None = None
        self.events: EventRecorder | None = None  # set by the agent
        # pod uid -> (retry not before, current back-off): a failed binding waits 1 s, 2 s, ..
        # up to 10 s, like kube-scheduler's pod back-off.
        self._backoff: dict[str, tuple[float, float]] = {}

    def handle(self, kind: str, obj: Obj) -> None:
        """Informer handler: any pod or node change may make room or need a decision."""
        del kind, obj
        self._wake.set()

    def start(self) -> None:
        """Start the scheduling loop in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the loop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.retry_seconds)
            self._wake.clear()
            if self._stop.is_set() or self.paused.is_set():
                continue
            if not (self.pods.synced.is_set() and self.nodes.synced.is_set()):
                continue
            try:
                self.schedule_pending()
            except Exception:  # the next wake-up tries again
                log.exception("scheduling pass failed")

    def _bound_by_node(self, pods: list[Obj]) -> dict[str, list[Obj]]:
        bound: dict[str, list[Obj]] = {}
        seen = set()
        for pod in pods:
            node = (pod.get("spec") or {}).get("nodeName")
            if node and not scheduling.is_terminated(pod):
                bound.setdefault(node, []).append(pod)
                seen.add(pod["metadata"]["uid"])
        live = {p["metadata"]["uid"] for p in pods}
        for uid in [u for u in self._backoff if u not in live]:
            del self._backoff[uid]
        for uid, (node, pod) in list(self._assumed.items()):
            if uid in seen or uid not in live:
                del self._assumed[uid]  # the informer caught up, or the pod is gone
            else:
                bound.setdefault(node, []).append(pod)
        return bound

    def schedule_pending(self) -> None:
        """One pass over all pods waiting for a node."""
        pods = self.pods.items()
        nodes = self.nodes.items()
        bound = self._bound_by_node(pods)
        pending = sorted(
            (
                p
                for p in pods
                if scheduling.wants_scheduling(p) and p["metadata"]["uid"] not in self._assumed
            ),
            key=_priority_order,
        )
        now = time.monotonic()
        for pod in pending:
            if self._backoff.get(pod["metadata"]["uid"], (0.0, 0.0))[0] > now:
                continue
            decision = scheduling.schedule(pod, nodes, bound)
            if decision.node is not None:
                uid = pod["metadata"]["uid"]
                if self._bind(pod, decision.node):
                    self._assumed[uid] = (decision.node, pod)
                    self._backoff.pop(uid, None)
                    bound.setdefault(decision.node, []).append(pod)
                else:
                    delay = min(self._backoff.get(uid, (0.0, 0.5))[1] * 2, 10.0)
                    self._backoff[uid] = (now + delay, delay)
            else:
                self._record_unschedulable(pod, decision.message)

    def _bind(self, pod: Obj, node: str) -> bool:
        meta = pod["metadata"]
        path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding"
        try:
            self.client.create(path, binding(pod, node))
            self.binding_supported = True
            if self.events is not None:
                self.events.record(
                    pod,
                    "Normal",
                    "Scheduled",
                    f"Successfully assigned {meta['namespace']}/{meta['name']} to {node}",
                )
            return True
        except ApiError as error:
            if error.code in (404, 405) and self.binding_supported is None:
                log.error(
                    "the API server does not accept pods/binding (HTTP %s); pods cannot "
                    "be scheduled",
                    error.code,
                )
            elif error.code != 409:
                log.warning("binding %s to %s failed: %s", meta["name"], node, error)
            return False

    def _record_unschedulable(self, pod: Obj, message: str) -> None:
        patch = unschedulable_patch(pod, message, _now())
        if patch is None:
            return
        if self.events is not None:
            self.events.record(pod, "Warning", "FailedScheduling", message)
        meta = pod["metadata"]
        try:
            self.client.merge_patch(
                f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/status", patch
            )
        except ApiError as error:
            if error.code != 404:
                log.warning("could not mark %s unschedulable: %s", meta["name"], error)
