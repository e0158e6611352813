"""The status of a CodeRun, derived from its pod and the runner's log. Pure functions.

Each function returns the whole ``status`` to write (or a part of it for progress), so the
operator can write a terminal status in one patch. Messages are sentences for the person
who submitted the snippet; reasons are the one-word vocabulary of the CRD.
"""

from __future__ import annotations

import signal as signals
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from coderun_operator.pod_view import PodView
from coderun_operator.run_log import RunLog, RunResult
from coderun_operator.run_spec import Rejection

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
# The kubelet's waiting reasons that will not fix themselves for this pod.
IMAGE_PULL_FAILURES = frozenset({"ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
CONFIG_FAILURES = frozenset(
    {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
)
OOM_EXIT_CODE = 128 + signals.SIGKILL


@dataclass(frozen=True)
class RunContext:
    """The limits a run ran under, for messages and deadlines."""

    timeout_seconds: int
    memory: str
    image: str
    pending_limit_seconds: int
    deadline_seconds: int


def timestamp(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds, as the status stores times."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def parse_time(text: str | None) -> datetime | None:
    """Parse an RFC 3339 time from Kubernetes or the runner; None when absent or malformed."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def human_duration(milliseconds: int) -> str:
    """A short duration for people: 41ms, 1.25s, 2m03s."""
    if milliseconds < 1000:
        return f"{milliseconds}ms"
    if milliseconds < 60_000:
        return f"{milliseconds / 1000:.2f}s"
    minutes, seconds = divmod(milliseconds // 1000, 60)
    return f"{minutes}m{seconds:02d}s"


def signal_name(number: int) -> str:
    """SIGSEGV for 11; a plain description for numbers without a name."""
    try:
        return signals.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _succeeded_condition(phase: str, reason: str, message: str, now: str) -> list[dict]:
    status = {"Succeeded": "True", "Failed": "False"}.get(phase, "Unknown")
    return [
        {
            "type": "Succeeded",
            "status": status,
            "reason": reason,
            "message": message,
            "lastTransitionTime": now,
        }
    ]


def _status(phase: str, reason: str, message: str, now: datetime) -> dict[str, Any]:
    stamp = timestamp(now)
    status: dict[str, Any] = {
        "phase": phase,
        "reason": reason,
        "message": message,
        "conditions": _succeeded_condition(phase, reason, message, stamp),
    }
    if phase in TERMINAL_PHASES:
        status["completionTime"] = stamp
    return status


def rejected_status(rejection: Rejection, now: datetime) -> dict[str, Any]:
    """Status of a run whose spec is outside policy: it never gets a pod."""
    return _status("Failed", "Rejected", rejection.message[:4096], now)


def pod_refused_status(detail: str, now: datetime) -> dict[str, Any]:
    """Status of a run whose pod the cluster will not create (its policy or the pod is wrong)."""
    message = (
        f"The cluster refused to create the run's pod: {detail.rstrip('. ')}. "
        "An administrator must make the operator's settings and the namespace's policy agree."
    )
    return _status("Failed", "ConfigError", message[:4096], now)


def queued_status(why: str, now: datetime) -> dict[str, Any]:
    """Status of a run waiting for capacity (quota full, no node free) before its pod exists."""
    return _status("Pending", "Queued", f"Queued: waiting for capacity. {why}"[:4096], now)


def lost_status(detail: str, now: datetime, view: PodView | None = None) -> dict[str, Any]:
    """Status of a run whose pod vanished before it reported a result."""
    status = _status(
        "Failed", "Lost", f"The run's pod disappeared before the run finished: {detail}"[:4096], now
    )
    return {**status, **(_pod_fields(view) if view else {})}


def _pod_fields(view: PodView) -> dict[str, Any]:
    fields: dict[str, Any] = {"podName": view.name}
    optional = {
        "nodeName": view.node_name,
        "podCreatedTime": view.created_at,
        "scheduledTime": view.scheduled_at,
        "containerStartedTime": view.running_since
        or (view.terminated.started_at if view.terminated else None),
    }
    fields.update({key: value for key, value in optional.items() if value})
    return fields


def progress_status(view: PodView, context: RunContext, now: datetime) -> dict[str, Any]:
    """Status of a run whose pod has not finished: Pending or Running, or a terminal verdict
    when the pod can never start (unschedulable past the limit, image or config failure)."""
    if view.waiting_reason in IMAGE_PULL_FAILURES:
        message = f"The image {context.image} could not be pulled: {view.waiting_message}"
        return {
            **_status("Failed", "ImagePullFailed", message.strip()[:4096], now),
            **_pod_fields(view),
        }
    if view.waiting_reason in CONFIG_FAILURES:
        message = f"The node refused to start the run's container: {view.waiting_message}"
        return {
            **_status("Failed", "ConfigError", message.strip()[:4096], now),
            **_pod_fields(view),
        }
    if _node_went_silent(view, context, now):
        message = (
            f"The node {view.node_name} stopped reporting the run's pod: it did not end it "
            f"within its deadline of {context.deadline_seconds} s."
        )
        return {**_status("Failed", "Lost", message, now), **_pod_fields(view)}
    if view.running_since and not view.deleting:
        message = f"The snippet is running on node {view.node_name}."
        return {**_status("Running", "Started", message, now), **_pod_fields(view)}
    since = parse_time(view.unschedulable_since)
    if since is not None:
        waited = (now - since).total_seconds()
        if waited >= context.pending_limit_seconds:
            message = (
                f"No node could take the run within {context.pending_limit_seconds} s: "
                f"{view.unschedulable_message}"
            )
            return {
                **_status("Failed", "Unschedulable", message.strip()[:4096], now),
                **_pod_fields(view),
            }
        message = f"Queued: no node can take the run yet. {view.unschedulable_message}"
        return {**_status("Pending", "Queued", message.strip()[:4096], now), **_pod_fields(view)}
    return _starting_status(view, context, now)


# Beyond its deadline plus this, a pod that still reports nothing has a node that stopped
# reporting (a real cluster would evict it after about five minutes); the run is lost.
SILENT_NODE_GRACE_SECONDS = 60


def _node_went_silent(view: PodView, context: RunContext, now: datetime) -> bool:
    created = parse_time(view.created_at)
    if view.node_name is None or created is None:
        return False
    return (now - created).total_seconds() >= context.deadline_seconds + SILENT_NODE_GRACE_SECONDS


def _starting_status(view: PodView, context: RunContext, now: datetime) -> dict[str, Any]:
    """A pod that is neither running nor refused: starting, or silent for too long."""
    created = parse_time(view.created_at)
    age = (now - created).total_seconds() if created else 0.0
    if view.node_name is None and age >= context.pending_limit_seconds:
        # No scheduler has said anything at all (not even "unschedulable") in time.
        message = (
            f"No node took the run within {context.pending_limit_seconds} s; the scheduler "
            "did not place its pod."
        )
        return {**_status("Failed", "Unschedulable", message, now), **_pod_fields(view)}
    if view.waiting_reason:
        detail = f"{view.waiting_reason}: {view.waiting_message}".rstrip(": ")
        message = f"The pod is starting on node {view.node_name} ({detail})."
        return {**_status("Pending", "Starting", message[:4096], now), **_pod_fields(view)}
    message = "The pod is waiting to be placed on a node."
    if view.node_name:
        message = f"The pod is starting on node {view.node_name}."
    return {**_status("Pending", "Starting", message, now), **_pod_fields(view)}


def _output_fields(log: RunLog) -> dict[str, Any]:
    return {
        "stdout": log.stdout,
        "stderr": log.stderr,
        "stdoutTruncated": log.stdout_truncated,
        "stderrTruncated": log.stderr_truncated,
        "stdoutBytes": log.stdout_bytes,
        "stderrBytes": log.stderr_bytes,
    }


def _timing_fields(result: RunResult) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if result.started_at:
        fields["startTime"] = result.started_at
    if result.finished_at:
        fields["finishedTime"] = result.finished_at
    if result.duration_ms is not None:
        fields["durationMs"] = result.duration_ms
        fields["duration"] = human_duration(result.duration_ms)
    if result.cpu_ms is not None:
        fields["cpuMs"] = result.cpu_ms
    peak = result.peak_memory_bytes or result.cgroup_peak_memory_bytes
    if peak is not None:
        fields["peakMemoryBytes"] = peak
    return fields


def _truncation_note(log: RunLog) -> str:
    notes = []
    for name, cut, total, kept in (
        ("stdout", log.stdout_truncated, log.stdout_bytes, len(log.stdout.encode())),
        ("stderr", log.stderr_truncated, log.stderr_bytes, len(log.stderr.encode())),
    ):
        if cut:
            notes.append(f"{name} was cut after {kept} of {total} bytes")
    return f" Output was too long: {' and '.join(notes)}." if notes else ""


def _node_saw_an_oom_kill(result: RunResult, view: PodView | None) -> bool:
    """A second witness: the snippet died of SIGKILL and the node reports the container's
    cgroup OOM-killed a process (as containerd does), even if the runner could not tell."""
    terminated = view.terminated if view is not None else None
    return (
        result.signal == signals.SIGKILL
        and terminated is not None
        and terminated.reason == "OOMKilled"
    )


def _verdict_from_result(
    result: RunResult, view: PodView | None, context: RunContext, cancelled: bool
) -> tuple[str, str, str]:
    """(phase, reason, message) from the runner's own result record."""
    if result.error and result.exit_code is None:
        return "Failed", "Error", f"The runner could not run the snippet: {result.error}"
    if result.timed_out:
        return (
            "Failed",
            "Timeout",
            f"The snippet ran longer than its time limit of "
            f"{context.timeout_seconds} s and was stopped.",
        )
    if result.oom_killed or _node_saw_an_oom_kill(result, view):
        return (
            "Failed",
            "OOMKilled",
            f"The snippet used more memory than its limit of {context.memory} and was stopped.",
        )
    if result.stopped_by_signal is not None:
        return _verdict_when_stopped_from_outside(view, context, cancelled)
    if result.signal is not None:
        name = signal_name(result.signal)
        return "Failed", "Killed", f"The snippet was killed by {name} ({result.signal})."
    if result.exit_code == 0:
        return "Succeeded", "Completed", "The snippet finished successfully."
    return "Failed", "Error", f"The snippet exited with code {result.exit_code}."


def _verdict_from_the_cluster(
    view: PodView | None, context: RunContext, cancelled: bool
) -> tuple[str, str, str] | None:
    """The verdict when something outside the snippet ended the pod, if something did."""
    if cancelled:
        return "Failed", "Cancelled", "The run was cancelled."
    if view is not None and view.reason == "DeadlineExceeded":
        return (
            "Failed",
            "Timeout",
            f"The run pod passed its deadline of "
            f"{context.deadline_seconds} s (time limit plus start-up) and was stopped.",
        )
    if view is not None and view.reason == "Evicted":
        return "Failed", "Lost", f"The node evicted the run's pod: {view.message}".strip()
    if view is not None and view.deleting:
        return "Failed", "Lost", "The run's pod was deleted before the snippet finished."
    return None


def _verdict_when_stopped_from_outside(
    view: PodView | None, context: RunContext, cancelled: bool
) -> tuple[str, str, str]:
    return _verdict_from_the_cluster(view, context, cancelled) or (
        "Failed",
        "Lost",
        "The run's pod was stopped by the cluster before the snippet finished.",
    )


def _verdict_without_result(
    view: PodView | None, context: RunContext, cancelled: bool
) -> tuple[str, str, str, int | None]:
    """(phase, reason, message, exit code) from the pod alone: the runner left no verdict."""
    terminated = view.terminated if view else None
    exit_code = terminated.exit_code if terminated else None
    if not cancelled and terminated is not None and terminated.reason == "OOMKilled":
        return (
            "Failed",
            "OOMKilled",
            f"The run pod used more memory than its limit of {context.memory} and was stopped.",
            OOM_EXIT_CODE,
        )
    from_cluster = _verdict_from_the_cluster(view, context, cancelled)
    if from_cluster is not None:
        return (*from_cluster, exit_code)
    if terminated is not None and exit_code is not None:
        return (
            "Failed",
            "Error",
            f"The runner stopped with exit code {exit_code} without reporting a result.",
            exit_code,
        )
    return "Failed", "Lost", "The run's pod ended without reporting a result.", exit_code


def finished_status(
    view: PodView | None,
    log: RunLog | None,
    context: RunContext,
    now: datetime,
    *,
    cancelled: bool = False,
) -> dict[str, Any]:
    """The terminal status of a run whose pod has finished (or vanished, ``view=None``)."""
    result = log.result if log else None
    extra: dict[str, Any] = {}
    if result is not None:
        phase, reason, message = _verdict_from_result(result, view, context, cancelled)
        exit_code, signal = result.exit_code, result.signal
        extra.update(_timing_fields(result))
    else:
        phase, reason, message, exit_code = _verdict_without_result(view, context, cancelled)
        signal = exit_code - 128 if exit_code is not None and exit_code > 128 else None
        if view is not None and view.terminated is not None:
            extra.update(
                {
                    k: v
                    for k, v in (
                        ("startTime", view.terminated.started_at),
                        ("finishedTime", view.terminated.finished_at),
                    )
                    if v
                }
            )
    if log is not None:
        message += _truncation_note(log)
        extra.update(_output_fields(log))
    status = _status(phase, reason, message[:4096], now)
    if exit_code is not None:
        status["exitCode"] = exit_code
    if signal is not None:
        status["signal"] = signal
    if view is not None:
        status.update(_pod_fields(view))
    status["image"] = context.image
    return {**status, **extra}


def cancelled_status(view: PodView | None, now: datetime) -> dict[str, Any]:
    """Status of a run cancelled before its pod produced anything worth reading."""
    status = _status("Failed", "Cancelled", "The run was cancelled before it finished.", now)
    return {**status, **(_pod_fields(view) if view else {})}
