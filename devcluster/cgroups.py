"""Child cgroups with memory and pids limits, for running pods as local processes.

A `LimitedCgroup` is created under the calling process's own cgroup, on cgroup v1 (one
directory per controller) or v2 (one directory). Processes are moved in with `enter` (usable as
``preexec_fn``) or `add`; `confirm` reads the limits back and fails unless they are in force.
Every failure raises `CgroupError` with a sentence saying what is missing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

MOUNTINFO = "/proc/self/mountinfo"
PROC_CGROUP = "/proc/self/cgroup"
_V2 = ""  # the key of the unified hierarchy in /proc/<pid>/cgroup ("0::/path")


class CgroupError(RuntimeError):
    """A cgroup could not be created, configured, confirmed or removed."""


@dataclass(frozen=True)
class Mount:
    """One cgroup filesystem from /proc/self/mountinfo."""

    root: str
    mount_point: str
    fstype: str
    super_options: frozenset[str]


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    for escaped, plain in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(escaped, plain)
    return field


def parse_mountinfo(text: str) -> list[Mount]:
    """The cgroup and cgroup2 mounts listed in a mountinfo text."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        if "-" not in fields:
            continue
        dash = fields.index("-")
        if dash < 5 or len(fields) < dash + 4 or fields[dash + 1] not in {"cgroup", "cgroup2"}:
            continue
        mounts.append(
            Mount(
                root=_unescape(fields[3]),
                mount_point=_unescape(fields[4]),
                fstype=fields[dash + 1],
                super_options=frozenset(fields[dash + 3].split(",")),
            )
        )
    return mounts


def parse_proc_cgroup(text: str) -> dict[str, str]:
    """Map controller name (``""`` for the v2 hierarchy) to cgroup path from /proc/<pid>/cgroup."""
    paths = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            paths[_V2] = path
        for controller in controllers.split(","):
            if controller:
                paths[controller] = path
    return paths


def _directory(mount: Mount, path: str) -> Path | None:
    """Where cgroup ``path`` appears under ``mount``, or None if the mount does not show it."""
    root = mount.root.rstrip("/")
    if root and path != root and not path.startswith(root + "/"):
        return None
    return Path(mount.mount_point) / path[len(root) :].lstrip("/")


@dataclass(frozen=True)
class Placement:
    """Where the memory and pids controllers of the calling process live."""

    version: int
    memory_dir: Path
    pids_dir: Path


def locate_own_cgroup(mountinfo_text: str, proc_cgroup_text: str) -> Placement:
    """Find the directories of this process's memory and pids cgroups, v1 or v2."""
    mounts = parse_mountinfo(mountinfo_text)
    paths = parse_proc_cgroup(proc_cgroup_text)
    v1 = {}
    for controller in ("memory", "pids"):
        for mount in mounts:
            if mount.fstype == "cgroup" and controller in mount.super_options:
                found = _directory(mount, paths.get(controller, ""))
                if found is not None and controller in paths:
                    v1[controller] = found
    if len(v1) == 2:
        return Placement(1, v1["memory"], v1["pids"])
    for mount in mounts:
        if mount.fstype == "cgroup2" and _V2 in paths:
            found = _directory(mount, paths[_V2])
            if found is not None and _v2_controllers(found) >= {"memory", "pids"}:
                return Placement(2, found, found)
    missing = sorted({"memory", "pids"} - set(v1))
    raise CgroupError(
        "No usable memory and pids cgroup controllers: cgroup v1 lacks "
        f"{', '.join(missing) or 'nothing'} and cgroup v2 does not offer both "
        "(see /proc/self/mountinfo and cgroup.controllers)."
    )


def _v2_controllers(directory: Path) -> set[str]:
    try:
        return set((directory / "cgroup.controllers").read_text().split())
    except OSError:
        return set()


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except PermissionError as error:
        raise CgroupError(
            f"Not allowed to write {path} (running as uid {os.geteuid()}); "
            "creating cgroups needs root or a delegated cgroup."
        ) from error
    except OSError as error:
        raise CgroupError(f"Could not write {value!r} to {path}: {error.strerror}.") from error


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as error:
        raise CgroupError(f"Could not read {path}: {error.strerror}.") from error


def _keyed_number(text: str, key: str) -> int | None:
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key:
            return int(parts[1])
    return None


def _pid_cgroup_paths(pid: int) -> dict[str, str]:
    try:
        return parse_proc_cgroup(Path(f"/proc/{pid}/cgroup").read_text())
    except OSError as error:
        raise CgroupError(f"Could not read the cgroups of process {pid}: {error}.") from error


def _path_names(cgroup_path: str, directory: Path) -> bool:
    """Whether a /proc cgroup path names ``directory``.

    /proc shows paths relative to the cgroup (namespace) root, so only their tails can be compared.
    """
    parts = tuple(p for p in cgroup_path.split("/") if p)
    return bool(parts) and directory.parts[-len(parts) :] == parts


def _make_directory(directory: Path) -> None:
    try:
        directory.mkdir()
    except FileExistsError:
        raise CgroupError(f"The cgroup {directory} already exists.") from None
    except PermissionError as error:
        raise CgroupError(
            f"Not allowed to create {directory} (uid {os.geteuid()}); "
            "creating cgroups needs root or a delegated cgroup."
        ) from error
    except OSError as error:
        raise CgroupError(f"Could not create {directory}: {error.strerror}.") from error


class LimitedCgroup:
    """A child cgroup with a memory limit and a pids limit, on cgroup v1 or v2."""

    def __init__(self, placement: Placement, name: str, memory_bytes: int, pids_max: int):
        self.version = placement.version
        self.memory_dir = placement.memory_dir / name
        self.pids_dir = placement.pids_dir / name
        self.memory_bytes = memory_bytes
        self.pids_max = pids_max
        self._parent = placement

    @classmethod
    def create(
        cls,
        name: str,
        memory_bytes: int,
        pids_max: int,
        *,
        mountinfo_path: str = MOUNTINFO,
        proc_cgroup_path: str = PROC_CGROUP,
    ) -> LimitedCgroup:
        """Create cgroup ``name`` under the caller's own cgroup and set its limits."""
        if not name or "/" in name or name in {".", ".."}:
            raise CgroupError(f"{name!r} is not a valid cgroup name.")
        if memory_bytes <= 0 or pids_max <= 0:
            raise CgroupError("Memory and pids limits must be positive.")
        try:
            mountinfo = Path(mountinfo_path).read_text()
            own = Path(proc_cgroup_path).read_text()
        except OSError as error:
            raise CgroupError(f"Could not read this process's cgroups: {error}.") from error
        cgroup = cls(locate_own_cgroup(mountinfo, own), name, memory_bytes, pids_max)
        cgroup._make_directories()
        try:
            cgroup._apply_limits()
        except CgroupError:
            cgroup.remove()
            raise
        return cgroup

    def _make_directories(self) -> None:
        if self.version == 2:
            self._enable_v2_controllers()
        made: list[Path] = []
        try:
            for directory in dict.fromkeys((self.memory_dir, self.pids_dir)):
                _make_directory(directory)
                made.append(directory)
        except CgroupError:
            # Undo only what this call made: an existing cgroup of the same name is not ours.
            for directory in made:
                with contextlib.suppress(OSError):
                    directory.rmdir()
            raise

    def _enable_v2_controllers(self) -> None:
        control = self._parent.memory_dir / "cgroup.subtree_control"
        enabled = set(_read(control).split())
        for controller in ("memory", "pids"):
            if controller in enabled:
                continue
            try:
                control.write_text(f"+{controller}")
            except OSError as error:
                if error.errno == errno.EBUSY:
                    raise CgroupError(
                        f"Cannot enable the {controller} controller for children of "
                        f"{self._parent.memory_dir}: it holds processes itself (cgroup v2 "
                        "allows controllers only below cgroups without processes); run this "
                        "from a process in a leaf cgroup of its own."
                    ) from error
                raise CgroupError(
                    f"Could not enable the {controller} controller in {control}: {error.strerror}."
                ) from error

    def _apply_limits(self) -> None:
        if self.version == 1:
            _write(self.memory_dir / "memory.limit_in_bytes", str(self.memory_bytes))
            # With swap accounting, also cap memory+swap so the limit cannot be dodged by swapping.
            memsw = self.memory_dir / "memory.memsw.limit_in_bytes"
            if memsw.exists():
                _write(memsw, str(self.memory_bytes))
        else:
            _write(self.memory_dir / "memory.max", str(self.memory_bytes))
            swap = self.memory_dir / "memory.swap.max"
            if swap.exists():
                _write(swap, "0")
        _write(self.pids_dir / "pids.max", str(self.pids_max))

    # -- membership -------------------------------------------------------------------------

    def _procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in dict.fromkeys((self.memory_dir, self.pids_dir))]

    def add(self, pid: int) -> None:
        """Move process ``pid`` (with all its threads) into this cgroup."""
        for procs in self._procs_files():
            _write(procs, str(pid))

    def enter(self) -> None:
        """Move the calling process in; meant for ``subprocess.Popen(preexec_fn=cg.enter)``."""
        self.add(os.getpid())

    def contains(self, pid: int) -> bool:
        """Whether /proc/<pid>/cgroup places the process in this cgroup for both controllers."""
        paths = _pid_cgroup_paths(pid)
        if self.version == 2:
            expected = [(_V2, self.memory_dir)]
        else:
            expected = [("memory", self.memory_dir), ("pids", self.pids_dir)]
        return all(_path_names(paths.get(key, ""), directory) for key, directory in expected)

    def pids(self) -> list[int]:
        """Processes currently in the cgroup."""
        found: set[int] = set()
        for procs in self._procs_files():
            with contextlib.suppress(CgroupError):
                found.update(int(line) for line in _read(procs).split())
        return sorted(found)

    # -- limits and counters ----------------------------------------------------------------

    def read_limits(self) -> tuple[int | None, int | None]:
        """(memory limit in bytes, pids limit) as the kernel reports them; None means unlimited."""
        memory_file = "memory.limit_in_bytes" if self.version == 1 else "memory.max"
        memory_text = _read(self.memory_dir / memory_file).strip()
        pids_text = _read(self.pids_dir / "pids.max").strip()
        memory = None if memory_text == "max" else int(memory_text)
        # v1 reports "unlimited" as a huge page-aligned number.
        if memory is not None and memory >= 1 << 62:
            memory = None
        return memory, None if pids_text == "max" else int(pids_text)

    def confirm(self, pid: int | None = None) -> None:
        """Raise CgroupError unless both limits are in force (and ``pid``, if given, is inside)."""
        memory, pids_max = self.read_limits()
        page = os.sysconf("SC_PAGE_SIZE")
        # The kernel rounds the memory limit down to whole pages.
        if memory is None or not self.memory_bytes - page < memory <= self.memory_bytes:
            raise CgroupError(
                f"The memory limit of {self.memory_dir} reads {memory}, "
                f"not the {self.memory_bytes} bytes that were set."
            )
        if pids_max != self.pids_max:
            raise CgroupError(
                f"The pids limit of {self.pids_dir} reads {pids_max}, not {self.pids_max}."
            )
        if pid is not None and not self.contains(pid):
            raise CgroupError(
                f"Process {pid} is not inside {self.memory_dir}: "
                f"/proc/{pid}/cgroup says {_pid_cgroup_paths(pid)}."
            )

    def oom_kill_count(self) -> int:
        """How many processes the kernel OOM killer has killed in this cgroup."""
        if self.version == 1:
            text = _read(self.memory_dir / "memory.oom_control")
        else:
            text = _read(self.memory_dir / "memory.events")
        count = _keyed_number(text, "oom_kill")
        if count is None:
            raise CgroupError(f"This kernel does not report oom_kill in {self.memory_dir}.")
        return count

    def peak_memory_bytes(self) -> int | None:
        """Highest memory use recorded for the cgroup, or None if the kernel does not track it."""
        name = "memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"
        try:
            return int(_read(self.memory_dir / name).strip())
        except (CgroupError, ValueError):
            return None

    # -- teardown ---------------------------------------------------------------------------

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every process inside until none is left; CgroupError if some survive."""
        kill_file = self.memory_dir / "cgroup.kill"
        deadline = time.monotonic() + timeout
        while True:
            remaining = self.pids()
            if not remaining:
                return
            if self.version == 2 and kill_file.exists():
                _write(kill_file, "1")
            for pid in remaining:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise CgroupError(f"{len(remaining)} processes in {self.memory_dir} survived.")
            time.sleep(0.01)

    def remove(self, timeout: float = 5.0) -> None:
        """Kill what is left inside and delete the cgroup directories."""
        self.kill_all(timeout)
        deadline = time.monotonic() + timeout
        for directory in dict.fromkeys((self.memory_dir, self.pids_dir)):
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as error:
                    # Killed processes leave the cgroup a moment after they die.
                    if error.errno != errno.EBUSY or time.monotonic() > deadline:
                        raise CgroupError(
                            f"Could not remove {directory}: {error.strerror}."
                        ) from error
                    time.sleep(0.01)

    def __enter__(self) -> LimitedCgroup:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.remove()
