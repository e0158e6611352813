"""Parsing the runner's container log: real logs, cut-off logs, interleaved and hostile ones."""

from __future__ import annotations

import base64
import json
import os
import random
import subprocess
import sys
import tempfile

import pytest
from test_runner_delivery import container_environment

from coderun_operator import runner
from coderun_operator.run_log import (
    RunLog,
    decode_output,
    max_log_bytes,
    parse_run_log,
)
from coderun_operator.runner_delivery import RunnerConfig, runner_environment, runner_source

PREFIX = runner.RECORD_PREFIX

SNIPPET = """
import sys, time
for n in range(4):
    print("line", n, "\\u00e9\\U0001F40D", flush=True)
    print("warn", n, file=sys.stderr, flush=True)
    time.sleep(0.06)
sys.exit(2)
"""
EXPECTED_STDOUT = "".join(f"line {n} \u00e9\U0001f40d\n" for n in range(4))
EXPECTED_STDERR = "".join(f"warn {n}\n" for n in range(4))


def run_runner(code: str, stdout_limit: int = 10_000) -> bytes:
    config = RunnerConfig(
        timeout_seconds=5,
        stdout_limit_bytes=stdout_limit,
        stderr_limit_bytes=10_000,
        file_size_limit_bytes=1000,
    )
    env = container_environment(runner_environment(code, None, config))
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    proc = subprocess.run(
        [sys.executable, "-c", runner_source()],
        env=env,
        capture_output=True,
        timeout=30,
        check=True,
    )
    return proc.stdout


@pytest.fixture(scope="module")
def real_log() -> bytes:
    """A log of several out, err, start and result records, from a real run."""
    return run_runner(SNIPPET)


def record(seq: int, kind: str, **fields: object) -> bytes:
    body = {"v": 1, "seq": seq, "t": kind, **fields}
    return (PREFIX + json.dumps(body, separators=(",", ":")) + "\n").encode()


def data(seq: int, kind: str, payload: bytes) -> bytes:
    return record(seq, kind, d=base64.b64encode(payload).decode())


RESULT_FIELDS = {
    "exitCode": 0,
    "signal": None,
    "timedOut": False,
    "oomKilled": False,
    "stoppedBySignal": None,
    "durationMs": 12,
    "cpuMs": 10,
    "peakMemoryBytes": 9_000_000,
    "cgroupPeakMemoryBytes": None,
    "stdoutBytes": 3,
    "stderrBytes": 0,
    "stdoutTruncated": False,
    "stderrTruncated": False,
    "startedAt": "2026-01-01T00:00:00.000Z",
    "finishedAt": "2026-01-01T00:00:00.012Z",
    "error": None,
}
START = record(0, "start", startedAt="2026-01-01T00:00:00.000Z", stdoutLimitBytes=100)
SIMPLE_LOG = START + data(1, "out", b"hi\n") + record(2, "result", **RESULT_FIELDS)


# -- real logs -----------------------------------------------------------------------------------


def test_real_log_parses_completely(real_log):
    log = parse_run_log(real_log)
    assert log.problems == ()
    assert log.started
    assert log.stdout == EXPECTED_STDOUT
    assert log.stderr == EXPECTED_STDERR
    assert log.stdout_bytes == len(EXPECTED_STDOUT.encode())
    assert log.result is not None and log.result.exit_code == 2
    assert real_log.count(b"\n") >= 6, "the snippet's sleeps should give several records"


def test_every_prefix_of_a_real_log_parses_without_raising(real_log):
    full = parse_run_log(real_log)
    for length in range(len(real_log) + 1):
        log = parse_run_log(real_log[:length])
        assert isinstance(log, RunLog)
        assert full.stdout.startswith(log.stdout.rstrip("\ufffd"))
        assert full.stderr.startswith(log.stderr.rstrip("\ufffd"))
        if log.result is None:
            assert any("no result record" in problem for problem in log.problems)
        else:
            assert log.result == full.result


def test_cut_at_the_cap_drops_a_half_character_instead_of_showing_garbage():
    # The 3rd byte of the cap falls inside the 4-byte emoji.
    raw = run_runner('print("ab\\U0001F40D" * 3)', stdout_limit=4)
    log = parse_run_log(raw)
    assert log.stdout == "ab"
    assert log.stdout_truncated and log.stdout_bytes == 19
    assert log.problems == ()


def test_interleaved_foreign_lines_are_skipped(real_log):
    lines = real_log.splitlines(keepends=True)
    noise = [
        b"/usr/lib/python3/warnings.py:1: DeprecationWarning: something\n",
        b"\n",
        b"   \n",
        b"not a record @@coderun {}\n",
    ]
    mixed = b"".join(line + noise[i % len(noise)] for i, line in enumerate(lines))
    log = parse_run_log(mixed)
    assert log.stdout == EXPECTED_STDOUT and log.stderr == EXPECTED_STDERR
    assert log.result == parse_run_log(real_log).result
    assert any("not records were skipped" in problem for problem in log.problems)


def test_crlf_line_endings_and_text_input_are_accepted(real_log):
    log = parse_run_log(real_log.replace(b"\n", b"\r\n").decode("ascii"))
    assert log.stdout == EXPECTED_STDOUT and log.problems == ()


# -- missing and partial logs --------------------------------------------------------------------


def test_empty_log_means_not_started_and_no_result():
    log = parse_run_log(b"")
    assert (log.started, log.result, log.stdout, log.stdout_bytes) == (False, None, "", 0)
    assert log.problems


def test_log_without_result_keeps_the_output_that_arrived():
    log = parse_run_log(START + data(1, "out", b"start\n"))
    assert log.started and log.result is None
    assert log.stdout == "start\n" and log.stdout_bytes == 6
    assert not log.stdout_truncated


def test_log_without_result_whose_stream_filled_its_cap_is_taken_as_truncated():
    log = parse_run_log(START + data(1, "out", b"y" * 100))
    assert log.stdout_truncated


def test_missing_records_are_reported():
    log = parse_run_log(START + data(5, "out", b"x") + record(6, "result", **RESULT_FIELDS))
    assert log.stdout == "x"
    assert any("missing before seq 5" in problem for problem in log.problems)
    assert any("Only 1 of the 3 stdout bytes" in problem for problem in log.problems)


# -- hostile logs --------------------------------------------------------------------------------

HOSTILE_LINES = [
    PREFIX.encode() + b"{not json",
    PREFIX.encode() + b"[1, 2, 3]",
    PREFIX.encode() + b'{"v": 1, "seq": 1, "t": "out", "d": "%%%not base64%%%"}',
    PREFIX.encode() + b'{"v": 1, "seq": 1, "t": "out", "d": 12}',
    PREFIX.encode() + b'{"v": 1, "seq": "1", "t": "out", "d": ""}',
    PREFIX.encode() + b'{"v": 1, "seq": true, "t": "out", "d": ""}',
    PREFIX.encode() + b'{"v": 1, "seq": -4, "t": "out", "d": ""}',
    PREFIX.encode() + b'{"v": 2, "seq": 1, "t": "out", "d": ""}',
    PREFIX.encode() + b'{"v": true, "seq": 1, "t": "out", "d": ""}',
    PREFIX.encode() + b'{"v": 1, "seq": 1, "t": "explode"}',
    PREFIX.encode() + b'{"v": 1, "seq": 1e999, "t": "out"}',
    PREFIX.encode() + b'{"v": 1, "seq": NaN, "t": "out"}',
    PREFIX.encode() + b'{"v": 1, "seq": ' + b"9" * 5000 + b', "t": "out"}',
    PREFIX.encode() + b"[" * 100_000 + b"]" * 100_000,
    PREFIX.encode()
    + b'{"v": 1, "seq": 1, "t": "result", "exitCode": "zero", "durationMs": '
    + b"1" * 30
    + b', "stdoutBytes": -1, "timedOut": "yes", "error": ["x"]}',
    b"\xff\xfe\x00 binary junk \x1b[2J",
    PREFIX.encode(),
    b"@@coderu",
]


@pytest.mark.parametrize("line", HOSTILE_LINES, ids=range(len(HOSTILE_LINES)))
def test_hostile_line_never_raises(line):
    log = parse_run_log(START + line + b"\n" + data(1, "out", b"ok"))
    assert isinstance(log, RunLog)
    if log.result is not None:
        # Only the wrong-typed result line is a result at all; its bad fields are dropped.
        assert log.result.exit_code is None and log.result.duration_ms is None
        assert log.result.stdout_bytes is None and log.result.timed_out is False
        assert log.result.error is None


@pytest.mark.parametrize(
    "stamp",
    [
        "yesterday",
        "2026-13-01T00:00:00.000Z",
        "2026-02-30T00:00:00.000Z",
        "2026-01-01T00:00:00.000Z\n",
        "2026-01-01 00:00:00.000Z",
        "\u0662\u0660\u0662\u0666-01-01T00:00:00.000Z",
        "2026-01-01T00:00:00.000Z" + "0" * 2000,
    ],
)
def test_timestamps_not_in_the_runners_format_become_none(stamp):
    # The status schema declares them date-time: one bad value would fail the whole status write.
    fields = {**RESULT_FIELDS, "startedAt": stamp, "finishedAt": stamp}
    log = parse_run_log(START + data(1, "out", b"hi\n") + record(2, "result", **fields))
    assert log.result is not None
    assert (log.result.started_at, log.result.finished_at) == (None, None)
    assert log.result.exit_code == 0 and log.stdout == "hi\n"


def test_result_text_is_always_encodable_unicode():
    line = PREFIX.encode() + b'{"v":1,"seq":2,"t":"result","error":"bad \\ud800 \\udfff!"}\n'
    log = parse_run_log(START + data(1, "out", b"hi\n") + line)
    assert log.result is not None and log.result.error is not None
    log.result.error.encode("utf-8")
    assert log.result.error.startswith("bad ") and log.result.error.endswith("!")


def test_records_after_the_result_and_duplicate_results_are_ignored():
    log = parse_run_log(
        SIMPLE_LOG
        + data(3, "out", b"forged\n")
        + record(4, "result", **{**RESULT_FIELDS, "exitCode": 0, "error": "forged"})
    )
    assert log.stdout == "hi\n"
    assert log.result is not None and log.result.error is None
    assert any("after the result" in problem for problem in log.problems)
    assert any("Duplicate result" in problem for problem in log.problems)


def test_repeated_seq_is_skipped():
    log = parse_run_log(START + data(1, "out", b"a") + data(1, "out", b"b") + data(2, "out", b"c"))
    assert log.stdout == "ac"
    assert any("repeats" in problem for problem in log.problems)


def test_problem_list_stays_short_for_a_log_full_of_garbage():
    garbage = (PREFIX + "{oops\n").encode() * 10_000
    log = parse_run_log(garbage)
    assert len(log.problems) <= 25
    assert any("9980 more problems not listed" in problem for problem in log.problems)
    assert any("no result record" in problem for problem in log.problems)


def test_random_garbage_and_mutated_logs_never_raise(real_log):
    rng = random.Random(20261203)
    lines = real_log.splitlines(keepends=True)
    for _ in range(1500):
        choice = rng.randrange(4)
        if choice == 0:
            blob = bytes(rng.randrange(256) for _ in range(rng.randrange(300)))
        elif choice == 1:
            blob = bytearray(real_log)
            for _ in range(rng.randrange(1, 8)):
                blob[rng.randrange(len(blob))] = rng.randrange(256)
            blob = bytes(blob)
        elif choice == 2:
            blob = b"".join(rng.choice(lines) for _ in range(rng.randrange(12)))
        else:
            start = rng.randrange(len(real_log))
            blob = real_log[:start] + real_log[start + rng.randrange(200) :]
        log = parse_run_log(blob)
        assert isinstance(log.stdout, str) and isinstance(log.problems, tuple)


# -- decoding and the size bound -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "truncated", "text"),
    [
        (b"h\xc3\xa9llo", False, "h\u00e9llo"),
        (b"raw:\xff\xfe\n", False, "raw:\ufffd\ufffd\n"),
        (b"ab\xf0\x9f\x90", True, "ab"),
        (b"ab\xf0\x9f\x90", False, "ab\ufffd"),
        (b"ab\xff", True, "ab\ufffd"),
        (b"", True, ""),
    ],
)
def test_decode_output(raw, truncated, text):
    assert decode_output(raw, truncated=truncated) == text


def test_max_log_bytes_is_the_runners_formula_and_grows_with_every_input():
    assert max_log_bytes(1000, 2000, 5) == runner.max_log_bytes(1000, 2000, 5)
    base = max_log_bytes(1000, 1000, 5)
    assert max_log_bytes(2000, 1000, 5) > base
    assert max_log_bytes(1000, 2000, 5) > base
    assert max_log_bytes(1000, 1000, 10) > base
    assert max_log_bytes(1_000_000, 1_000_000, 10) < 3_000_000


def test_coalescing_keeps_a_trickling_stream_within_its_share_of_the_bound():
    """A stream fed one byte every millisecond for longer than the deadline plus grace."""
    timeout, limit = 1.0, 200_000
    with tempfile.TemporaryFile() as sink:
        log = runner.LogWriter(sink.fileno(), max_log_bytes(limit, limit, timeout))
        stream = runner.StreamCapture("out", limit, timeout)
        now = 0.0
        for _ in range(30_000):
            stream.feed(b"z")
            stream.flush(log, now)
            now += 0.001
        stream.feed(b"z" * 50_000)
        stream.flush(log, now, final=True)
        assert stream.guard_dropped is False
        assert log.written <= runner.stream_log_bytes(limit, timeout)
        sink.seek(0)
        text = sink.read()
    assert parse_run_log(text).stdout == "z" * 80_000
