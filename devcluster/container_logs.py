"""Container log files in the CRI format the kubelet reads, and serving them like the kubelet.

Each line of a log file is `<RFC3339Nano time> <stream> <P|F> <bytes>`: `F` ends a line of the
container's output, `P` is a piece of a longer line or of output that did not end in a newline
(yet). Stdout and stderr of one container go to the same file, in arrival order, as with
containerd. Serving reassembles the original bytes and applies the kubelet's `tailLines`,
`limitBytes`, `timestamps`, `sinceSeconds` and `follow` options.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

# Longest piece written as one record; longer output lines are split into P records.
MAX_RECORD_BYTES = 16 * 1024
# The kubelet rotates at containerLogMaxSize (10Mi); here writing stops, with a final notice.
DEFAULT_MAX_FILE_BYTES = 10 * 1024 * 1024


def rfc3339_nano(epoch_ns: int) -> str:
    """`2026-12-03T17:04:05.123456789Z` for a time in nanoseconds since the epoch."""
    seconds, nanos = divmod(epoch_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


def parse_rfc3339_nano(text: str) -> float:
    """Seconds since the epoch for a timestamp written by `rfc3339_nano` (or without a fraction)."""
    main, _, fraction = text.rstrip("Z").partition(".")
    seconds = time.mktime(time.strptime(main, "%Y-%m-%dT%H:%M:%S")) - time.timezone
    return seconds + (float("0." + fraction) if fraction else 0.0)


def encode_records(stream: str, data: bytes, epoch_ns: int) -> bytes:
    """CRI records for one chunk of output; a trailing piece without newline becomes `P`."""
    stamp = rfc3339_nano(epoch_ns).encode()
    out = bytearray()
    start = 0
    while start < len(data):
        newline = data.find(b"\n", start, start + MAX_RECORD_BYTES)
        if newline == -1:
            end = min(len(data), start + MAX_RECORD_BYTES)
            out += b"%s %s P %s\n" % (stamp, stream.encode(), data[start:end])
            start = end
        else:
            out += b"%s %s F %s\n" % (stamp, stream.encode(), data[start:newline])
            start = newline + 1
    return bytes(out)


@dataclass(frozen=True)
class LogLine:
    """One line of container output as the user printed it (pieces joined)."""

    timestamp: str
    stream: str
    content: bytes  # with its newline, unless the output ended without one


def parse_records(raw: bytes) -> list[LogLine]:
    """Join the records of a CRI log file into the lines the container wrote."""
    lines: list[LogLine] = []
    pending = bytearray()
    pending_stamp = ""
    pending_stream = ""
    for record in raw.split(b"\n"):
        if not record:
            continue
        parts = record.split(b" ", 3)
        if len(parts) < 3:
            continue  # a torn record at the end of a file being written
        stamp, stream, tag = parts[0].decode(), parts[1].decode(), parts[2]
        content = parts[3] if len(parts) == 4 else b""
        if not pending:
            pending_stamp, pending_stream = stamp, stream
        pending += content
        if tag == b"F":
            lines.append(LogLine(pending_stamp, pending_stream, bytes(pending) + b"\n"))
            pending = bytearray()
    if pending:
        lines.append(LogLine(pending_stamp, pending_stream, bytes(pending)))
    return lines


@dataclass(frozen=True)
class LogOptions:
    """The kubelet's pod log options."""

    tail_lines: int | None = None
    limit_bytes: int | None = None
    timestamps: bool = False
    since_seconds: int | None = None
    follow: bool = False
    previous: bool = False

    @classmethod
    def from_query(cls, query: dict[str, str]) -> LogOptions:
        """Options from URL query parameters; ValueError names a malformed one."""

        def number(key: str) -> int | None:
            value = query.get(key)
            if value in (None, ""):
                return None
            try:
                parsed = int(value)
            except ValueError:
                raise ValueError(f"{key} must be an integer, got {value!r}") from None
            if parsed < 0 or (key == "limitBytes" and parsed == 0):
                wanted = "positive" if key == "limitBytes" else "non-negative"
                raise ValueError(f"{key} must be {wanted}")
            return parsed

        def flag(key: str) -> bool:
            return query.get(key, "").lower() in ("true", "1")

        return cls(
            number("tailLines"),
            number("limitBytes"),
            flag("timestamps"),
            number("sinceSeconds"),
            flag("follow"),
            flag("previous"),
        )


def render(lines: list[LogLine], options: LogOptions, now: float | None = None) -> bytes:
    """The bytes a `GET .../log` returns for complete file contents (no follow)."""
    if options.since_seconds is not None:
        cutoff = (time.time() if now is None else now) - options.since_seconds
        lines = [line for line in lines if parse_rfc3339_nano(line.timestamp) >= cutoff]
    if options.tail_lines is not None:
        lines = lines[len(lines) - options.tail_lines :] if options.tail_lines else []
    out = b"".join(_format(line, options) for line in lines)
    if options.limit_bytes is not None:
        out = out[: options.limit_bytes]
    return out


def _format(line: LogLine, options: LogOptions) -> bytes:
    return (line.timestamp.encode() + b" " + line.content) if options.timestamps else line.content


def follow(
    path: Path,
    options: LogOptions,
    finished: Callable[[], bool],
    stop: threading.Event | None = None,
    poll: float = 0.1,
) -> Iterator[bytes]:
    """The existing log (per `options`), then new output until `finished()` and drained."""
    sent = 0
    with open(path, "rb") as handle:
        raw = handle.read()
        complete = raw[: raw.rfind(b"\n") + 1]
        offset = len(complete)
        first = render(parse_records(complete), options)
        if first:
            first = _limited(first, options, sent)
            sent += len(first)
            yield first
        while options.limit_bytes is None or sent < options.limit_bytes:
            if stop is not None and stop.is_set():
                return
            done = finished()  # read the flag before the file: the last bytes come first
            handle.seek(offset)
            more = handle.read()
            more = more[: more.rfind(b"\n") + 1]
            if more:
                offset += len(more)
                chunk = b"".join(_format(line, options) for line in _records_as_pieces(more))
                chunk = _limited(chunk, options, sent)
                sent += len(chunk)
                yield chunk
            elif done:
                return
            else:
                time.sleep(poll)


def _records_as_pieces(raw: bytes) -> list[LogLine]:
    # While following, pieces are sent as they come, so a long line is not held back.
    pieces = []
    for record in raw.split(b"\n"):
        parts = record.split(b" ", 3)
        if len(parts) < 3:
            continue
        content = parts[3] if len(parts) == 4 else b""
        newline = b"\n" if parts[2] == b"F" else b""
        pieces.append(LogLine(parts[0].decode(), parts[1].decode(), content + newline))
    return pieces


def _limited(chunk: bytes, options: LogOptions, sent: int) -> bytes:
    if options.limit_bytes is None:
        return chunk
    return chunk[: max(0, options.limit_bytes - sent)]


class LogWriter:
    """Appends CRI records to one container's log file; safe to call from several threads."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Only the node (root) reads container logs directly; users go through the API.
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self._lock = threading.Lock()
        self._written = 0
        self._max = max_bytes
        self._full = False
        self.path = path

    def write(self, stream: str, data: bytes) -> None:
        """Record a chunk read from the container's `stream` ("stdout" or "stderr")."""
        if not data:
            return
        records = encode_records(stream, data, time.time_ns())
        with self._lock:
            if self._full:
                return
            if self._written + len(records) > self._max:
                self._full = True
                records = encode_records(
                    "stderr",
                    b"log file reached its size limit; further output dropped\n",
                    time.time_ns(),
                )
            os.write(self._fd, records)
            self._written += len(records)

    def close(self) -> None:
        """Close the file; later writes are errors."""
        with self._lock:
            os.close(self._fd)
