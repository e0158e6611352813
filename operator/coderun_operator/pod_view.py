"""A run pod's state as the operator needs it, read from the Pod object in one place.

Kubernetes spreads what matters over phase, conditions and container statuses; this module
gathers it into one small frozen value so the status mapping stays readable.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coderun_operator.run_pod import CONTAINER_NAME


@dataclass(frozen=True)
class Terminated:
    """The run container's ``state.terminated``."""

    exit_code: int | None
    signal: int | None
    reason: str
    message: str
    started_at: str | None
    finished_at: str | None


@dataclass(frozen=True)
class PodView:
    """What the operator reads from a run pod."""

    name: str
    phase: str
    reason: str
    message: str
    node_name: str | None
    created_at: str | None
    scheduled_at: str | None
    unschedulable_since: str | None
    unschedulable_message: str
    waiting_reason: str
    waiting_message: str
    running_since: str | None
    terminated: Terminated | None
    deleting: bool
    active_deadline_seconds: int | None = None

    @property
    def finished(self) -> bool:
        """The pod will run nothing more: its log is complete."""
        return self.phase in {"Succeeded", "Failed"} or self.terminated is not None


def _condition(status: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == kind:
            return condition
    return {}


def _container_state(status: Mapping[str, Any]) -> Mapping[str, Any]:
    for container in status.get("containerStatuses") or []:
        if isinstance(container, Mapping) and container.get("name") == CONTAINER_NAME:
            return container.get("state") or {}
    return {}


def _terminated(state: Mapping[str, Any]) -> Terminated | None:
    terminated = state.get("terminated")
    if not isinstance(terminated, Mapping):
        return None
    exit_code = terminated.get("exitCode")
    signal = terminated.get("signal")
    return Terminated(
        exit_code=exit_code if isinstance(exit_code, int) else None,
        signal=signal if isinstance(signal, int) and signal > 0 else None,
        reason=str(terminated.get("reason") or ""),
        message=str(terminated.get("message") or ""),
        started_at=terminated.get("startedAt"),
        finished_at=terminated.get("finishedAt"),
    )


def view_pod(pod: Mapping[str, Any]) -> PodView:
    """Read a Pod object (as a dict) into a `PodView`."""
    metadata = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    status = pod.get("status") or {}
    scheduled = _condition(status, "PodScheduled")
    state = _container_state(status)
    waiting = state.get("waiting") or {}
    running = state.get("running") or {}
    unschedulable = scheduled.get("status") == "False"
    return PodView(
        name=str(metadata.get("name") or ""),
        phase=str(status.get("phase") or "Pending"),
        reason=str(status.get("reason") or ""),
        message=str(status.get("message") or ""),
        node_name=spec.get("nodeName") or None,
        created_at=metadata.get("creationTimestamp"),
        scheduled_at=scheduled.get("lastTransitionTime")
        if scheduled.get("status") == "True"
        else None,
        unschedulable_since=scheduled.get("lastTransitionTime") if unschedulable else None,
        unschedulable_message=str(scheduled.get("message") or "") if unschedulable else "",
        waiting_reason=str(waiting.get("reason") or ""),
        waiting_message=str(waiting.get("message") or ""),
        running_since=running.get("startedAt"),
        terminated=_terminated(state),
        deleting=bool(metadata.get("deletionTimestamp")),
        active_deadline_seconds=spec.get("activeDeadlineSeconds"),
    )
