"""The per-container shim: sets up namespaces, mounts and identity, then runs the command.

The kubelet starts this file in a bare interpreter (`python -I -S container_shim.py SPEC_FD
STATUS_FD AGENT_PID`), puts the process into the container's cgroup, and only then writes the
JSON spec to SPEC_FD; nothing runs before the limits are in force. The shim unshares a PID
namespace (so the command is PID 1 there and its kill(-1) reaches only its own namespace), a
mount namespace (fresh /proc, emptyDir binds, read-only root), UTS and IPC namespaces and, when
asked, an empty network namespace. It forks the command, forwards termination signals to it, and
reports JSON lines on STATUS_FD: `started`, then `exited` (exit code or signal), or `error` when
the command could not be started. Standard library only, because it runs before anything is
trusted.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devcluster import namespaces_linux as ns

_FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)


def _report(status_fd: int, event: dict[str, Any]) -> None:
    os.write(status_fd, (json.dumps(event) + "\n").encode())


def _prepare_mounts(spec: dict[str, Any]) -> None:
    # Mount changes below must never propagate back to the host's namespace.
    ns.mount(None, "/", None, ns.MS_REC | ns.MS_PRIVATE)
    if spec.get("readOnlyRoot"):
        for point, options in ns.mount_points():
            if point == "/proc" or point.startswith("/proc/") or "ro" in options:
                continue
            try:
                ns.remount_read_only(point, options)
            except OSError as error:
                # Mounts hidden below others cannot be remounted; the visible one matters.
                if error.errno not in (2, 22):
                    raise
    ns.mount("proc", "/proc", "proc", ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)
    if os.path.isdir("/dev/shm"):
        # A private /dev/shm, as a runtime gives each pod: the host's is shared by everyone.
        ns.mount(
            "shm",
            "/dev/shm",
            "tmpfs",
            ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC,
            "size=67108864,mode=1777",
        )
    if spec.get("isolateNetwork"):
        # A sysfs mounted in the new network namespace lists only its own interfaces.
        ns.mount("sysfs", "/sys", "sysfs", ns.MS_RDONLY | ns.MS_NOSUID | ns.MS_NODEV | ns.MS_NOEXEC)
    for volume in spec.get("mounts") or []:
        ns.mount(volume["source"], volume["target"], None, ns.MS_BIND | ns.MS_REC)
        flags = ns.MS_REMOUNT | ns.MS_BIND | ns.MS_NOSUID | ns.MS_NODEV
        if volume.get("readOnly"):
            flags |= ns.MS_RDONLY
        ns.mount(None, volume["target"], None, flags)


def _become_container(spec: dict[str, Any]) -> None:
    """Runs in the forked child: everything between fork and exec of the command."""
    isolated = spec.get("isolate", True)
    ns.set_parent_death_signal(signal.SIGKILL)
    for signum in (signal.SIGPIPE, signal.SIGXFSZ, *_FORWARDED):
        signal.signal(signum, signal.SIG_DFL)
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for name, value in (spec.get("rlimits") or {}).items():
        limit = getattr(resource, f"RLIMIT_{name.upper()}")
        resource.setrlimit(limit, (value, value))
    if isolated:
        _prepare_mounts(spec)
        ns.sethostname(spec.get("hostname") or "localhost")
        if spec.get("isolateNetwork"):
            ns.loopback_up()
    uid, gid = spec.get("uid"), spec.get("gid")
    if os.geteuid() == 0:
        capabilities = spec.get("capabilities")
        keep = ns.capability_numbers(capabilities) if capabilities is not None else None
        if gid is not None:
            os.setgroups(spec.get("groups") or [])
            os.setgid(gid)
        if keep is not None:
            # Bounding set first: it needs CAP_SETPCAP, which setuid to non-root takes away.
            ns.drop_bounding_capabilities(keep)
        if uid is not None:
            os.setuid(uid)
        if keep is not None and os.geteuid() == 0:
            # A root container keeps only `keep`; setuid to non-root already cleared them all.
            ns.set_capabilities(keep)
    # Armed after the identity change, which clears it: the container dies with the shim.
    ns.set_parent_death_signal(signal.SIGKILL)
    if spec.get("noNewPrivs"):
        ns.set_no_new_privs()
    if spec.get("cwd"):
        os.chdir(spec["cwd"])
    command = spec["argv"][0]
    try:
        os.execvpe(command, spec["argv"], spec["env"])
    except FileNotFoundError:
        if "/" in command:
            raise _ExecError(
                f'exec: "{command}": stat {command}: no such file or directory'
            ) from None
        raise _ExecError(f'exec: "{command}": executable file not found in $PATH') from None
    except OSError as error:
        raise _ExecError(f'exec: "{command}": {error.strerror.lower()}') from None


class _ExecError(Exception):
    """The command itself could not be executed (message in the runtime's words)."""


def _run_child(spec: dict[str, Any], error_write: int) -> None:
    try:
        _become_container(spec)
    except BaseException as error:  # anything here means the container could not start
        message = (
            str(error) if isinstance(error, _ExecError) else f"{type(error).__name__}: {error}"
        )
        os.write(error_write, message.encode()[:4000])
    finally:
        os._exit(127)


def _exit_event(status: int) -> dict[str, Any]:
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        return {"event": "exited", "exitCode": 128 + signum, "signal": signum}
    return {"event": "exited", "exitCode": os.WEXITSTATUS(status), "signal": None}


def main(argv: list[str]) -> int:
    spec_fd, status_fd, agent_pid = int(argv[1]), int(argv[2]), int(argv[3])
    # If the agent dies (even by SIGKILL), so does the shim, and with it the container's PID 1
    # and its whole namespace: nothing of a pod outlives its node agent.
    ns.set_parent_death_signal(signal.SIGKILL)
    if os.getppid() != agent_pid:
        return 1  # the agent died before the death signal was armed
    with os.fdopen(spec_fd, "rb") as spec_file:
        raw = spec_file.read()
    if not raw:
        return 1  # the kubelet gave up before handing over the spec
    spec = json.loads(raw)
    if spec.get("isolate", True):
        flags = ns.CLONE_NEWPID | ns.CLONE_NEWNS | ns.CLONE_NEWUTS | ns.CLONE_NEWIPC
        if spec.get("isolateNetwork"):
            flags |= ns.CLONE_NEWNET
        try:
            ns.unshare(flags)
        except OSError as error:
            _report(
                status_fd,
                {"event": "error", "message": f"cannot create namespaces: {error.strerror}"},
            )
            return 1
    error_read, error_write = os.pipe2(os.O_CLOEXEC)
    child = os.fork()
    if child == 0:
        os.close(error_read)
        os.close(status_fd)
        _run_child(spec, error_write)
    os.close(error_write)

    def forward(number: int, _frame: object) -> None:
        # Already gone: its exit is about to be reported.
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, number)

    for signum in _FORWARDED:
        signal.signal(signum, forward)
    with os.fdopen(error_read, "rb") as errors:
        failure = errors.read()
    if failure:
        os.waitpid(child, 0)
        _report(status_fd, {"event": "error", "message": failure.decode(errors="replace")})
        return 1
    _report(status_fd, {"event": "started", "pid": child})
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except ChildProcessError:
            status = 0
            break
    _report(status_fd, _exit_event(status))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
