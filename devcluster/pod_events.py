"""Events about pods, as the scheduler and kubelet record them (`kubectl describe pod`).

Recording never blocks the caller: events go through a queue to one sender thread, and a lost
event is only logged. Repeats of the same reason and message for the same pod within a few
minutes bump `count` on the existing Event instead of creating another, as client-go does.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from typing import Any

from devcluster.kube_client import ApiError, KubeClient

log = logging.getLogger(__name__)
Obj = dict[str, Any]
_REPEAT_WINDOW = 600.0


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def build_event(
    pod: Obj, kind: str, reason: str, message: str, *, component: str, host: str | None, now: str
) -> Obj:
    """A core/v1 Event about `pod` (kind Normal or Warning)."""
    meta = pod["metadata"]
    source: Obj = {"component": component}
    if host:
        source["host"] = host
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta['name']}.{secrets.token_hex(8)}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": "v1",
            "kind": "Pod",
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta.get("uid"),
            "resourceVersion": meta.get("resourceVersion"),
        },
        "reason": reason,
        "message": message,
        "type": kind,
        "source": source,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "reportingComponent": component,
        "reportingInstance": host or "",
    }


class EventRecorder:
    """Sends pod events in the background."""

    def __init__(self, client: KubeClient, component: str) -> None:
        self.client = client
        self.component = component
        self._queue: queue.Queue[tuple[Obj, str, str, str, str | None] | None] = queue.Queue(
            maxsize=10000
        )
        self._recent: dict[tuple[str, str, str], tuple[str, int, float]] = {}
        self._thread = threading.Thread(
            target=self._send_all, name=f"events-{component}", daemon=True
        )
        self._thread.start()

    def record(
        self, pod: Obj, kind: str, reason: str, message: str, host: str | None = None
    ) -> None:
        """Queue an event; drops it (with a log line) if the queue is full."""
        try:
            self._queue.put_nowait((pod, kind, reason, message, host))
        except queue.Full:
            log.warning("event queue full; dropped %s for %s", reason, pod["metadata"]["name"])

    def stop(self) -> None:
        """Send what is queued, then stop."""
        self._queue.put(None)
        self._thread.join(timeout=5)

    def _send_all(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                self._send(*item)
            except Exception as error:  # events are best effort, like client-go's recorder
                log.debug("event not recorded: %s", error)

    def _send(self, pod: Obj, kind: str, reason: str, message: str, host: str | None) -> None:
        meta = pod["metadata"]
        key = (meta.get("uid", ""), reason, message)
        now = _now()
        recent = self._recent.get(key)
        namespace = meta["namespace"]
        if recent is not None and time.monotonic() - recent[2] < _REPEAT_WINDOW:
            name, count, _ = recent
            try:
                self.client.merge_patch(
                    f"/api/v1/namespaces/{namespace}/events/{name}",
                    {"count": count + 1, "lastTimestamp": now},
                )
                self._recent[key] = (name, count + 1, time.monotonic())
                return
            except ApiError as error:
                if error.code != 404:
                    raise
        event = build_event(
            pod, kind, reason, message, component=self.component, host=host, now=now
        )
        self.client.create(f"/api/v1/namespaces/{namespace}/events", event)
        self._recent[key] = (event["metadata"]["name"], 1, time.monotonic())
        if len(self._recent) > 5000:
            cutoff = time.monotonic() - _REPEAT_WINDOW
            self._recent = {k: v for k, v in self._recent.items() if v[2] > cutoff}
