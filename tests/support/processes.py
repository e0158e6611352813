"""Processes the end-to-end tests start: each in its own process group, logged to a file."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from devstack.processes import stop_process_group


class TestProcess:
    """A long-running process of a test session that can be killed and started again."""

    __test__ = False  # not a test class, despite the name

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env or {})
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start (again); output is appended to the log file."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(f"\n==== start {time.strftime('%H:%M:%S')} ====\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                cwd=self.cwd,
                start_new_session=True,
            )

    def alive(self) -> bool:
        """True while the process runs."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group at once, as a crash would."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, grace_seconds: float = 10) -> None:
        """SIGTERM the process group, SIGKILL what is left after the grace period."""
        if self.process is not None:
            stop_process_group(self.process, grace_seconds)

    def log_text(self) -> str:
        """Everything the process logged so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``check``; fail with the log's tail if the process dies or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check():
                return
            if not self.alive():
                raise RuntimeError(f"{self.name} exited while {what}:\n{self.log_text()[-3000:]}")
            time.sleep(0.1)
        raise RuntimeError(f"{self.name}: timed out {what}:\n{self.log_text()[-3000:]}")
