"""Parse the container log written by the runner into output, counts and the verdict.

The log may be cut off (the container was OOM-killed or hit its deadline), interleaved with lines
that are not records (a warning on the runner's stderr) or hostile; parsing never raises and
reports what it had to skip in ``RunLog.problems``. The record format is defined by
`coderun_operator.runner`, which also owns the size bound re-exported here as `max_log_bytes`.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from coderun_operator import runner

RECORD_PREFIX = runner.RECORD_PREFIX.encode("ascii")
RECORD_VERSION = runner.RECORD_VERSION
MAX_PROBLEMS = 20
# Counts and durations above this are not believable; they become None rather than poison.
_MAX_NUMBER = 2**63 - 1
_MAX_SIGNAL = 128
_MAX_TEXT_CHARS = 1000
# The one timestamp format the runner writes; the status schema wants RFC 3339 date-times.
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z")
# JSON can carry lone surrogates ("\ud800"), which no UTF-8 status could hold.
_SURROGATE = re.compile("[\ud800-\udfff]")


def max_log_bytes(stdout_limit_bytes: int, stderr_limit_bytes: int, timeout_seconds: float) -> int:
    """Largest log the runner writes for these limits: the bytes to read from the pod log."""
    return int(runner.max_log_bytes(stdout_limit_bytes, stderr_limit_bytes, timeout_seconds))


@dataclass(frozen=True)
class RunResult:
    """The runner's result record, field by field; a field it could not trust is None."""

    exit_code: int | None
    signal: int | None
    timed_out: bool
    oom_killed: bool
    stopped_by_signal: int | None
    duration_ms: int | None
    cpu_ms: int | None
    peak_memory_bytes: int | None
    cgroup_peak_memory_bytes: int | None
    stdout_bytes: int | None
    stderr_bytes: int | None
    stdout_truncated: bool
    stderr_truncated: bool
    started_at: str | None
    finished_at: str | None
    error: str | None


@dataclass(frozen=True)
class RunLog:
    """What a run printed and how it ended, as far as the log tells.

    ``stdout``/``stderr`` hold the captured bytes (at most the caps) decoded for display;
    ``*_bytes`` count everything the snippet wrote, past the caps too, when the result record says
    so (otherwise what arrived). ``result`` is None when the log has no result record, e.g. the
    container was killed; ``started`` says whether the snippet was started at all.
    """

    stdout: str
    stderr: str
    stdout_bytes: int
    stderr_bytes: int
    stdout_truncated: bool
    stderr_truncated: bool
    result: RunResult | None
    started: bool
    problems: tuple[str, ...]


def decode_output(data: bytes, *, truncated: bool = False) -> str:
    """Decode captured bytes for display: UTF-8, invalid bytes become U+FFFD.

    When the stream was truncated, a multi-byte character cut in half by the cap at the very end
    is dropped instead of being shown as U+FFFD.
    """
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    return decoder.decode(data, final=not truncated)


def _int_or_none(value: Any, high: int = _MAX_NUMBER) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        return None
    return value


def _text_or_none(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    return _SURROGATE.sub("\ufffd", value[:_MAX_TEXT_CHARS])


def _timestamp_or_none(value: Any) -> str | None:
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        return None
    try:
        datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        return None
    return value


def _result_from_record(record: dict[str, Any]) -> RunResult:
    return RunResult(
        exit_code=_int_or_none(record.get("exitCode"), 255),
        signal=_int_or_none(record.get("signal"), _MAX_SIGNAL),
        timed_out=record.get("timedOut") is True,
        oom_killed=record.get("oomKilled") is True,
        stopped_by_signal=_int_or_none(record.get("stoppedBySignal"), _MAX_SIGNAL),
        duration_ms=_int_or_none(record.get("durationMs")),
        cpu_ms=_int_or_none(record.get("cpuMs")),
        peak_memory_bytes=_int_or_none(record.get("peakMemoryBytes")),
        cgroup_peak_memory_bytes=_int_or_none(record.get("cgroupPeakMemoryBytes")),
        stdout_bytes=_int_or_none(record.get("stdoutBytes")),
        stderr_bytes=_int_or_none(record.get("stderrBytes")),
        stdout_truncated=record.get("stdoutTruncated") is True,
        stderr_truncated=record.get("stderrTruncated") is True,
        started_at=_timestamp_or_none(record.get("startedAt")),
        finished_at=_timestamp_or_none(record.get("finishedAt")),
        error=_text_or_none(record.get("error")),
    )


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed")


def _load_record(body: bytes) -> dict[str, Any] | None:
    try:
        record = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return None
    return record if isinstance(record, dict) else None


class _Problems:
    """Collects problem sentences, keeping the list short whatever the log holds."""

    def __init__(self) -> None:
        self.items: list[str] = []
        self.summary: list[str] = []
        self.dropped = 0

    def add(self, text: str) -> None:
        if len(self.items) < MAX_PROBLEMS:
            self.items.append(text)
        else:
            self.dropped += 1

    def add_summary(self, text: str) -> None:
        """A problem about the whole log; always listed, after the per-line ones."""
        self.summary.append(text)

    def final(self) -> tuple[str, ...]:
        more = [f"{self.dropped} more problems not listed."] if self.dropped else []
        return (*self.items, *more, *self.summary)


class _Parser:
    """Walks the log line by line; state lives here so each step is a small method."""

    def __init__(self) -> None:
        self.streams = {"out": bytearray(), "err": bytearray()}
        self.problems = _Problems()
        self.expected_seq = 0
        self.started = False
        self.limits: dict[str, int] = {}
        self.result: RunResult | None = None
        self.garbage_lines = 0

    def feed_line(self, line: bytes, number: int, is_last: bool) -> None:
        line = line.rstrip(b"\r")
        if not line.startswith(RECORD_PREFIX):
            if line.strip():
                self.garbage_lines += 1
            return
        record = _load_record(line[len(RECORD_PREFIX) :])
        if record is None:
            where = "the last line (cut off?)" if is_last else f"line {number}"
            self.problems.add(f"A record on {where} is not valid JSON and was skipped.")
            return
        self.feed_record(record, number)

    def feed_record(self, record: dict[str, Any], number: int) -> None:
        version, seq, kind = record.get("v"), record.get("seq"), record.get("t")
        if version != RECORD_VERSION or isinstance(version, bool):
            self.problems.add(f"Record on line {number} has unknown version {version!r:.40}.")
            return
        if _int_or_none(seq) is None or kind not in runner.RECORD_TYPES:
            self.problems.add(f"Record on line {number} has no valid seq or type; skipped.")
            return
        if self.result is not None:
            if kind == "result":
                self.problems.add(f"Duplicate result record on line {number} ignored.")
            else:
                self.problems.add(f"Record on line {number} comes after the result; ignored.")
            return
        if seq < self.expected_seq:
            self.problems.add(f"Record seq {seq} on line {number} repeats an earlier one; skipped.")
            return
        if seq > self.expected_seq:
            missing = seq - self.expected_seq
            self.problems.add(f"{missing} record(s) missing before seq {seq} (line {number}).")
        self.expected_seq = seq + 1
        if kind == "start":
            self.accept_start(record)
        elif kind == "result":
            self.result = _result_from_record(record)
        else:
            self.accept_data(kind, record, number)

    def accept_start(self, record: dict[str, Any]) -> None:
        self.started = True
        for stream, key in (("out", "stdoutLimitBytes"), ("err", "stderrLimitBytes")):
            limit = _int_or_none(record.get(key))
            if limit is not None:
                self.limits[stream] = limit

    def accept_data(self, kind: str, record: dict[str, Any], number: int) -> None:
        self.started = True
        payload = record.get("d")
        if not isinstance(payload, str):
            self.problems.add(f"Output record on line {number} has no payload; skipped.")
            return
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            self.problems.add(f"Output record on line {number} has bad base64; skipped.")
            return
        self.streams[kind] += data

    def finish(self) -> RunLog:
        if self.garbage_lines:
            self.problems.add_summary(
                f"{self.garbage_lines} line(s) that are not records were skipped."
            )
        if self.result is None:
            self.problems.add_summary(
                "The log has no result record; the run did not finish normally."
            )
        out = self.stream_view("out")
        err = self.stream_view("err")
        return RunLog(
            stdout=decode_output(bytes(self.streams["out"]), truncated=out[1]),
            stderr=decode_output(bytes(self.streams["err"]), truncated=err[1]),
            stdout_bytes=out[0],
            stderr_bytes=err[0],
            stdout_truncated=out[1],
            stderr_truncated=err[1],
            result=self.result,
            started=self.started,
            problems=self.problems.final(),
        )

    def stream_view(self, kind: str) -> tuple[int, bool]:
        """(total bytes produced, truncated) for a stream, from the result or the records."""
        received = len(self.streams[kind])
        name = "stdout" if kind == "out" else "stderr"
        if self.result is not None:
            total = getattr(self.result, f"{name}_bytes")
            truncated = getattr(self.result, f"{name}_truncated")
            if total is None:
                return received, truncated
            kept = min(total, self.limits.get(kind, total))
            if received < kept:
                self.problems.add_summary(
                    f"Only {received} of the {kept} {name} bytes the runner kept are in the log."
                )
            return max(total, received), truncated
        # No verdict: a stream that filled its cap was most likely cut by it.
        limit = self.limits.get(kind)
        return received, limit is not None and limit > 0 and received >= limit


def parse_run_log(data: bytes | str) -> RunLog:
    """Turn the runner's container log (possibly cut off or mixed with other lines) into a RunLog.

    Never raises on bad input; whatever had to be skipped is described in ``problems``.
    """
    if isinstance(data, str):
        data = data.encode("utf-8", "replace")
    parser = _Parser()
    lines = data.split(b"\n")
    # A log that ends with a newline leaves an empty last piece; it is no line.
    if lines and lines[-1] == b"":
        lines.pop()
    last = len(lines)
    for number, line in enumerate(lines, start=1):
        parser.feed_line(line, number, number == last and not data.endswith(b"\n"))
    return parser.finish()
