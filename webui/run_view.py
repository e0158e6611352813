"""What a page or the JSON API shows of one CodeRun object (a plain dict from the API).

Pure: reads the object defensively (the operator may not have written any status yet) and
never raises for a missing or odd field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from markupsafe import Markup

from webui.output_render import output_html

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})

# Where a run's time goes, in the order things happen (status field, label).
TIMING_STEPS = (
    ("podCreatedTime", "Pod created"),
    ("scheduledTime", "Placed on a node"),
    ("containerStartedTime", "Container started"),
    ("startTime", "Code started"),
    ("finishedTime", "Code finished"),
    ("completionTime", "Result recorded"),
)


def _status(obj: dict[str, Any]) -> dict[str, Any]:
    status = obj.get("status")
    return status if isinstance(status, dict) else {}


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def phase_of(obj: dict[str, Any]) -> str:
    """The run's phase; a run the operator has not seen yet is Pending."""
    phase = _status(obj).get("phase")
    return phase if isinstance(phase, str) and phase else "Pending"


def is_terminal(obj: dict[str, Any]) -> bool:
    """True once the run has finished, one way or another."""
    return phase_of(obj) in TERMINAL_PHASES


def resource_version(obj: dict[str, Any]) -> str:
    """The object's resourceVersion ("" when missing)."""
    metadata = obj.get("metadata") or {}
    return str(metadata.get("resourceVersion") or "")


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp as an aware datetime, or None."""
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def format_seconds(seconds: float) -> str:
    """A short duration for people: 420 ms, 3.25 s, 2 min 5 s."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s"


def format_bytes(count: int) -> str:
    """A byte count for people: 512 bytes, 64.0 KiB, 1.5 MiB."""
    if count < 1024:
        return f"{count:,} byte" + ("" if count == 1 else "s")
    if count < 1024 * 1024:
        return f"{count / 1024:.1f} KiB"
    return f"{count / (1024 * 1024):.1f} MiB"


@dataclass(frozen=True)
class StreamView:
    """One output stream (stdout or stderr) as the page shows it."""

    key: str
    title: str
    text: str
    html: Markup
    truncated: bool
    total_bytes: int | None
    shown_bytes: int


@dataclass(frozen=True)
class TimingView:
    """One step of a run's life: when it happened after creation and how long it took."""

    label: str
    at: str
    after_created: str | None
    took: str | None


@dataclass(frozen=True)
class RunView:
    """Everything the run page shows."""

    name: str
    phase: str
    reason: str
    message: str
    headline: str
    terminal: bool
    cancel_requested: bool
    code: str
    stdin: str | None
    timeout_seconds: int | None
    created: str
    resource_version: str
    exit_code: int | None
    signal: int | None
    duration: str | None
    cpu: str | None
    peak_memory: str | None
    stdout: StreamView
    stderr: StreamView
    timings: list[TimingView]


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _stream(status: dict[str, Any], key: str, title: str) -> StreamView:
    text = status.get(key)
    text = text if isinstance(text, str) else ""
    shown = len(text.encode("utf-8", "replace"))
    total = _int_or_none(status.get(f"{key}Bytes"))
    return StreamView(
        key=key,
        title=title,
        text=text,
        html=output_html(text),
        truncated=status.get(f"{key}Truncated") is True,
        total_bytes=total,
        shown_bytes=min(shown, total) if total is not None else shown,
    )


def _timings(obj: dict[str, Any], status: dict[str, Any]) -> list[TimingView]:
    created = parse_time((obj.get("metadata") or {}).get("creationTimestamp"))
    rows: list[TimingView] = []
    previous = created
    for field, label in TIMING_STEPS:
        moment = parse_time(status.get(field))
        if moment is None:
            continue
        # creationTimestamp has whole-second precision, so a step can seem to come before it.
        after = format_seconds(max(0.0, (moment - created).total_seconds())) if created else None
        took = format_seconds(max(0.0, (moment - previous).total_seconds())) if previous else None
        rows.append(TimingView(label, status[field], after, took))
        previous = moment
    return rows


def headline(phase: str, reason: str, cancel_requested: bool, message: str = "") -> str:
    """One line saying where the run is, for the status region and the page title."""
    if phase == "Pending":
        if cancel_requested:
            return "Cancelling…"
        # The operator says "queued" in the message while a run waits for capacity.
        return "Queued" if "queue" in message.lower() else "Waiting to start"
    if phase == "Running":
        return "Cancelling…" if cancel_requested else "Running"
    if phase == "Succeeded":
        return "Finished"
    return f"Failed: {reason}" if reason else "Failed"


def run_view(obj: dict[str, Any]) -> RunView:
    """The page's view of a CodeRun object."""
    status, spec = _status(obj), _spec(obj)
    metadata = obj.get("metadata") or {}
    phase = phase_of(obj)
    reason = status.get("reason") if isinstance(status.get("reason"), str) else ""
    message = status.get("message") if isinstance(status.get("message"), str) else ""
    cancel = spec.get("cancel") is True
    duration_ms = _int_or_none(status.get("durationMs"))
    cpu_ms = _int_or_none(status.get("cpuMs"))
    peak = _int_or_none(status.get("peakMemoryBytes"))
    stdin = spec.get("stdin")
    return RunView(
        name=str(metadata.get("name") or ""),
        phase=phase,
        reason=reason,
        message=message,
        headline=headline(phase, reason, cancel, message),
        terminal=phase in TERMINAL_PHASES,
        cancel_requested=cancel,
        code=spec.get("code") if isinstance(spec.get("code"), str) else "",
        stdin=stdin if isinstance(stdin, str) else None,
        timeout_seconds=_int_or_none(spec.get("timeoutSeconds")),
        created=str(metadata.get("creationTimestamp") or ""),
        resource_version=resource_version(obj),
        exit_code=_int_or_none(status.get("exitCode")),
        signal=_int_or_none(status.get("signal")),
        duration=format_seconds(duration_ms / 1000) if duration_ms is not None else None,
        cpu=format_seconds(cpu_ms / 1000) if cpu_ms is not None else None,
        peak_memory=format_bytes(peak) if peak is not None else None,
        stdout=_stream(status, "stdout", "Standard output"),
        stderr=_stream(status, "stderr", "Standard error"),
        timings=_timings(obj, status),
    )
