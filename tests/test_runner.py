"""The runner program, run for real as ``python -c <source>`` on real snippets."""

from __future__ import annotations

import ast
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_runner_delivery import container_environment

from coderun_operator import runner
from coderun_operator.run_log import RunLog, RunResult, max_log_bytes, parse_run_log
from coderun_operator.runner_delivery import RunnerConfig, runner_environment, runner_source
from devcluster.cgroups import CgroupError, LimitedCgroup

LINE_LIMIT_BYTES = 16 * 1024
DEFAULT_LIMIT_BYTES = 64 * 1024
RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@dataclass(frozen=True)
class Outcome:
    """One finished runner process: its raw log, the parsed log and how it exited."""

    raw: bytes
    log: RunLog
    returncode: int
    runner_stderr: bytes
    elapsed: float

    @property
    def result(self) -> RunResult:
        assert self.log.result is not None, self.raw[-2000:]
        return self.log.result


def runner_env(
    code: str,
    *,
    stdin: str | None = None,
    timeout: float = 3.0,
    stdout_limit: int = DEFAULT_LIMIT_BYTES,
    stderr_limit: int = DEFAULT_LIMIT_BYTES,
    file_limit: int = 1_000_000,
    python: str | None = None,
    work_dir: str = "/tmp",
) -> dict[str, str]:
    config = RunnerConfig(
        timeout_seconds=timeout,
        stdout_limit_bytes=stdout_limit,
        stderr_limit_bytes=stderr_limit,
        file_size_limit_bytes=file_limit,
        work_dir=work_dir,
        python=python,
    )
    # As the kubelet hands the pod's env entries to the container.
    env = container_environment(runner_environment(code, stdin, config))
    env["PATH"] = os.environ.get("PATH", "/usr/bin:/bin")
    return env


def finish(
    proc: subprocess.Popen[bytes], started: float, timeout: float, stdin: bytes | None = None
) -> Outcome:
    raw, err = proc.communicate(input=stdin, timeout=timeout + 30)
    return Outcome(raw, parse_run_log(raw), proc.returncode, err, time.monotonic() - started)


def run_snippet(code: str, *, interpreter: str = sys.executable, **options) -> Outcome:
    """Run the runner on ``code`` and check that its log is well formed."""
    env = runner_env(textwrap.dedent(code), **options)
    started = time.monotonic()
    proc = subprocess.Popen(
        [interpreter, "-c", runner_source()],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    outcome = finish(proc, started, options.get("timeout", 3.0))
    assert_well_formed(outcome, options)
    return outcome


def assert_well_formed(outcome: Outcome, options: dict) -> None:
    """Every line a short ASCII record, seqs 0..n, one result last, the log within its bound."""
    assert outcome.runner_stderr == b""
    assert outcome.returncode == 0, outcome.raw[-2000:]
    lines = outcome.raw.split(b"\n")
    assert lines.pop() == b""
    for seq, line in enumerate(lines):
        assert len(line) + 1 < LINE_LIMIT_BYTES
        assert line.startswith(runner.RECORD_PREFIX.encode())
        line.decode("ascii")
        assert json.loads(line[len(runner.RECORD_PREFIX) :])["seq"] == seq
    assert json.loads(lines[-1][len(runner.RECORD_PREFIX) :])["t"] == "result"
    assert outcome.log.problems == ()
    bound = max_log_bytes(
        options.get("stdout_limit", DEFAULT_LIMIT_BYTES),
        options.get("stderr_limit", DEFAULT_LIMIT_BYTES),
        options.get("timeout", 3.0),
    )
    assert len(outcome.raw) <= bound
    result = outcome.result
    assert result.error is None
    assert result.started_at and RFC3339_UTC.match(result.started_at)
    assert result.finished_at and RFC3339_UTC.match(result.finished_at)


def process_exists(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


# -- ordinary snippets ----------------------------------------------------------------------------


def test_prints_and_exits_zero():
    outcome = run_snippet('print("hi")')
    assert outcome.log.stdout == "hi\n"
    assert outcome.log.stderr == ""
    assert outcome.log.started
    result = outcome.result
    assert (result.exit_code, result.signal, result.timed_out) == (0, None, False)
    assert result.oom_killed is False and result.stopped_by_signal is None
    assert 0 <= result.duration_ms < 3000
    assert result.peak_memory_bytes and result.peak_memory_bytes > 1_000_000
    assert result.stdout_bytes == 3 and not result.stdout_truncated


def test_unicode_round_trips_and_invalid_bytes_become_replacement_characters():
    outcome = run_snippet(
        r"""
        import sys
        print("h\u00e9llo \U0001F40D", flush=True)
        sys.stdout.buffer.write(b"raw:\xff\xfe\n")
        """
    )
    assert outcome.log.stdout == "h\u00e9llo \U0001f40d\nraw:\ufffd\ufffd\n"
    assert outcome.result.exit_code == 0


def test_stdout_and_stderr_are_kept_apart():
    outcome = run_snippet(
        """
        import sys
        print("out1")
        print("err1", file=sys.stderr)
        print("out2")
        """
    )
    assert outcome.log.stdout == "out1\nout2\n"
    assert outcome.log.stderr == "err1\n"


def test_carriage_returns_and_ansi_codes_are_kept_byte_exact():
    outcome = run_snippet(r'import sys; sys.stdout.write("50%\r100%\x1b[31m red\x1b[0m")')
    assert outcome.log.stdout == "50%\r100%\x1b[31m red\x1b[0m"


def test_input_without_stdin_fails_at_once_with_eoferror():
    outcome = run_snippet('name = input("Name? ")\nprint("Hi", name)')
    assert outcome.log.stdout == "Name? "
    assert "EOFError" in outcome.log.stderr
    assert outcome.result.exit_code == 1
    assert outcome.elapsed < 10


def test_input_reads_the_given_stdin():
    outcome = run_snippet('name = input("Name? ")\nprint("Hi", name)', stdin="Ada\n")
    assert outcome.log.stdout == "Name? Hi Ada\n"
    assert outcome.result.exit_code == 0


def test_runner_started_with_its_own_stdin_closed_still_feeds_the_snippet():
    env = runner_env('print("Hi", input())', stdin="Ada\n")
    proc = subprocess.run(
        [sys.executable, "-c", runner_source()],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
        preexec_fn=lambda: os.close(0),
    )
    assert proc.returncode == 0
    assert parse_run_log(proc.stdout).stdout == "Hi Ada\n"


def test_large_code_and_stdin_arrive_whole_through_chunked_environment():
    stdin = "\u00e9\U0001f40d line\n" * 30_000  # about 420 KB of UTF-8, several chunks
    padding = "# " + "\u00e9" * 150_000 + "\n"  # code far above one argv/env string's limit
    code = padding + textwrap.dedent(
        """
        import hashlib, sys
        data = sys.stdin.buffer.read()
        print(len(data), hashlib.sha256(data).hexdigest())
        """
    )
    outcome = run_snippet(code, stdin=stdin)
    data = stdin.encode()
    import hashlib

    assert outcome.log.stdout == f"{len(data)} {hashlib.sha256(data).hexdigest()}\n"


def test_traceback_shows_the_source_line():
    outcome = run_snippet('x = 1\nraise ValueError("boom " + str(x))')
    assert 'raise ValueError("boom " + str(x))' in outcome.log.stderr
    assert "ValueError: boom 1" in outcome.log.stderr
    assert outcome.result.exit_code == 1


@pytest.mark.parametrize(
    ("declaration", "text"),
    [
        ("# -*- coding: latin-1 -*-", "caf\u00e9"),
        ("# vim: set fileencoding=cp1252 :", "5 \u20ac"),
        ("\ufeff# coding: utf-8", "\U0001f40d"),
    ],
)
def test_text_is_run_as_typed_whatever_its_coding_line_declares(declaration, text):
    outcome = run_snippet(f"{declaration}\r\nprint({text!r}, __name__)\r\n", timeout=2)
    assert outcome.log.stdout == f"{text} __main__\n"
    assert outcome.result.exit_code == 0


def test_text_the_declared_coding_cannot_hold_fails_as_python_would():
    outcome = run_snippet('# coding: ascii\nprint("caf\u00e9")\n', timeout=2)
    assert "SyntaxError" in outcome.log.stderr
    assert outcome.result.exit_code == 1


def test_dollars_and_variable_references_reach_the_snippet_as_typed():
    code = 'print("$$ $(CODERUN_RUNNER_CONFIG) $(CODERUN_RUNNER_CODE_0)", input())'
    outcome = run_snippet(code, stdin="$(CODERUN_RUNNER_CODE_0) $$\n", timeout=2)
    assert outcome.log.stdout == (
        "$$ $(CODERUN_RUNNER_CONFIG) $(CODERUN_RUNNER_CODE_0) $(CODERUN_RUNNER_CODE_0) $$\n"
    )


def test_exit_code_is_reported():
    outcome = run_snippet('import sys\nprint("partial result")\nsys.exit(3)')
    assert outcome.log.stdout == "partial result\n"
    assert (outcome.result.exit_code, outcome.result.signal) == (3, None)


def test_death_by_signal_is_reported_as_128_plus_signal():
    outcome = run_snippet("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)")
    assert (outcome.result.exit_code, outcome.result.signal) == (143, signal.SIGTERM)
    assert outcome.result.timed_out is False


def test_snippet_gets_a_clean_environment_and_only_its_own_pipes():
    outcome = run_snippet(
        """
        import json, os, stat
        fds = sorted(int(fd) for fd in os.listdir("/proc/self/fd"))
        print(json.dumps({
            "env": dict(os.environ),
            "cwd": os.getcwd(),
            "fds": fds,
            "stdout_is_pipe": stat.S_ISFIFO(os.fstat(1).st_mode),
            "oom_score_adj": open("/proc/self/oom_score_adj").read().strip(),
            "pgid_is_own": os.getpgid(0) == os.getpid(),
        }))
        """
    )
    seen = json.loads(outcome.log.stdout)
    env = seen["env"]
    assert not [name for name in env if name.startswith("CODERUN")]
    assert env["HOME"] == seen["cwd"]
    assert env["LANG"] == "C.UTF-8"
    assert env["PYTHONUTF8"] == env["PYTHONUNBUFFERED"] == env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert "PATH" in env
    # 0, 1, 2 and the one listdir itself had open: nothing of the runner's leaked in.
    assert len(seen["fds"]) == 4 and seen["fds"][:3] == [0, 1, 2]
    assert seen["stdout_is_pipe"] is True
    assert seen["oom_score_adj"] == "1000"
    assert seen["pgid_is_own"] is True
    assert not Path(seen["cwd"]).exists(), "the run directory is removed afterwards"


def test_file_size_limit_stops_large_files():
    outcome = run_snippet(
        """
        try:
            with open("big", "wb") as f:
                f.write(b"x" * 300_000)
        except OSError as error:
            print("refused", error.errno)
        import os
        print(os.path.getsize("big"))
        """,
        file_limit=100_000,
    )
    assert outcome.log.stdout == "refused 27\n100000\n"  # EFBIG


def test_thread_outliving_main_still_prints_and_daemon_thread_does_not_hold_the_run():
    outcome = run_snippet(
        """
        import threading, time
        def late():
            time.sleep(0.3)
            print("late")
        def spin():
            while True:
                time.sleep(0.01)
        threading.Thread(target=late).start()
        threading.Thread(target=spin, daemon=True).start()
        print("main done")
        """
    )
    assert outcome.log.stdout == "main done\nlate\n"
    assert outcome.result.exit_code == 0
    assert outcome.elapsed < 5


# -- time limit and leftovers --------------------------------------------------------------------


def test_output_before_a_timeout_is_kept():
    outcome = run_snippet('import time\nprint("before sleep")\ntime.sleep(3600)', timeout=1)
    assert outcome.log.stdout == "before sleep\n"
    result = outcome.result
    assert result.timed_out is True
    assert (result.exit_code, result.signal) == (137, signal.SIGKILL)
    assert 1000 <= result.duration_ms < 2500
    assert outcome.elapsed < 6


def test_infinite_loop_is_killed_at_the_deadline():
    outcome = run_snippet("while True:\n    pass", timeout=1)
    assert outcome.log.stdout == ""
    assert outcome.result.timed_out is True
    assert outcome.result.cpu_ms and outcome.result.cpu_ms > 500
    assert outcome.elapsed < 6


def test_output_flood_is_truncated_and_the_log_stays_bounded():
    limit = 100_000
    outcome = run_snippet('while True:\n    print("y" * 1000)', timeout=2, stdout_limit=limit)
    log = outcome.log
    assert log.stdout.startswith("y" * 1000)
    assert len(log.stdout.encode()) == limit
    assert log.stdout_truncated and outcome.result.stdout_truncated
    assert log.stdout_bytes > limit and outcome.result.stdout_bytes == log.stdout_bytes
    assert outcome.result.timed_out
    assert len(outcome.raw) <= max_log_bytes(limit, DEFAULT_LIMIT_BYTES, 2)


ESCAPEES = """
import os, sys, time
def spawn(double):
    read, write = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if double and os.fork() != 0:
            os._exit(0)  # the grandchild is orphaned and re-parents to the runner
        os.write(write, str(os.getpid()).encode() + b"\\n")
        time.sleep(3600)
    return int(os.read(read, 100))
print(spawn(False), spawn(True), flush=True)
"""


@pytest.mark.parametrize(("ending", "timeout"), [("", 3), ("time.sleep(3600)", 1)])
def test_setsid_escapees_and_orphans_are_gone_afterwards(ending, timeout):
    outcome = run_snippet(ESCAPEES + ending, timeout=timeout)
    pids = [int(pid) for pid in outcome.log.stdout.split()]
    assert len(pids) == 2
    assert outcome.result.timed_out is (ending != "")
    for pid in pids:
        assert not process_exists(pid), f"process {pid} survived the run"


def test_deeply_nested_directories_left_by_the_snippet_do_not_cost_the_result(tmp_path):
    try:
        outcome = run_snippet(
            """
            import os
            for _ in range(3000):
                os.mkdir("d")
                os.chdir("d")
            print("deep")
            """,
            timeout=2,
            work_dir=str(tmp_path),
        )
        assert outcome.log.stdout == "deep\n"
        assert outcome.result.exit_code == 0
    finally:
        # shutil.rmtree recurses (before Python 3.13) and cannot remove this either.
        subprocess.run(["rm", "-rf", str(tmp_path)], check=False)


def test_runner_output_is_live_and_sigterm_still_yields_a_result():
    env = runner_env(ESCAPEES + 'print("tick", flush=True)\ntime.sleep(3600)', timeout=30)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", runner_source()],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    seen = b""
    while "tick" not in parse_run_log(seen).stdout:
        line = proc.stdout.readline()
        assert line, "runner ended before the snippet's output arrived"
        seen += line
    assert proc.poll() is None, "output must arrive while the snippet still runs"
    assert time.monotonic() - started < 5
    proc.send_signal(signal.SIGTERM)
    outcome = finish(proc, started, 5)
    log = parse_run_log(seen + outcome.raw)
    assert log.stdout.endswith("tick\n")
    assert log.result is not None
    assert log.result.stopped_by_signal == signal.SIGTERM
    assert log.result.exit_code == 137 and log.result.timed_out is False
    assert outcome.returncode == 0
    for pid in log.stdout.split()[:2]:
        assert not process_exists(int(pid))


STOP_SIGNALS_FROM_THE_SNIPPET = """
import os, signal, time
runner = os.getppid()
for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    os.kill(runner, signum)
if os.fork() == 0:
    os.setsid()
    os.kill(runner, signal.SIGTERM)
    time.sleep(3600)
time.sleep(0.3)
print("still running")
"""


@pytest.mark.parametrize("as_pid_1", [False, True], ids=["child", "pid-1"])
def test_stop_signals_sent_by_the_snippet_do_not_pass_for_a_pod_deletion(as_pid_1):
    if as_pid_1:
        outcome = run_as_pid_1(STOP_SIGNALS_FROM_THE_SNIPPET, timeout=2)
    else:
        outcome = run_snippet(STOP_SIGNALS_FROM_THE_SNIPPET, timeout=2)
    assert outcome.log.stdout == "still running\n"
    assert outcome.result.stopped_by_signal is None
    assert (outcome.result.exit_code, outcome.result.timed_out) == (0, False)


# -- bad inputs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "CODERUN_RUNNER_CONFIG is not set"),
        ({"CODERUN_RUNNER_CONFIG": "{not json"}, "not valid JSON"),
        ({"CODERUN_RUNNER_CONFIG": '{"timeoutSeconds": -1}'}, "timeoutSeconds"),
        (
            {
                "CODERUN_RUNNER_CONFIG": json.dumps(
                    {
                        "timeoutSeconds": 1,
                        "stdoutLimitBytes": "10",
                        "stderrLimitBytes": 1,
                        "fileSizeLimitBytes": 1,
                    }
                )
            },
            "stdoutLimitBytes",
        ),
        (
            {
                "CODERUN_RUNNER_CONFIG": json.dumps(
                    {
                        "timeoutSeconds": 1,
                        "stdoutLimitBytes": 1,
                        "stderrLimitBytes": 1,
                        "fileSizeLimitBytes": 1,
                    }
                )
            },
            "CODERUN_RUNNER_CODE_0 is not set",
        ),
        (
            {
                "CODERUN_RUNNER_CONFIG": json.dumps(
                    {
                        "timeoutSeconds": 1,
                        "stdoutLimitBytes": 1,
                        "stderrLimitBytes": 1,
                        "fileSizeLimitBytes": 1,
                        "workDir": "/nonexistent/dir",
                    }
                ),
                "CODERUN_RUNNER_CODE_0": "print(1)",
            },
            "cannot create a directory in workDir /nonexistent/dir",
        ),
    ],
)
def test_invalid_input_gives_a_result_with_an_error_and_a_nonzero_exit(env, message):
    proc = subprocess.run(
        [sys.executable, "-c", runner_source()],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0
    assert proc.stderr == b""
    log = parse_run_log(proc.stdout)
    assert log.result is not None and log.result.error is not None
    assert message in log.result.error
    assert log.result.exit_code is None and not log.started


def test_interpreter_that_cannot_start_is_reported():
    env = runner_env('print("hi")', python="/nonexistent/python3")
    proc = subprocess.run(
        [sys.executable, "-c", runner_source()],
        env=env,
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert proc.returncode != 0
    log = parse_run_log(proc.stdout)
    assert log.result is not None and log.result.exit_code is None
    assert "could not start /nonexistent/python3" in (log.result.error or "")


# -- portability ---------------------------------------------------------------------------------


def interpreters() -> list[str]:
    """This interpreter first, then every other Python >= 3.8 found under pyenv, oldest first."""
    others = []
    for path in glob.glob("/root/.pyenv/versions/3.*/bin/python"):
        match = re.search(r"/3\.(\d+)\.", path)
        same = os.path.realpath(path) == os.path.realpath(sys.executable)
        if match and int(match.group(1)) >= 8 and not same:
            others.append((int(match.group(1)), path))
    return [sys.executable] + [path for _, path in sorted(others)]


def oldest_interpreter() -> str:
    return (interpreters()[1:] or [sys.executable])[0]


def test_source_is_python_38_syntax_and_fits_in_one_argument():
    source = runner_source()
    ast.parse(source, feature_version=(3, 8))
    assert len(source.encode()) < 40 * 1024


@pytest.mark.parametrize("interpreter", interpreters())
def test_runs_under_every_supported_interpreter(interpreter):
    outcome = run_snippet(
        'import sys\nprint("hi", sys.version_info[:2])\nsys.exit(4)', interpreter=interpreter
    )
    assert outcome.log.stdout.startswith("hi (3, ")
    assert outcome.result.exit_code == 4


def test_oldest_interpreter_enforces_the_deadline_and_kills_escapees():
    outcome = run_snippet(
        ESCAPEES + "time.sleep(3600)", interpreter=oldest_interpreter(), timeout=1
    )
    assert outcome.result.timed_out
    for pid in outcome.log.stdout.split():
        assert not process_exists(int(pid))


# -- hostile snippets, only inside a confined cgroup ---------------------------------------------

# Waits for one line on stdin, then becomes the runner: the test checks the cgroup in between.
GATE = (
    "import os, sys; sys.stdin.readline(); "
    "os.execv(sys.executable, [sys.executable, '-c', sys.argv[1]])"
)


def run_confined(cgroup: LimitedCgroup, code: str, timeout: float) -> Outcome:
    """Run the runner inside ``cgroup``; FAIL (never skip, never run unconfined) if unconfirmed."""
    env = runner_env(code, timeout=timeout)
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, "-c", GATE, runner_source()],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # Joining the cgroup between fork and exec is what preexec_fn is for.
        preexec_fn=cgroup.enter,  # noqa: PLW1509
    )
    try:
        cgroup.confirm(proc.pid)
    except CgroupError as error:
        proc.kill()
        proc.wait()
        pytest.fail(f"refusing to run a hostile snippet: cgroup limits not confirmed: {error}")
    outcome = finish(proc, started, timeout, stdin=b"go\n")
    assert_well_formed(outcome, {"timeout": timeout})
    return outcome


@pytest.mark.cgroup
def test_memory_hog_is_reported_as_oom_killed(confined_cgroup):
    oom_before = confined_cgroup.oom_kill_count()
    outcome = run_confined(
        confined_cgroup,
        'print("start", flush=True)\nhog = []\nwhile True:\n    hog.append(b"x" * 10_000_000)\n',
        timeout=20,
    )
    result = outcome.result
    assert outcome.log.stdout == "start\n"
    assert (result.exit_code, result.signal, result.oom_killed) == (137, 9, True)
    assert result.timed_out is False
    assert confined_cgroup.oom_kill_count() > oom_before
    assert result.cgroup_peak_memory_bytes is not None
    assert result.cgroup_peak_memory_bytes > 200 * 1024 * 1024


@pytest.mark.cgroup
def test_fork_bomb_is_killed_and_leaves_nothing_behind(confined_cgroup):
    outcome = run_confined(
        confined_cgroup,
        textwrap.dedent(
            """
            import os
            print("bombing", flush=True)
            while True:
                try:
                    if os.fork() == 0:
                        os.setsid()
                except OSError:
                    pass
            """
        ),
        timeout=2,
    )
    assert outcome.log.stdout.startswith("bombing\n")
    assert outcome.result.timed_out is True
    assert outcome.result.exit_code == 137
    assert outcome.result.oom_killed is False
    assert outcome.elapsed < 15
    assert confined_cgroup.pids() == []


def start_as_pid_1(code: str, timeout: float) -> subprocess.Popen[bytes]:
    """Start the runner as PID 1 of a new pid namespace, as in a pod."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("unshare(1) from util-linux is needed to give the runner a pid namespace")
    return subprocess.Popen(
        [unshare, "--pid", "--fork", "--mount-proc", sys.executable, "-c", runner_source()],
        env=runner_env(textwrap.dedent(code), timeout=timeout),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def run_as_pid_1(code: str, timeout: float) -> Outcome:
    started = time.monotonic()
    outcome = finish(start_as_pid_1(code, timeout), started, timeout)
    assert_well_formed(outcome, {"timeout": timeout})
    return outcome


def test_runner_as_pid_1_kills_and_reaps_everything_in_its_namespace():
    """In a pod the runner is PID 1: it must reap orphans and kill(-1) without killing itself."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("unshare(1) from util-linux is needed to give the runner a pid namespace")
    env = runner_env(ESCAPEES + "time.sleep(3600)", timeout=1)
    started = time.monotonic()
    proc = subprocess.Popen(
        [unshare, "--pid", "--fork", "--mount-proc", sys.executable, "-c", runner_source()],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    outcome = finish(proc, started, 1)
    assert_well_formed(outcome, {"timeout": 1})
    assert outcome.result.timed_out and outcome.result.exit_code == 137
    assert len(outcome.log.stdout.split()) == 2


def test_runner_as_pid_1_still_obeys_a_sigterm_from_outside_its_namespace():
    """Pod deletion: the kubelet's SIGTERM comes from outside the pod's pid namespace."""
    started = time.monotonic()
    proc = start_as_pid_1('import time\nprint("tick", flush=True)\ntime.sleep(3600)', timeout=2)
    assert proc.stdout is not None
    seen = b""
    while "tick" not in parse_run_log(seen).stdout:
        line = proc.stdout.readline()
        assert line, "runner ended before the snippet's output arrived"
        seen += line
    (runner_pid,) = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    os.kill(int(runner_pid), signal.SIGTERM)
    outcome = finish(proc, started, 2)
    log = parse_run_log(seen + outcome.raw)
    assert log.result is not None and log.result.stopped_by_signal == signal.SIGTERM
    assert log.result.timed_out is False


@pytest.mark.parametrize(
    ("mount_line", "cgroup_path", "expected"),
    [
        # cgroup v1 without a cgroup namespace: the container's own subtree is mounted.
        (
            "35 31 0:32 /kubepods/pod1/c1 /sys/fs/cgroup/memory ro - cgroup cgroup rw,memory",
            "/kubepods/pod1/c1",
            "/sys/fs/cgroup/memory/",
        ),
        # cgroup v2 inside a cgroup namespace: everything is relative to "/".
        ("41 31 0:38 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw", "/", "/sys/fs/cgroup/"),
        (
            "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory",
            "/a/b",
            "/sys/fs/cgroup/memory/a/b",
        ),
        # A mount of some other subtree does not show our cgroup at all.
        ("35 31 0:32 /other /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory", "/a", None),
    ],
)
def test_runner_finds_its_cgroup_directory_from_mountinfo(mount_line, cgroup_path, expected):
    (mount,) = runner.parse_mountinfo(mount_line)
    assert runner._cgroup_dir(mount, cgroup_path) == expected


@pytest.mark.parametrize(
    ("status", "timed_out"),
    [
        (0, False),  # exited with 0 between the runner's last look and its SIGKILL
        (3 << 8, False),
        (signal.SIGSEGV, False),
        (signal.SIGKILL, True),
        (None, True),  # never reaped: the kill did not work
    ],
)
def test_a_snippet_that_ends_by_itself_at_the_deadline_did_not_time_out(status, timed_out):
    config = runner.parse_config(
        json.dumps(
            {
                "timeoutSeconds": 1,
                "stdoutLimitBytes": 10,
                "stderrLimitBytes": 10,
                "fileSizeLimitBytes": 10,
            }
        )
    )
    run = runner.Run(config, b"pass", None, runner.LogWriter(1, 0))
    run.started_mono = time.monotonic()
    run.timed_out = True
    run.child_status = status
    assert run.result_fields(started=True)["timedOut"] is timed_out
