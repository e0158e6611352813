"""Child processes of the local stack: started in their own process groups, stopped whole."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PR_SET_PDEATHSIG = 1


class StartError(RuntimeError):
    """A part of the stack did not come up; the message says which and where its log is."""


@dataclass
class Child:
    """One long-running process of the stack and the file its output goes to."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start in a new session so that stopping it reaches its whole process group."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        log.write(
            f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name} =====\n".encode()
        )
        log.flush()
        try:
            self.process = subprocess.Popen(
                list(self.argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,
                preexec_fn=_stop_with_parent,  # noqa: PLW1509 (only a prctl call after fork)
            )
        finally:
            log.close()

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    def stop(self, grace_seconds: float = 10.0) -> None:
        """SIGTERM the process group, then SIGKILL whatever is left after the grace period."""
        if self.process is not None:
            stop_process_group(self.process, grace_seconds)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of this child's log, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _load_libc() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


# Loaded in the parent: the child between fork and exec only calls into it.
_LIBC = _load_libc()


def _stop_with_parent() -> None:
    """In the child before exec: get SIGTERM when the launcher dies, even by SIGKILL.

    Without prctl (not Linux) the next `make run` cleans up what was left (see launcher).
    """
    if _LIBC is not None:
        _LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop_process_group(process: subprocess.Popen, grace_seconds: float = 10.0) -> None:
    """Stop a child started with ``start_new_session``: SIGTERM its group, wait for it, then
    SIGKILL the group (grandchildren may outlive the leader) and reap the leader."""
    pgid = process.pid
    _signal_group(pgid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_seconds)
    _signal_group(pgid, signal.SIGKILL)
    if process.poll() is None:
        process.wait(timeout=5)


def group_alive(pgid: int) -> bool:
    """True while any process of the group lives."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_group(pgid: int, grace_seconds: float = 10.0) -> None:
    """SIGTERM a process group, SIGKILL it if it is still there after the grace period."""
    _signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while group_alive(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal_group(pgid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def wait_until(check: Callable[[], bool], child: Child, timeout_seconds: float, what: str) -> None:
    """Poll ``check`` until it holds; fail early if ``child`` dies, or after the timeout."""
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if check():
            return
        if not child.alive():
            raise StartError(
                f"{child.name} stopped while starting ({what}); its log {child.log_path} ends with:"
                f"\n{child.log_tail()}"
            )
        time.sleep(0.1)
    raise StartError(
        f"{child.name} was not ready after {timeout_seconds:.0f} s ({what}); see {child.log_path}"
    )
