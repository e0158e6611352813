"""Run one container as a confined local process, the way a kubelet's runtime would.

As root, each container gets its own cgroup (memory and pids limits, checked before its command
runs) and the namespaces set up by `container_shim`: its command is PID 1 of a private PID
namespace with a fresh /proc, in a private mount namespace (emptyDir binds, optional read-only
root), optionally with an empty network namespace, as the pod's numeric user. Without root the
only confinement is rlimits, and `Confinement.describe()` says so.

Stdout and stderr arrive through pipes and are written to one CRI log file by a pump thread; a
container counts as finished only once its whole cgroup is empty and both pipes are drained, so
nothing printed before an OOM kill is lost and nothing outlives it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devcluster.cgroups import CgroupError, LimitedCgroup
from devcluster.container_logs import LogWriter
from devcluster.cpu_limits import CpuLimit

log = logging.getLogger(__name__)

SHIM = Path(__file__).with_name("container_shim.py")


@dataclass(frozen=True)
class Confinement:
    """How containers are confined on this node."""

    privileged: bool  # root: cgroups + namespaces + user switch
    reason: str = ""

    @classmethod
    def detect(cls) -> Confinement:
        """Full confinement as root; otherwise rlimits only."""
        if os.geteuid() == 0:
            return cls(True)
        return cls(
            False,
            f"the node agent runs as uid {os.geteuid()}, not root: containers get "
            "rlimits only (no cgroup, PID, mount or network namespace, no user "
            "switch)",
        )

    def describe(self) -> str:
        """A sentence for logs and the node's annotation."""
        if self.privileged:
            return "cgroup memory and pids limits, PID/mount/UTS/IPC namespaces, user switch"
        return self.reason


@dataclass
class ContainerConfig:
    """Everything needed to start one container process (built from the pod spec)."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: str | None = None
    uid: int | None = None
    gid: int | None = None
    groups: list[int] = field(default_factory=list)
    hostname: str = "localhost"
    mounts: list[dict[str, Any]] = field(default_factory=list)  # source, target, readOnly
    read_only_root: bool = False
    isolate_network: bool = False
    capabilities: list[str] | None = None  # None: keep the runtime's default set
    no_new_privs: bool = False
    memory_bytes: int = 512 * 1024 * 1024
    pids_max: int = 256
    cpu_millis: int | None = None  # CFS quota; None: no CPU limit


@dataclass(frozen=True)
class ExitInfo:
    """How a container ended."""

    exit_code: int
    signal: int | None
    oom_killed: bool
    started_at: float | None
    finished_at: float
    start_error: str | None = None  # the command never ran (StartError)


class ContainerStartError(RuntimeError):
    """The container could not be set up (cgroup, namespaces); nothing of it is left running."""


class RunningContainer:
    """One started container; `wait()` returns its `ExitInfo` once everything of it is gone."""

    def __init__(
        self, config: ContainerConfig, cgroup_name: str, log_path: Path, confinement: Confinement
    ) -> None:
        self.config = config
        self.cgroup_name = cgroup_name
        self.log_path = log_path
        self.confinement = confinement
        self.cgroup: LimitedCgroup | None = None
        self.cpu_limit: CpuLimit | None = None
        self.shim: subprocess.Popen[bytes] | None = None
        self.started_at: float | None = None
        self.container_pid: int | None = None
        self._status_read: int | None = None
        self._status_buffer = b""  # bytes read from the shim's status pipe, not yet parsed
        self._pump: threading.Thread | None = None
        self._writer: LogWriter | None = None
        self._done = threading.Event()
        self._wait_lock = threading.Lock()  # one waiter reaps; others see the result
        self._exit: ExitInfo | None = None
        self._killed = False

    # -- start ------------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> None:
        """Start the process; returns once its command runs (or raises ContainerStartError)."""
        config = self.config
        if self.confinement.privileged:
            try:
                self.cgroup = LimitedCgroup.create(
                    self.cgroup_name, config.memory_bytes, config.pids_max
                )
            except CgroupError as error:
                raise ContainerStartError(
                    f"cannot create the container's cgroup: {error}"
                ) from error
            if config.cpu_millis:
                try:
                    self.cpu_limit = CpuLimit.create(self.cgroup, config.cpu_millis)
                except CgroupError as error:
                    log.warning(
                        "container %s runs without its CPU limit: %s", self.cgroup_name, error
                    )
        spec = self._shim_spec()
        spec_read, spec_write = os.pipe2(os.O_CLOEXEC)
        status_read, status_write = os.pipe2(os.O_CLOEXEC)
        out_read, out_write = os.pipe2(os.O_CLOEXEC)
        err_read, err_write = os.pipe2(os.O_CLOEXEC)
        try:
            # The calling thread must outlive the container: the shim's parent-death signal
            # fires when the thread that started it ends (kubelet pod workers do).
            self.shim = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    str(SHIM),
                    str(spec_read),
                    str(status_write),
                    str(os.getpid()),
                ],
                stdin=subprocess.DEVNULL,
                stdout=out_write,
                stderr=err_write,
                pass_fds=(spec_read, status_write),
                close_fds=True,
                cwd="/",
                env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                # Own session: a signal to the agent's process group never reaches it.
                start_new_session=True,
            )
        finally:
            for fd in (spec_read, status_write, out_write, err_write):
                os.close(fd)
        self._status_read = status_read
        self._writer = LogWriter(self.log_path)
        self._pump = threading.Thread(
            target=self._pump_output,
            args=(out_read, err_read),
            name=f"logs-{self.cgroup_name}",
            daemon=True,
        )
        self._pump.start()
        try:
            if self.cgroup is not None:
                # The shim waits for the spec, so nothing runs before the limits are confirmed.
                self.cgroup.add(self.shim.pid)
                self.cgroup.confirm(self.shim.pid)
                if self.cpu_limit is not None:
                    self.cpu_limit.add(self.shim.pid)
            os.write(spec_write, json.dumps(spec).encode())
        except (CgroupError, OSError) as error:
            self._abort()
            raise ContainerStartError(f"cannot confine the container: {error}") from error
        finally:
            os.close(spec_write)
        event = self._next_event(timeout)
        if event.get("event") == "started":
            self.container_pid = int(event["pid"])
            self.started_at = time.time()
            return
        if event.get("event") == "error":
            # The command could not be executed: a real runtime's StartError, exit code 128.
            self._finish(ExitInfo(128, None, False, None, time.time(), event["message"]))
            return
        self._abort()
        raise ContainerStartError(event.get("message") or "the container shim did not start")

    def _shim_spec(self) -> dict[str, Any]:
        config = self.config
        spec: dict[str, Any] = {
            "argv": config.argv,
            "env": config.env,
            "cwd": config.cwd,
            "hostname": config.hostname,
            "isolate": self.confinement.privileged,
        }
        if self.confinement.privileged:
            spec.update(
                uid=config.uid,
                gid=config.gid,
                groups=config.groups,
                mounts=config.mounts,
                readOnlyRoot=config.read_only_root,
                isolateNetwork=config.isolate_network,
                capabilities=config.capabilities,
                noNewPrivs=config.no_new_privs,
            )
        else:
            # No cgroup: the address-space and process-count rlimits are all that is left.
            spec.update(
                noNewPrivs=True, rlimits={"as": config.memory_bytes, "nproc": config.pids_max}
            )
        return spec

    def _next_event(self, timeout: float) -> dict[str, Any]:
        """The next JSON line from the shim's status pipe ({} at end of file or timeout)."""
        assert self._status_read is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._status_buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return {"message": "the container shim did not report in time"}
            with selectors.DefaultSelector() as selector:
                selector.register(self._status_read, selectors.EVENT_READ)
                if not selector.select(remaining):
                    continue
            chunk = os.read(self._status_read, 4096)
            if not chunk:
                return {}
            self._status_buffer += chunk
        line, _, self._status_buffer = self._status_buffer.partition(b"\n")
        try:
            return json.loads(line)
        except ValueError:
            return {"message": f"the container shim reported {line[:200]!r}"}

    def _pump_output(self, out_read: int, err_read: int) -> None:
        streams = {out_read: "stdout", err_read: "stderr"}
        with selectors.DefaultSelector() as selector:
            for fd in streams:
                selector.register(fd, selectors.EVENT_READ)
            while streams:
                for key, _ in selector.select():
                    chunk = os.read(key.fd, 65536)
                    if chunk:
                        assert self._writer is not None
                        self._writer.write(streams[key.fd], chunk)
                    else:
                        selector.unregister(key.fd)
                        os.close(key.fd)
                        del streams[key.fd]

    # -- control ----------------------------------------------------------------------------
    def signal(self, signum: int) -> None:
        """Send a signal to the container's command (through the shim, which forwards it)."""
        if self.shim is not None and self.shim.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.shim.pid, signum)

    def kill(self) -> None:
        """SIGKILL everything of the container at once."""
        self._killed = True
        if self.cgroup is not None:
            with contextlib.suppress(CgroupError):
                self.cgroup.kill_all()
        elif self.shim is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.shim.pid, signal.SIGKILL)

    def _abort(self) -> None:
        self.kill()
        if self.shim is not None:
            with contextlib.suppress(ProcessLookupError):
                self.shim.kill()
            self.shim.wait()
        self._cleanup()

    # -- end --------------------------------------------------------------------------------
    def wait(self, timeout: float | None = None) -> ExitInfo | None:
        """Block until the container has ended and been cleaned up; None on timeout."""
        if self._exit is not None:
            return self._exit
        if timeout is None:
            acquired = self._wait_lock.acquire()
        elif timeout <= 0:
            acquired = self._wait_lock.acquire(blocking=False)
        else:
            acquired = self._wait_lock.acquire(timeout=timeout)
        if not acquired:
            return self._exit
        try:
            return self._reap(timeout)
        except Exception:
            # Whatever went wrong, the container must end and say so, or its pod never would.
            log.exception("reaping container %s failed; killing it", self.cgroup_name)
            self.kill()
            if self._exit is None:
                self._exit = ExitInfo(137, signal.SIGKILL, False, self.started_at, time.time())
                self._done.set()
            return self._exit
        finally:
            self._wait_lock.release()

    def _reap(self, timeout: float | None) -> ExitInfo | None:
        if self._exit is not None:
            return self._exit
        assert self.shim is not None
        try:
            self.shim.wait(timeout)
        except subprocess.TimeoutExpired:
            return None
        event = self._exit_event()
        # Whatever the command left behind (daemonised children) dies with it.
        self.kill()
        if event is not None:
            code, signum = int(event["exitCode"]), event.get("signal")
        else:
            # The shim itself was killed (SIGKILL at the end of a grace period, or the cgroup's
            # OOM killer picked it): report the kill the way a runtime does.
            code, signum = 137, signal.SIGKILL
        oom = self._oom_killed()
        self._finish(ExitInfo(code, signum, oom, self.started_at, time.time()))
        return self._exit

    def _exit_event(self) -> dict[str, Any] | None:
        while True:
            event = self._next_event(2.0)
            if not event or "event" not in event:
                return None
            if event["event"] == "exited":
                return event

    def _oom_killed(self) -> bool:
        if self.cgroup is None:
            return False
        try:
            return self.cgroup.oom_kill_count() > 0
        except CgroupError:
            return False

    def _finish(self, info: ExitInfo) -> None:
        if self.shim is not None and self.shim.poll() is None:
            self.kill()
            self.shim.wait()
        self._cleanup()
        self._exit = info
        self._done.set()

    def _cleanup(self) -> None:
        if self._pump is not None:
            # Pipes reach end of file once every process holding them is gone.
            self._pump.join(timeout=10)
        if self._writer is not None:
            with contextlib.suppress(OSError):
                self._writer.close()
            self._writer = None
        if self._status_read is not None:
            with contextlib.suppress(OSError):
                os.close(self._status_read)
            self._status_read = None
        if self.cgroup is not None:
            try:
                self.cgroup.remove()
            except CgroupError as error:
                log.error("could not remove cgroup %s: %s", self.cgroup_name, error)
        if self.cpu_limit is not None:
            try:
                self.cpu_limit.remove()
            except CgroupError as error:
                log.error("could not remove the cpu cgroup of %s: %s", self.cgroup_name, error)

    @property
    def finished(self) -> bool:
        """Whether the container has ended and its log is complete."""
        return self._done.is_set()
