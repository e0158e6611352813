"""What to do next for one CodeRun, decided from the run, its pod and the clock. Pure.

The operator is level-triggered: every event about a run or its pod, and every wake-up, asks
`decide` what the world should look like and carries out the actions it returns. Nothing is
remembered between calls except what the objects themselves say, so a restarted operator
picks up every run where it stands.

API writes for a run that succeeds: create the pod, mark it Running (skipped when the run is
over before the operator sees it running), write the terminal status, delete the pod.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from coderun_operator.pod_view import view_pod
from coderun_operator.run_pod import build_run_pod
from coderun_operator.run_spec import Rejection, RunPlan, resolve_run_spec
from coderun_operator.run_status import (
    TERMINAL_PHASES,
    RunContext,
    cancelled_status,
    lost_status,
    parse_time,
    progress_status,
    rejected_status,
)
from coderun_operator.settings import OperatorSettings

# Progress worth a write: the floor of writes per run leaves out routine Pending/Starting.
_PROGRESS_WORTH_WRITING = frozenset({"Queued"})
# How often a run whose pod has not finished is looked at again for its time limits.
PENDING_RECHECK_SECONDS = 5.0


@dataclass(frozen=True)
class CreatePod:
    """Create the run's pod (adopting it when it already exists and is ours)."""

    manifest: dict[str, Any]


@dataclass(frozen=True)
class WriteStatus:
    """Replace the run's status with this one (one patch of the status subresource)."""

    status: dict[str, Any]


@dataclass(frozen=True)
class FinishFromPod:
    """Read the finished pod's log once, write the terminal status, then maybe delete it."""

    pod_name: str
    context: RunContext
    cancelled: bool
    delete_pod: bool


@dataclass(frozen=True)
class StopPod:
    """End the pod's container now but keep the pod, so that its log can still be read.

    Lowering ``activeDeadlineSeconds`` to the minimum makes the kubelet stop the container
    (SIGTERM, then SIGKILL) and leave the pod Failed with its log, where deleting it would
    take the log along.
    """

    pod_name: str


STOP_DEADLINE_SECONDS = 1


@dataclass(frozen=True)
class DeletePod:
    """Delete the run's pod."""

    pod_name: str


@dataclass(frozen=True)
class DeleteRun:
    """Delete the run itself: its time to live after finishing is over."""


Action = CreatePod | WriteStatus | FinishFromPod | StopPod | DeletePod | DeleteRun


@dataclass(frozen=True)
class Decision:
    """Actions to carry out in order, and when to look at the run again without an event."""

    actions: tuple[Action, ...] = ()
    wake_after_seconds: float | None = None
    notes: tuple[str, ...] = field(default=())


def is_terminal(run: Mapping[str, Any]) -> bool:
    """True once the run has its final phase."""
    return (run.get("status") or {}).get("phase") in TERMINAL_PHASES


# What a finished run no longer needs: the snippet, its input and its output. Each may be
# hundreds of kilobytes, and finished runs outnumber the others until their TTL ends.
_BULK_FIELDS = {"spec": frozenset({"code", "stdin"}), "status": frozenset({"stdout", "stderr"})}


def run_to_keep(run: Mapping[str, Any]) -> dict[str, Any]:
    """The copy of ``run`` worth keeping in memory: a finished run without its bulk fields.

    Deciding about a finished run takes only its metadata, TTL and completion time, and no
    status is written to a run once it has finished.
    """
    kept = dict(run)
    if not is_terminal(run):
        return kept
    for section, fields in _BULK_FIELDS.items():
        part = kept.get(section)
        if isinstance(part, Mapping):
            kept[section] = {key: value for key, value in part.items() if key not in fields}
    return kept


def run_context(plan: RunPlan, settings: OperatorSettings) -> RunContext:
    """The limits a run runs under, for status messages."""
    return RunContext(
        timeout_seconds=plan.timeout_seconds,
        memory=plan.memory,
        image=plan.image,
        pending_limit_seconds=settings.pending_limit_seconds,
        deadline_seconds=plan.timeout_seconds + settings.pod_deadline_grace_seconds,
    )


def _decide_finished(
    run: Mapping[str, Any], pod: Mapping[str, Any] | None, now: datetime, settings: OperatorSettings
) -> Decision:
    actions: list[Action] = []
    status = run.get("status") or {}
    if pod is not None and settings.delete_finished_pods and not _deleting(pod):
        actions.append(DeletePod(pod["metadata"]["name"]))
    ttl = (run.get("spec") or {}).get("ttlSecondsAfterFinished")
    if not isinstance(ttl, int) or isinstance(ttl, bool) or ttl < 0:
        ttl = settings.limits.default_ttl_seconds_after_finished
    finished_at = parse_time(status.get("completionTime"))
    if finished_at is None:
        return Decision(tuple(actions))
    expires = finished_at + timedelta(seconds=ttl)
    if expires <= now:
        return Decision((*actions, DeleteRun()))
    return Decision(tuple(actions), wake_after_seconds=(expires - now).total_seconds())


def _deleting(obj: Mapping[str, Any]) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def _same_progress(current: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    return all(current.get(key) == new.get(key) for key in ("phase", "reason", "message"))


def _decide_with_pod(
    run: Mapping[str, Any],
    pod: Mapping[str, Any],
    plan: RunPlan,
    now: datetime,
    settings: OperatorSettings,
) -> Decision:
    view = view_pod(pod)
    context = run_context(plan, settings)
    cancelled = bool((run.get("spec") or {}).get("cancel"))
    if view.finished:
        finish = FinishFromPod(view.name, context, cancelled, settings.delete_finished_pods)
        return Decision((finish,))
    if cancelled and view.running_since and not view.deleting:
        # Stop the running snippet but keep its pod: the verdict (Cancelled) then comes with
        # what it printed so far, read from the log once the pod has ended.
        if view.active_deadline_seconds == STOP_DEADLINE_SECONDS:
            return Decision(wake_after_seconds=PENDING_RECHECK_SECONDS)
        return Decision((StopPod(view.name),), wake_after_seconds=PENDING_RECHECK_SECONDS)
    if cancelled:
        return Decision((WriteStatus(cancelled_status(view, now)), DeletePod(view.name)))
    if view.deleting:
        # Someone else is stopping the pod; its end (or disappearance) brings the verdict.
        return Decision(notes=("pod is being deleted",))
    progress = progress_status(view, context, now)
    current = run.get("status") or {}
    # Limits on waiting (pending limit, silent node) need a look without an event.
    wake = PENDING_RECHECK_SECONDS
    worth_writing = progress["phase"] != "Pending" or progress["reason"] in _PROGRESS_WORTH_WRITING
    if not worth_writing or _same_progress(current, progress):
        return Decision(wake_after_seconds=wake)
    actions: list[Action] = [WriteStatus(progress)]
    if progress["phase"] in TERMINAL_PHASES:
        actions.append(DeletePod(view.name))
        wake = None
    return Decision(tuple(actions), wake_after_seconds=wake)


def _pod_seen_before(run: Mapping[str, Any]) -> bool:
    status = run.get("status") or {}
    return status.get("phase") == "Running" or bool(status.get("podName"))


def decide(
    run: Mapping[str, Any],
    pod: Mapping[str, Any] | None,
    now: datetime,
    settings: OperatorSettings,
) -> Decision:
    """Decide the next actions for ``run``, whose pod is ``pod`` (None: there is none)."""
    if _deleting(run):
        return Decision(notes=("run is being deleted; its pod goes with it",))
    if is_terminal(run):
        return _decide_finished(run, pod, now, settings)
    resolved = resolve_run_spec(run.get("spec") or {}, settings.limits)
    if isinstance(resolved, Rejection):
        return Decision((WriteStatus(rejected_status(resolved, now)),))
    if pod is not None:
        return _decide_with_pod(run, pod, resolved, now, settings)
    if (run.get("spec") or {}).get("cancel"):
        return Decision((WriteStatus(cancelled_status(None, now)),))
    if _pod_seen_before(run):
        detail = "it was deleted or lost with its node before the operator read its result."
        return Decision((WriteStatus(lost_status(detail, now)),))
    return Decision((CreatePod(build_run_pod(run, resolved, settings)),))
