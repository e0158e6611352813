"""coderun runner: run one Python snippet in a child interpreter and frame what it prints.

It reaches a stock Python image as ``python -c <this source>``, so it uses the standard library
only and runs on Python >= 3.8. Inputs come from the environment (``CODERUN_RUNNER_CONFIG``,
``CODERUN_RUNNER_CODE_<n>``, ``CODERUN_RUNNER_STDIN_<n>``). Everything it writes to its own
stdout (the container log) is a record: one line made of ``RECORD_PREFIX`` and compact ASCII
JSON with ``v`` (format version), ``seq`` (0, 1, 2, ...) and ``t`` (record type):

- ``start``: the snippet started; carries ``startedAt`` and the limits in force.
- ``out`` / ``err``: bytes the snippet wrote to stdout / stderr, base64 in ``d``.
- ``result``: exactly one, last; the verdict (exit code, signal, timings, byte counts, ...).

The log never exceeds ``max_log_bytes(stdout_limit, stderr_limit, timeout)``.
"""

import base64
import contextlib
import io
import json
import math
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import tokenize
from datetime import datetime, timezone

RECORD_PREFIX = "@@coderun "
RECORD_VERSION = 1
RECORD_TYPES = ("start", "out", "err", "result")

# Raw bytes per data record: base64 makes 10924 characters of it, so a record line stays far
# below the 16 KiB at which container runtimes split log lines.
CHUNK_BYTES = 8192
# A stream's pending output is flushed at most this long after it arrived ...
FLUSH_INTERVAL_SECONDS = 0.05
# ... and the records that are not full chunks are budgeted for the timeout plus this much
# (killing and draining happen after the deadline), which bounds the number of records.
FLUSH_GRACE_SECONDS = 10.0
# Prefix, the JSON keys, a 20-digit seq and the newline of one data record (62 bytes), rounded up.
DATA_RECORD_OVERHEAD_BYTES = 80
START_RECORD_MAX_BYTES = 1024
RESULT_RECORD_MAX_BYTES = 4096
ERROR_MAX_CHARS = 300

MAX_TIMEOUT_SECONDS = 1000000
MAX_STREAM_LIMIT_BYTES = 1 << 30
MAX_FILE_SIZE_LIMIT_BYTES = 1 << 62
READ_BYTES = 65536
# After the deadline or the main child's exit: how long to keep killing, and to keep reading
# pipes that some process outside our reach might still hold open.
KILL_BOUND_SECONDS = 5.0
DRAIN_BOUND_SECONDS = 1.0
EXEC_REPORT_BOUND_SECONDS = 10.0
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"

ENV_CONFIG = b"CODERUN_RUNNER_CONFIG"
ENV_CODE_PREFIX = b"CODERUN_RUNNER_CODE_"
ENV_STDIN_PREFIX = b"CODERUN_RUNNER_STDIN_"

# Signals that stop the run from outside (pod deletion sends SIGTERM). They stay blocked and are
# taken with sigtimedwait, whose sender pid tells the cluster's signals from the snippet's own.
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36

EXIT_OK = 0
EXIT_RUN_NOT_POSSIBLE = 2
EXIT_LOG_UNWRITABLE = 3


def partial_record_budget(timeout_seconds):
    """How many not-full data records one stream may emit for this timeout."""
    return math.ceil((timeout_seconds + FLUSH_GRACE_SECONDS) / FLUSH_INTERVAL_SECONDS)


def stream_log_bytes(limit_bytes, timeout_seconds):
    """Upper bound of the log bytes the data records of one stream can take."""
    full_records = limit_bytes // CHUNK_BYTES
    # Plus one final flush of what is left when the run ends.
    records = full_records + partial_record_budget(timeout_seconds) + 1
    # base64 of n bytes is 4 * ceil(n / 3) <= 4n/3 + 8/3: at most 3 bytes per record above 4L/3.
    return records * (DATA_RECORD_OVERHEAD_BYTES + 3) + (4 * limit_bytes + 2) // 3


def max_log_bytes(stdout_limit_bytes, stderr_limit_bytes, timeout_seconds):
    """Largest log, in bytes, this runner writes for these limits (the runner's stdout)."""
    return (
        START_RECORD_MAX_BYTES
        + RESULT_RECORD_MAX_BYTES
        + stream_log_bytes(stdout_limit_bytes, timeout_seconds)
        + stream_log_bytes(stderr_limit_bytes, timeout_seconds)
    )


def utc_timestamp():
    """Now as RFC 3339 UTC with milliseconds."""
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (now.microsecond // 1000)


class ConfigError(Exception):
    """The runner's inputs are missing or invalid; the message says which and why."""


class LogUnwritableError(Exception):
    """The runner's own stdout (the container log) cannot be written any more."""


class Config(object):
    """The validated ``CODERUN_RUNNER_CONFIG``."""

    def __init__(
        self, *, timeout_seconds, stdout_limit, stderr_limit, file_size_limit, work_dir, python
    ):
        self.timeout_seconds = timeout_seconds
        self.stdout_limit = stdout_limit
        self.stderr_limit = stderr_limit
        self.file_size_limit = file_size_limit
        self.work_dir = work_dir
        self.python = python


def _whole_number(raw, name, high):
    value = raw.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= high:
        raise ConfigError(
            "%s must be a whole number from 0 to %d, not %s" % (name, high, _short_repr(value))
        )
    return value


def _short_repr(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_config(text):
    """Validate the JSON of ``CODERUN_RUNNER_CONFIG`` into a Config."""
    if text is None:
        raise ConfigError("CODERUN_RUNNER_CONFIG is not set")
    try:
        raw = json.loads(text)
    except (ValueError, RecursionError) as error:
        raise ConfigError("CODERUN_RUNNER_CONFIG is not valid JSON: %s" % error) from None
    if not isinstance(raw, dict):
        raise ConfigError("CODERUN_RUNNER_CONFIG must be a JSON object")
    timeout = raw.get("timeoutSeconds")
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, (int, float))
        or not 0 < timeout <= MAX_TIMEOUT_SECONDS
    ):
        raise ConfigError(
            "timeoutSeconds must be a number above 0 and at most %d, not %s"
            % (MAX_TIMEOUT_SECONDS, _short_repr(timeout))
        )
    work_dir = raw.get("workDir", "/tmp")
    if not isinstance(work_dir, str) or not work_dir.startswith("/"):
        raise ConfigError("workDir must be an absolute path, not %s" % _short_repr(work_dir))
    python = raw.get("python")
    if python is None:
        python = sys.executable or shutil.which("python3") or ""
    if not isinstance(python, str) or not python.startswith("/"):
        raise ConfigError(
            "python must be an absolute path to an interpreter, not %s" % _short_repr(python)
        )
    return Config(
        timeout_seconds=float(timeout),
        stdout_limit=_whole_number(raw, "stdoutLimitBytes", MAX_STREAM_LIMIT_BYTES),
        stderr_limit=_whole_number(raw, "stderrLimitBytes", MAX_STREAM_LIMIT_BYTES),
        file_size_limit=_whole_number(raw, "fileSizeLimitBytes", MAX_FILE_SIZE_LIMIT_BYTES),
        work_dir=work_dir,
        python=python,
    )


def snippet_file_bytes(code):
    """The bytes of the snippet's file: its text in the encoding its coding line declares.

    The snippet arrives as text, in UTF-8. A line like ``# -*- coding: latin-1 -*-`` makes
    Python decode the file with that codec, so the text is encoded with it, when it can hold
    the text; otherwise the UTF-8 stays, and Python reports the mismatch as it would anywhere.
    """
    try:
        declared = tokenize.detect_encoding(io.BytesIO(code).readline)[0]
        if declared in ("utf-8", "utf-8-sig"):
            return code
        text = code.decode("utf-8")
        encoded = text.encode(declared)
        if (
            tokenize.detect_encoding(io.BytesIO(encoded).readline)[0] == declared
            and encoded.decode(declared) == text
        ):
            return encoded
    except (SyntaxError, LookupError, UnicodeError, ValueError):
        pass
    return code


def read_chunked(environ, prefix):
    """Concatenate ``<prefix>0``, ``<prefix>1``, ... up to the first missing one (None if none)."""
    parts = []
    while True:
        value = environ.get(prefix + str(len(parts)).encode("ascii"))
        if value is None:
            break
        parts.append(value)
    return b"".join(parts) if parts else None


class LogWriter(object):
    """Writes framed records to the container log, never beyond the computed maximum."""

    def __init__(self, fd, max_bytes):
        self.fd = fd
        self.max_bytes = max_bytes
        self.seq = 0
        self.written = 0
        self.broken = False

    def encode(self, record_type, fields):
        record = {"v": RECORD_VERSION, "seq": self.seq, "t": record_type}
        record.update(fields)
        body = json.dumps(record, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
        return (RECORD_PREFIX + body + "\n").encode("ascii")

    def fits(self, line, reserve):
        return self.written + len(line) + reserve <= self.max_bytes

    def write_line(self, line):
        if self.broken:
            raise LogUnwritableError("the log was already unwritable")
        view = memoryview(line)
        try:
            while view:
                view = view[os.write(self.fd, view) :]
        except OSError as error:
            self.broken = True
            raise LogUnwritableError(str(error)) from error
        self.written += len(line)
        self.seq += 1

    def emit_data(self, record_type, data):
        """Emit one data record; False if the size guard refused it."""
        line = self.encode(record_type, {"d": base64.b64encode(data).decode("ascii")})
        if not self.fits(line, RESULT_RECORD_MAX_BYTES):
            return False
        self.write_line(line)
        return True

    def emit_start(self, fields):
        line = self.encode("start", fields)
        if len(line) > START_RECORD_MAX_BYTES:
            raise ValueError("start record larger than its budget")
        self.write_line(line)

    def emit_result(self, fields):
        line = self.encode("result", fields)
        error = fields.get("error") or ""
        # Only the free-text error can make the record long; shorten it until it fits.
        while len(line) > RESULT_RECORD_MAX_BYTES and error:
            error = error[: len(error) // 2]
            fields = dict(fields, error=error + "...")
            line = self.encode("result", fields)
        self.write_line(line)


class StreamCapture(object):
    """One output stream of the snippet: counts every byte, keeps the first ``limit`` bytes."""

    def __init__(self, record_type, limit, timeout_seconds):
        self.record_type = record_type
        self.limit = limit
        self.total = 0
        self.kept = 0
        self.pending = bytearray()
        self.partial_budget = partial_record_budget(timeout_seconds)
        self.last_partial_flush = -1e18
        self.guard_dropped = False
        self.finished = False

    @property
    def truncated(self):
        return self.total > self.limit or self.guard_dropped

    def feed(self, data):
        self.total += len(data)
        room = self.limit - self.kept
        if room > 0:
            kept = data[:room]
            self.pending += kept
            self.kept += len(kept)

    def next_flush_at(self):
        """Monotonic time at which pending bytes must be flushed, or None."""
        if not self.pending or self.partial_budget <= 0:
            return None
        return self.last_partial_flush + FLUSH_INTERVAL_SECONDS

    def flush(self, log, now, final=False):
        while len(self.pending) >= CHUNK_BYTES:
            self._emit(log, bytes(self.pending[:CHUNK_BYTES]))
            del self.pending[:CHUNK_BYTES]
        if not self.pending or self.finished:
            return
        if final:
            self.finished = True
        elif self.partial_budget > 0 and now >= self.last_partial_flush + FLUSH_INTERVAL_SECONDS:
            self.partial_budget -= 1
            self.last_partial_flush = now
        else:
            return
        self._emit(log, bytes(self.pending))
        self.pending = bytearray()

    def _emit(self, log, data):
        if not log.emit_data(self.record_type, data):
            self.guard_dropped = True


def prctl(option, value):
    """Call prctl(2); False when it is not available or fails."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        zero = ctypes.c_ulong(0)
        return libc.prctl(ctypes.c_int(option), ctypes.c_ulong(value), zero, zero, zero) == 0
    except Exception:
        return False


def parse_mountinfo(text):
    """(mount root, mount point, fstype, super options) of each line of /proc/self/mountinfo."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if dash < 5 or len(fields) < dash + 4:
            continue
        point = _unescape_mount_field(fields[4])
        options = set(fields[dash + 3].split(","))
        mounts.append((_unescape_mount_field(fields[3]), point, fields[dash + 1], options))
    return mounts


def _unescape_mount_field(field):
    # The kernel writes space, tab, newline and backslash as octal escapes.
    for escaped, plain in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, plain)
    return field


def _cgroup_dir(mount, path):
    root, point = mount[0], mount[1]
    if root != "/" and not (path == root or path.startswith(root.rstrip("/") + "/")):
        return None
    relative = path[len(root) :] if root != "/" else path
    return os.path.join(point, relative.lstrip("/"))


def own_memory_cgroup():
    """(cgroup version, directory) of this process's memory cgroup, or None if not found."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
        with open("/proc/self/mountinfo") as f:
            mounts = parse_mountinfo(f.read())
    except OSError:
        return None
    v1_path = v2_path = None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            v2_path = parts[2]
        elif "memory" in parts[1].split(","):
            v1_path = parts[2]
    for mount in mounts:
        if v1_path is not None and mount[2] == "cgroup" and "memory" in mount[3]:
            directory = _cgroup_dir(mount, v1_path)
            if directory and os.path.exists(os.path.join(directory, "memory.oom_control")):
                return 1, directory
        if v2_path is not None and mount[2] == "cgroup2":
            directory = _cgroup_dir(mount, v2_path)
            if directory and os.path.exists(os.path.join(directory, "memory.events")):
                return 2, directory
    return None


def read_keyed_number(path, key):
    """The number after ``key`` in a ``key value`` per line file, or None."""
    try:
        with open(path) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 2 and parts[0] == key:
                    return int(parts[1])
    except (OSError, ValueError):
        return None
    return None


def read_number(path):
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


class MemoryCgroup(object):
    """Read-only view of the runner's own memory cgroup: OOM kills and peak usage."""

    def __init__(self, found):
        self.version, self.directory = found if found else (None, None)

    def oom_kills(self):
        if self.version == 1:
            return read_keyed_number(os.path.join(self.directory, "memory.oom_control"), "oom_kill")
        if self.version == 2:
            return read_keyed_number(os.path.join(self.directory, "memory.events"), "oom_kill")
        return None

    def peak_bytes(self):
        if self.version == 1:
            return read_number(os.path.join(self.directory, "memory.max_usage_in_bytes"))
        if self.version == 2:
            return read_number(os.path.join(self.directory, "memory.peak"))
        return None


def descendants_of(root_pid):
    """Pids of every live or zombie descendant of root_pid, found by scanning /proc."""
    children = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
            # The command name may contain spaces and parentheses; the fields follow the last ')'.
            ppid = int(stat[stat.rindex(b")") + 2 :].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(name))
    found = []
    queue = list(children.get(root_pid, ()))
    while queue:
        pid = queue.pop()
        found.append(pid)
        queue.extend(children.get(pid, ()))
    return found


def close_fds_except(keep):
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(3, 1024))
    for fd in fds:
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)


def ensure_standard_fds():
    """Open /dev/null on any of fds 0-2 that is closed, so no pipe of ours can land there."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            opened = os.open(os.devnull, os.O_RDWR)
            if opened != fd:
                os.close(opened)


def _silent(*_args):
    """A signal handler whose only job is to make the wakeup fd wake the main loop."""


class Run(object):
    """One execution of the snippet, from fork to the result record."""

    def __init__(self, config, code, stdin, log):
        self.config = config
        self.code = code
        self.stdin = stdin
        self.log = log
        self.stdout = StreamCapture("out", config.stdout_limit, config.timeout_seconds)
        self.stderr = StreamCapture("err", config.stderr_limit, config.timeout_seconds)
        self.run_dir = None
        self.child_pid = None
        self.child_status = None
        self.started_mono = None
        self.ended_mono = None
        self.started_at = None
        self.timed_out = False
        self.stop_signal = None
        self.errors = []
        self.open_fds = {}
        self.wake_r = self.wake_w = None
        self.cgroup = MemoryCgroup(own_memory_cgroup())

    # -- set-up -------------------------------------------------------------------------------

    def prepare_files(self):
        """Write the snippet (and stdin) to a fresh directory; returns the child's stdin fd."""
        try:
            self.run_dir = tempfile.mkdtemp(prefix="coderun-", dir=self.config.work_dir)
        except OSError as error:
            raise ConfigError(
                "cannot create a directory in workDir %s: %s"
                % (self.config.work_dir, error.strerror)
            ) from None
        with open(os.path.join(self.run_dir, "main.py"), "wb") as f:
            f.write(snippet_file_bytes(self.code))
        if self.stdin is None:
            return os.open(os.devnull, os.O_RDONLY)
        stdin_path = os.path.join(self.run_dir, ".stdin")
        with open(stdin_path, "wb") as f:
            f.write(self.stdin)
        fd = os.open(stdin_path, os.O_RDONLY)
        os.unlink(stdin_path)
        return fd

    def child_environment(self):
        path = os.environ.get("PATH") or DEFAULT_PATH
        return {
            "PATH": path,
            "HOME": self.run_dir,
            "LANG": "C.UTF-8",
            "PYTHONUTF8": "1",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }

    def install_signal_handlers(self):
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        # A fork bomb sends SIGCHLD faster than we read; a full pipe must not print warnings.
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        signal.signal(signal.SIGCHLD, _silent)
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)

    def take_stop_signals(self):
        """Note a pending stop signal, unless the snippet sent it to end its run as if deleted."""
        while True:
            info = signal.sigtimedwait(STOP_SIGNALS, 0)
            if info is None:
                return
            if self.stop_signal is None and not self.sent_by_snippet(info.si_pid):
                self.stop_signal = info.si_signo

    def sent_by_snippet(self, pid):
        if pid == 0:
            # From outside our pid namespace (the kubelet, in a pod) or from the kernel.
            return False
        # In the pod every other process of our pid namespace is the snippet's.
        return os.getpid() == 1 or pid == self.child_pid or pid in descendants_of(os.getpid())

    def exec_child(self, stdin_fd, out_w, err_w, report_w, env):
        """In the forked child: lock the process down and exec the interpreter. Never returns."""
        try:
            signal.set_wakeup_fd(-1)
            # Ignored signals stay ignored across exec; the snippet must start with defaults.
            for signum in (
                signal.SIGTERM,
                signal.SIGINT,
                signal.SIGHUP,
                signal.SIGCHLD,
                signal.SIGPIPE,
                signal.SIGXFSZ,
            ):
                signal.signal(signum, signal.SIG_DFL)
            # So do blocked ones: the runner blocks its stop signals.
            signal.pthread_sigmask(signal.SIG_SETMASK, ())
            os.setsid()
            os.dup2(stdin_fd, 0)
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            close_fds_except((0, 1, 2, report_w))
            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
            limit = self.config.file_size_limit
            if hard != resource.RLIM_INFINITY:
                limit = min(limit, hard)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
            # Make the kernel's OOM killer pick the snippet rather than the runner.
            with contextlib.suppress(OSError), open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")
            os.chdir(self.run_dir)
            argv = [self.config.python, "-u", os.path.join(self.run_dir, "main.py")]
            os.execve(self.config.python, argv, env)
        except BaseException as error:
            with contextlib.suppress(BaseException):
                os.write(report_w, ("%s: %s" % (type(error).__name__, error)).encode()[:1000])
        finally:
            os._exit(127)

    def start_child(self):
        stdin_fd = self.prepare_files()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        report_r, report_w = os.pipe()
        env = self.child_environment()
        self.started_at = utc_timestamp()
        self.started_mono = time.monotonic()
        pid = os.fork()
        if pid == 0:
            self.exec_child(stdin_fd, out_w, err_w, report_w, env)
        self.child_pid = pid
        for fd in (stdin_fd, out_w, err_w, report_w):
            os.close(fd)
        self.open_fds = {out_r: self.stdout, err_r: self.stderr}
        failure = self.read_exec_report(report_r)
        if failure:
            self.errors.append("could not start %s: %s" % (self.config.python, failure))
            return False
        return True

    def read_exec_report(self, report_r):
        """What the child wrote before exec failed; empty once exec closed the pipe."""
        chunks = []
        deadline = time.monotonic() + EXEC_REPORT_BOUND_SECONDS
        try:
            while time.monotonic() < deadline:
                ready, _, _ = select.select([report_r], [], [], 0.1)
                if not ready:
                    continue
                data = os.read(report_r, 1000)
                if not data:
                    break
                chunks.append(data)
        finally:
            os.close(report_r)
        return b"".join(chunks).decode("utf-8", "replace")

    # -- main loop ----------------------------------------------------------------------------

    def supervise(self):
        """Pump output until the child exits, the deadline passes or the runner is stopped."""
        deadline = self.started_mono + self.config.timeout_seconds
        poller = select.poll()
        for fd in self.open_fds:
            poller.register(fd, select.POLLIN)
        poller.register(self.wake_r, select.POLLIN)
        while True:
            self.take_stop_signals()
            self.reap()
            now = time.monotonic()
            if self.child_status is not None or self.stop_signal is not None:
                return poller
            if now >= deadline:
                self.timed_out = True
                return poller
            self.pump(poller, min(deadline, self.next_flush_at(now + 0.1)) - now)

    def next_flush_at(self, latest):
        times = [latest]
        for stream in (self.stdout, self.stderr):
            at = stream.next_flush_at()
            if at is not None:
                times.append(at)
        return min(times)

    def pump(self, poller, wait_seconds):
        """Wait up to wait_seconds for output or a signal, read what came, flush what is due."""
        for fd, _event in poller.poll(max(0, math.ceil(wait_seconds * 1000))):
            if fd == self.wake_r:
                self.drain_wakeups()
            elif fd in self.open_fds:
                self.read_output(fd, poller)
        now = time.monotonic()
        for stream in (self.stdout, self.stderr):
            stream.flush(self.log, now)

    def drain_wakeups(self):
        try:
            while os.read(self.wake_r, 512):
                pass
        except OSError:
            pass

    def read_output(self, fd, poller):
        try:
            data = os.read(fd, READ_BYTES)
        except OSError:
            data = b""
        if data:
            self.open_fds[fd].feed(data)
            return
        poller.unregister(fd)
        os.close(fd)
        del self.open_fds[fd]

    def reap(self):
        """Collect every exited child (orphans re-parent to us); keep the main child's status."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.child_pid:
                self.child_status = status
                self.ended_mono = time.monotonic()

    # -- ending -------------------------------------------------------------------------------

    def kill_everything(self):
        """SIGKILL the process group and every descendant until none is left (bounded)."""
        give_up_at = time.monotonic() + KILL_BOUND_SECONDS
        pause = 0.001
        while True:
            if os.getpid() == 1:
                # In the pod every other process in our pid namespace is the snippet's.
                self._kill(-1)
            if self.child_pid:
                self._kill(-self.child_pid)
            self.reap()
            remaining = descendants_of(os.getpid())
            if not remaining:
                return
            for pid in remaining:
                self._kill(pid)
            if time.monotonic() > give_up_at:
                self.errors.append("%d processes could not be killed" % len(remaining))
                return
            time.sleep(pause)
            pause = min(pause * 2, 0.05)

    @staticmethod
    def _kill(pid):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)

    def drain(self, poller):
        """Read what is left in the pipes now that every writer is dead (bounded)."""
        give_up_at = time.monotonic() + DRAIN_BOUND_SECONDS
        while self.open_fds and time.monotonic() < give_up_at:
            self.pump(poller, give_up_at - time.monotonic())
        for fd in list(self.open_fds):
            os.close(fd)
        self.open_fds = {}

    def result_fields(self, started):
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        exit_code = signal_number = None
        # Without a start the status is that of a child that failed to exec, not of the snippet.
        status = self.child_status if started else None
        if status is not None:
            if os.WIFSIGNALED(status):
                signal_number = os.WTERMSIG(status)
                exit_code = 128 + signal_number
            elif os.WIFEXITED(status):
                exit_code = os.WEXITSTATUS(status)
        # Past the deadline the snippet may still have ended by itself before the SIGKILL landed.
        timed_out = self.timed_out and (status is None or signal_number == signal.SIGKILL)
        ended = self.ended_mono or time.monotonic()
        error = "; ".join(self.errors) or None
        if error and len(error) > ERROR_MAX_CHARS:
            error = error[:ERROR_MAX_CHARS] + "..."
        return {
            "exitCode": exit_code,
            "signal": signal_number,
            "timedOut": timed_out,
            "oomKilled": False,
            "stoppedBySignal": self.stop_signal,
            "durationMs": round((ended - self.started_mono) * 1000) if self.started_mono else 0,
            "cpuMs": round((usage.ru_utime + usage.ru_stime) * 1000),
            # ru_maxrss is in KiB on Linux.
            "peakMemoryBytes": usage.ru_maxrss * 1024,
            "cgroupPeakMemoryBytes": self.cgroup.peak_bytes(),
            "stdoutBytes": self.stdout.total,
            "stderrBytes": self.stderr.total,
            "stdoutTruncated": self.stdout.truncated,
            "stderrTruncated": self.stderr.truncated,
            "startedAt": self.started_at,
            "finishedAt": utc_timestamp(),
            "error": error,
        }

    def execute(self):
        """Run the snippet and emit start, output and result records; returns the exit status."""
        prctl(PR_SET_DUMPABLE, 0)
        prctl(PR_SET_CHILD_SUBREAPER, 1)
        self.install_signal_handlers()
        oom_before = self.cgroup.oom_kills()
        poller = None
        started = False
        try:
            started = self.start_child()
            if started:
                self.log.emit_start(
                    {
                        "startedAt": self.started_at,
                        "timeoutSeconds": self.config.timeout_seconds,
                        "stdoutLimitBytes": self.config.stdout_limit,
                        "stderrLimitBytes": self.config.stderr_limit,
                    }
                )
                poller = self.supervise()
        except LogUnwritableError:
            raise
        except ConfigError as error:
            self.errors.append(str(error))
        except Exception as error:
            self.errors.append("runner failed: %s: %s" % (type(error).__name__, error))
        finally:
            self.kill_everything()
        try:
            if poller is not None:
                self.drain(poller)
            now = time.monotonic()
            for stream in (self.stdout, self.stderr):
                stream.flush(self.log, now, final=True)
            if self.stdout.guard_dropped or self.stderr.guard_dropped:
                self.errors.append("output dropped to keep the log within its maximum size")
            fields = self.result_fields(started)
            oom_after = self.cgroup.oom_kills()
            fields["oomKilled"] = bool(
                fields["signal"] == signal.SIGKILL
                and oom_before is not None
                and oom_after is not None
                and oom_after > oom_before
            )
            self.log.emit_result(fields)
        finally:
            self.remove_run_dir()
        return EXIT_OK if started else EXIT_RUN_NOT_POSSIBLE

    def remove_run_dir(self):
        """Best effort, after the result: nothing the snippet left there may cost the verdict."""
        if self.run_dir:
            # Before Python 3.13 rmtree recurses: a deep enough tree raises RecursionError.
            with contextlib.suppress(Exception):
                shutil.rmtree(self.run_dir, ignore_errors=True)


def failure_result(message):
    """Result fields for a run that could not happen at all."""
    now = utc_timestamp()
    return {
        "exitCode": None,
        "signal": None,
        "timedOut": False,
        "oomKilled": False,
        "stoppedBySignal": None,
        "durationMs": 0,
        "cpuMs": 0,
        "peakMemoryBytes": 0,
        "cgroupPeakMemoryBytes": None,
        "stdoutBytes": 0,
        "stderrBytes": 0,
        "stdoutTruncated": False,
        "stderrTruncated": False,
        "startedAt": None,
        "finishedAt": now,
        "error": message[:ERROR_MAX_CHARS],
    }


def main():
    """Entry point: read the inputs, run the snippet, return the runner's exit status."""
    ensure_standard_fds()
    environ = os.environb
    log = LogWriter(1, max_log_bytes(0, 0, 0))
    try:
        config = parse_config(environ.get(ENV_CONFIG))
        code = read_chunked(environ, ENV_CODE_PREFIX)
        if code is None:
            raise ConfigError("CODERUN_RUNNER_CODE_0 is not set")
        log.max_bytes = max_log_bytes(
            config.stdout_limit, config.stderr_limit, config.timeout_seconds
        )
        return Run(config, code, read_chunked(environ, ENV_STDIN_PREFIX), log).execute()
    except LogUnwritableError:
        return EXIT_LOG_UNWRITABLE
    except ConfigError as error:
        message = "invalid runner input: %s" % error
    except Exception as error:
        message = "runner failed: %s: %s" % (type(error).__name__, error)
    try:
        log.emit_result(failure_result(message))
    except LogUnwritableError:
        return EXIT_LOG_UNWRITABLE
    return EXIT_RUN_NOT_POSSIBLE


if __name__ == "__main__":
    sys.exit(main())
