"""CPU limits (CFS quota) for container cgroups, on cgroup v1 or v2.

`devcluster.cgroups.LimitedCgroup` covers memory and pids only; this module adds the CPU
controller beside it without changing it: on v2 it writes `cpu.max` into the container's own
cgroup directory, on v1 it makes a same-named cgroup in the `cpu` hierarchy. A CPU limit
throttles, it does not protect the machine the way the memory and pids limits do, so a node
that cannot set one runs the container without it and says so in its log.
"""

from __future__ import annotations

import contextlib
import errno
import time
from pathlib import Path

from devcluster.cgroups import CgroupError, LimitedCgroup, parse_mountinfo, parse_proc_cgroup

PERIOD_US = 100_000
MIN_QUOTA_US = 1_000  # the kernel's lower bound for a CFS quota


def quota_us(millicores: int, period_us: int = PERIOD_US) -> int:
    """The CFS quota per period for a limit in millicores (`500m` -> 50000 of 100000)."""
    return max(MIN_QUOTA_US, millicores * period_us // 1000)


def _own_v1_cpu_dir(mountinfo: str, proc_cgroup: str) -> Path | None:
    own = parse_proc_cgroup(proc_cgroup).get("cpu")
    if own is None:
        return None
    for mount in parse_mountinfo(mountinfo):
        if mount.fstype == "cgroup" and "cpu" in mount.super_options:
            root = mount.root.rstrip("/")
            if root and own != root and not own.startswith(root + "/"):
                continue
            return Path(mount.mount_point) / own[len(root) :].lstrip("/")
    return None


class CpuLimit:
    """A CPU quota for the processes of one container cgroup."""

    def __init__(self, directory: Path, own_directory: bool) -> None:
        self.directory = directory
        self._own_directory = own_directory  # v1: a directory of ours to move processes into

    @classmethod
    def create(
        cls,
        cgroup: LimitedCgroup,
        millicores: int,
        mountinfo_path: str = "/proc/self/mountinfo",
        proc_cgroup_path: str = "/proc/self/cgroup",
    ) -> CpuLimit:
        """Limit `cgroup`'s processes to `millicores`; CgroupError if the kernel will not."""
        quota = quota_us(millicores)
        if cgroup.version == 2:
            parent = cgroup.memory_dir.parent
            control = parent / "cgroup.subtree_control"
            try:
                if "cpu" not in control.read_text().split():
                    control.write_text("+cpu")
                (cgroup.memory_dir / "cpu.max").write_text(f"{quota} {PERIOD_US}")
            except OSError as error:
                raise CgroupError(
                    f"cannot set cpu.max in {cgroup.memory_dir}: {error.strerror}"
                ) from error
            return cls(cgroup.memory_dir, own_directory=False)
        try:
            directory = _own_v1_cpu_dir(
                Path(mountinfo_path).read_text(), Path(proc_cgroup_path).read_text()
            )
        except OSError as error:
            raise CgroupError(f"cannot read this process's cgroups: {error}") from error
        if directory is None:
            raise CgroupError("no cgroup v1 cpu controller is mounted")
        directory = directory / cgroup.memory_dir.name
        try:
            directory.mkdir()
            (directory / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (directory / "cpu.cfs_quota_us").write_text(str(quota))
        except OSError as error:
            with contextlib.suppress(OSError):
                directory.rmdir()
            raise CgroupError(f"cannot set a CPU quota in {directory}: {error.strerror}") from error
        return cls(directory, own_directory=True)

    def add(self, pid: int) -> None:
        """Move a process under the quota (v2: it already is, through its cgroup)."""
        if not self._own_directory:
            return
        try:
            (self.directory / "cgroup.procs").write_text(str(pid))
        except OSError as error:
            raise CgroupError(
                f"cannot move {pid} into {self.directory}: {error.strerror}"
            ) from error

    def read_quota(self) -> tuple[int | None, int]:
        """(quota, period) in microseconds as the kernel reports them; None: unlimited."""
        if not self._own_directory:
            quota, period = (self.directory / "cpu.max").read_text().split()
            return (None if quota == "max" else int(quota)), int(period)
        quota_text = (self.directory / "cpu.cfs_quota_us").read_text().strip()
        period = int((self.directory / "cpu.cfs_period_us").read_text())
        return (None if int(quota_text) < 0 else int(quota_text)), period

    def remove(self, timeout: float = 5.0) -> None:
        """Delete the v1 directory once its processes are gone (they die with the container)."""
        if not self._own_directory:
            return
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.directory.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as error:
                if error.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise CgroupError(
                        f"could not remove {self.directory}: {error.strerror}"
                    ) from error
                time.sleep(0.01)


def _own_v1_cpu_dir_now() -> Path | None:
    try:
        return _own_v1_cpu_dir(
            Path("/proc/self/mountinfo").read_text(), Path("/proc/self/cgroup").read_text()
        )
    except OSError:
        return None


def child_names(prefix: str) -> list[str]:
    """Names of the v1 cpu cgroups under our own that start with `prefix`."""
    directory = _own_v1_cpu_dir_now()
    if directory is None:
        return []
    with contextlib.suppress(OSError):
        return [p.name for p in directory.iterdir() if p.is_dir() and p.name.startswith(prefix)]
    return []


def remove_leftover(name: str) -> None:
    """Remove a v1 cpu cgroup called `name` under our own, if there is one and it is empty."""
    directory = _own_v1_cpu_dir_now()
    if directory is not None:
        with contextlib.suppress(OSError):
            (directory / name).rmdir()
