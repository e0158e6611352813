"""Child cgroups with memory and pids limits: /proc parsing, real v1 here, v2 on a fake tree."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from devcluster.cgroups import (
    CgroupError,
    LimitedCgroup,
    locate_own_cgroup,
    parse_mountinfo,
    parse_proc_cgroup,
)

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
50 23 0:40 / /mnt/with\\040space rw - ext4 /dev/sda1 rw
"""
HYBRID_PROC_CGROUP = """\
8:pids:/
4:memory:/jobs/abc
1:cpu,cpuacct:/
0::/
"""


def test_parse_mountinfo_keeps_only_cgroup_mounts():
    mounts = parse_mountinfo(HYBRID_MOUNTINFO)
    assert [(m.mount_point, m.fstype) for m in mounts] == [
        ("/sys/fs/cgroup/memory", "cgroup"),
        ("/sys/fs/cgroup/pids", "cgroup"),
        ("/sys/fs/cgroup/unified", "cgroup2"),
    ]
    assert "memory" in mounts[0].super_options


def test_parse_proc_cgroup_maps_each_controller():
    paths = parse_proc_cgroup(HYBRID_PROC_CGROUP)
    assert paths == {"pids": "/", "memory": "/jobs/abc", "cpu": "/", "cpuacct": "/", "": "/"}


def test_v1_placement_follows_each_controller_and_mount_root():
    placement = locate_own_cgroup(HYBRID_MOUNTINFO, HYBRID_PROC_CGROUP)
    assert placement.version == 1
    assert placement.memory_dir == Path("/sys/fs/cgroup/memory/jobs/abc")
    assert placement.pids_dir == Path("/sys/fs/cgroup/pids")


def test_v1_mount_of_a_subtree_maps_paths_relative_to_its_root():
    mountinfo = (
        "35 31 0:32 /docker/c1 /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
        "39 31 0:36 /docker/c1 /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids\n"
    )
    placement = locate_own_cgroup(mountinfo, "5:memory:/docker/c1/x\n6:pids:/docker/c1\n")
    assert placement.memory_dir == Path("/sys/fs/cgroup/memory/x")
    assert placement.pids_dir == Path("/sys/fs/cgroup/pids")


def test_missing_controllers_raise_a_clear_error():
    mountinfo = "41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
    with pytest.raises(CgroupError, match="No usable memory and pids"):
        locate_own_cgroup(mountinfo, "0::/\n")


@pytest.fixture
def fake_v2_tree(tmp_path):
    """A directory laid out like a cgroup2 mount delegating memory and pids, and /proc files."""
    root = tmp_path / "cgroup"
    own = root / "agent.slice"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("cpu memory pids\n")
    (own / "cgroup.subtree_control").write_text("")
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"41 31 0:38 / {root} rw,nosuid - cgroup2 cgroup2 rw\n")
    proc_cgroup = tmp_path / "cgroup-self"
    proc_cgroup.write_text("0::/agent.slice\n")
    return own, mountinfo, proc_cgroup


def test_v2_creation_enables_controllers_and_writes_limits(fake_v2_tree):
    own, mountinfo, proc_cgroup = fake_v2_tree
    cgroup = LimitedCgroup.create(
        "run1",
        64 * 1024 * 1024,
        32,
        mountinfo_path=str(mountinfo),
        proc_cgroup_path=str(proc_cgroup),
    )
    assert cgroup.version == 2
    assert cgroup.memory_dir == cgroup.pids_dir == own / "run1"
    assert (own / "cgroup.subtree_control").read_text() == "+pids"  # the last write
    assert cgroup.read_limits() == (64 * 1024 * 1024, 32)
    cgroup.confirm()
    (own / "run1" / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cgroup.oom_kill_count() == 1


def test_v2_limits_that_did_not_stick_fail_confirmation(fake_v2_tree):
    own, mountinfo, proc_cgroup = fake_v2_tree
    cgroup = LimitedCgroup.create(
        "run2",
        64 * 1024 * 1024,
        32,
        mountinfo_path=str(mountinfo),
        proc_cgroup_path=str(proc_cgroup),
    )
    (own / "run2" / "pids.max").write_text("max\n")
    with pytest.raises(CgroupError, match="pids limit"):
        cgroup.confirm()


def test_bad_names_are_refused():
    with pytest.raises(CgroupError):
        LimitedCgroup.create("../escape", 1 << 20, 8)


@pytest.mark.cgroup
def test_real_cgroup_confines_a_process_and_cleans_up(confined_cgroup):
    memory, pids_max = confined_cgroup.read_limits()
    assert memory is not None and memory <= confined_cgroup.memory_bytes
    assert pids_max == confined_cgroup.pids_max
    with pytest.raises(CgroupError, match="not inside"):
        confined_cgroup.confirm(os.getpid())
    # Joining the cgroup between fork and exec is what preexec_fn is for; no threads run here.
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        preexec_fn=confined_cgroup.enter,  # noqa: PLW1509
    )
    try:
        confined_cgroup.confirm(proc.pid)
        assert confined_cgroup.contains(proc.pid)
        assert confined_cgroup.pids() == [proc.pid]
        assert confined_cgroup.oom_kill_count() == 0
        confined_cgroup.kill_all()
        assert proc.wait(timeout=5) == -9
        assert confined_cgroup.pids() == []
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.cgroup
def test_creating_the_same_cgroup_twice_fails_and_removal_deletes_it(confined_cgroup):
    name = confined_cgroup.memory_dir.name
    with pytest.raises(CgroupError, match="already exists"):
        LimitedCgroup.create(name, 1 << 24, 8)
    second = LimitedCgroup.create(name + "-b", 1 << 24, 8)
    second.remove()
    assert not second.memory_dir.exists() and not second.pids_dir.exists()
