"""Container confinement with real processes: user, PID/mount/network namespaces, cgroup limits.

Every test that runs something hostile first makes sure the confinement is really in force
(root, cgroup limits confirmed by `RunningContainer.start`, PID 1 checked inside) and fails
loudly otherwise; nothing here skips, and nothing hostile runs unconfined.
"""

from __future__ import annotations

import itertools
import os
import signal
import socket
import subprocess
import textwrap
import time
from pathlib import Path

import pytest

from devcluster.container_logs import parse_records
from devcluster.containers import (
    Confinement,
    ContainerConfig,
    ExitInfo,
    RunningContainer,
)
from devcluster.images import ImagePullError, PythonImages
from devcluster.node_agent import default_state_root

POD_UID = 65532


def _interpreter_for_pods() -> str:
    """A Python the pod user can run, found the way the node finds one for python images."""
    try:
        return PythonImages(default_state_root() / "images").resolve("python:3", POD_UID, POD_UID)[
            1
        ]
    except (ImagePullError, OSError) as error:
        return f"(none: {error})"


PYTHON = _interpreter_for_pods()
_numbers = itertools.count()


@pytest.fixture
def confinement() -> Confinement:
    found = Confinement.detect()
    if not found.privileged:
        pytest.fail(f"these tests need full confinement, but: {found.reason}")
    if not os.access(PYTHON, os.X_OK):
        pytest.fail(f"no Python interpreter that uid {POD_UID} can run: {PYTHON}")
    return found


def config(code: str, **overrides: object) -> ContainerConfig:
    base = ContainerConfig(
        name="main",
        argv=[PYTHON, "-c", textwrap.dedent(code)],
        env={"PATH": "/usr/bin:/bin"},
        uid=POD_UID,
        gid=POD_UID,
        hostname="test-pod",
        capabilities=[],
        no_new_privs=True,
        memory_bytes=256 * 1024 * 1024,
        pids_max=64,
    )
    for key, value in overrides.items():
        setattr(base, key, value)
    return base


def start(cfg: ContainerConfig, tmp_path: Path, confinement: Confinement) -> RunningContainer:
    name = f"dcnode-{os.getpid()}-test-{next(_numbers)}"
    container = RunningContainer(cfg, name, tmp_path / f"{name}.log", confinement)
    container.start()
    return container


def run(
    cfg: ContainerConfig, tmp_path: Path, confinement: Confinement, timeout: float = 30
) -> tuple[ExitInfo, str]:
    container = start(cfg, tmp_path, confinement)
    info = container.wait(timeout)
    if info is None:
        container.kill()
        info = container.wait(10)
        pytest.fail(f"the container did not end within {timeout} s: {info}")
    output = b"".join(line.content for line in parse_records(container.log_path.read_bytes()))
    return info, output.decode()


def test_command_runs_as_the_pod_user_and_is_pid_1_of_its_own_namespace(tmp_path, confinement):
    info, output = run(
        config("""
        import os, socket
        print(os.getuid(), os.getgid(), os.getgroups(), os.getpid(), socket.gethostname())
        print(sorted(int(p) for p in os.listdir("/proc") if p.isdigit()))
    """),
        tmp_path,
        confinement,
    )
    assert info.exit_code == 0, output
    first, second = output.splitlines()
    assert first == f"{POD_UID} {POD_UID} [] 1 test-pod"
    assert second == "[1]"  # a fresh /proc: only this namespace's processes


def test_stdout_and_stderr_are_merged_into_one_log_with_streams(tmp_path, confinement):
    container = start(
        config("""
        import sys
        print("out", flush=True)
        print("err", file=sys.stderr, flush=True)
        sys.exit(3)
    """),
        tmp_path,
        confinement,
    )
    info = container.wait(30)
    assert info is not None and info.exit_code == 3 and info.signal is None
    lines = parse_records(container.log_path.read_bytes())
    assert [(line.stream, line.content) for line in lines] == [
        ("stdout", b"out\n"),
        ("stderr", b"err\n"),
    ]


def test_memory_hog_is_oom_killed_by_the_kernel_and_earlier_output_is_kept(tmp_path, confinement):
    info, output = run(
        config(
            """
        print("before", flush=True)
        hog = []
        while True:
            hog.append(bytearray(16 * 1024 * 1024))
    """,
            memory_bytes=64 * 1024 * 1024,
        ),
        tmp_path,
        confinement,
    )
    assert info.oom_killed, info
    assert (info.exit_code, info.signal) == (137, signal.SIGKILL)
    assert output == "before\n"


def test_fork_loop_is_stopped_by_the_pids_limit(tmp_path, confinement):
    info, output = run(
        config(
            """
        import os, time
        children = 0
        try:
            for _ in range(200):
                if os.fork() == 0:
                    time.sleep(30)
                    os._exit(0)
                children += 1
        except OSError as error:
            print("refused after", children, error.errno, flush=True)
        os.kill(-1, 9)  # PID 1 of its own namespace: ends every child, nothing else
    """,
            pids_max=16,
        ),
        tmp_path,
        confinement,
    )
    assert info.exit_code == 0, output
    words = output.split()
    assert words[:2] == ["refused", "after"], output
    assert int(words[2]) < 16
    assert int(words[3]) == 11  # EAGAIN


def test_fork_bomb_stays_within_the_pids_limit_and_dies_with_the_container(tmp_path, confinement):
    container = start(
        config(
            """
        import os
        if os.getpid() != 1:
            raise SystemExit("not in a PID namespace; refusing to fork-bomb")
        while True:
            try:
                os.fork()
            except OSError:
                pass
    """,
            pids_max=32,
        ),
        tmp_path,
        confinement,
    )
    assert container.cgroup is not None
    try:
        time.sleep(1.0)
        assert len(container.cgroup.pids()) <= 32
        _, pids_limit = container.cgroup.read_limits()
        assert pids_limit == 32
    finally:
        container.kill()
    info = container.wait(30)
    assert info is not None and info.signal == signal.SIGKILL
    assert not container.cgroup.memory_dir.exists()  # the cgroup is gone with the container


def test_kill_minus_one_inside_does_not_reach_a_process_of_the_same_user_outside(
    tmp_path, confinement
):
    sentinel = subprocess.Popen(
        [PYTHON, "-c", "import time; time.sleep(60)"], user=POD_UID, group=POD_UID, extra_groups=[]
    )
    try:
        info, output = run(
            config("""
            import os, sys
            if os.getpid() != 1:
                sys.exit("not PID 1 of a namespace; refusing to kill -1")
            child = os.fork()
            if child == 0:
                os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)"])
            print("killing", flush=True)
            os.kill(-1, 9)  # every process of the namespace but the caller
            _, status = os.waitpid(child, 0)
            print("child", os.WTERMSIG(status), "still here", flush=True)
        """),
            tmp_path,
            confinement,
        )
        assert output == "killing\nchild 9 still here\n"
        assert info.exit_code == 0
        assert sentinel.poll() is None, "kill(-1) inside the container reached the host"
    finally:
        sentinel.kill()
        sentinel.wait()


def test_isolated_network_namespace_has_only_loopback(tmp_path, confinement):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        info, output = run(
            config(
                f"""
            import os, socket
            print(sorted(name for _, name in socket.if_nameindex()))
            print(sorted(os.listdir("/sys/class/net")))
            try:
                socket.create_connection(("127.0.0.1", {port}), timeout=2)
                print("reached the host")
            except OSError as error:
                print("refused", error.errno)
        """,
                isolate_network=True,
            ),
            tmp_path,
            confinement,
        )
    finally:
        listener.close()
    assert output.splitlines() == ["['lo']", "['lo']", "refused 111"], output
    assert info.exit_code == 0


def test_host_network_is_kept_without_isolation(tmp_path, confinement):
    _, output = run(
        config("""
        import socket
        print(len(socket.if_nameindex()) > 1 or socket.if_nameindex())
    """),
        tmp_path,
        confinement,
    )
    assert output.strip() != "[(1, 'lo')]"


def test_empty_dir_is_private_and_the_root_filesystem_read_only(tmp_path, confinement):
    volume = tmp_path / "volume"
    volume.mkdir()
    volume.chmod(0o777)
    info, output = run(
        config(
            """
        import os
        open("/tmp/secret", "w").write("mine")
        print(sorted(os.listdir("/tmp")))
        try:
            open("/etc/devcluster-test", "w")
        except OSError as error:
            print("root", error.errno)
        try:
            open("/var/tmp/devcluster-test", "w")
        except OSError as error:
            print("var", error.errno)
    """,
            mounts=[{"source": str(volume), "target": "/tmp", "readOnly": False}],
            read_only_root=True,
        ),
        tmp_path,
        confinement,
    )
    assert info.exit_code == 0, output
    assert output.splitlines() == ["['secret']", "root 30", "var 30"]  # EROFS
    assert (volume / "secret").read_text() == "mine"
    assert not Path("/tmp/secret").exists()  # the host's /tmp never saw it
    other = tmp_path / "other"
    other.mkdir()
    other.chmod(0o777)
    _, output = run(
        config(
            """
        import os
        print(sorted(os.listdir("/tmp")))
    """,
            mounts=[{"source": str(other), "target": "/tmp", "readOnly": False}],
        ),
        tmp_path,
        confinement,
    )
    assert output == "[]\n"  # another pod's emptyDir is not visible


def test_capabilities_are_dropped_for_a_root_container(tmp_path, confinement):
    info, output = run(
        config(
            """
        import os
        status = dict(line.split(":\\t") for line in open("/proc/self/status").read().splitlines()
                      if ":\\t" in line)
        print(os.getuid(), status["CapEff"].strip(), status["CapBnd"].strip())
        try:
            os.chown("/proc/self/status", 1, 1)
        except OSError as error:
            print("chown", error.errno)
    """,
            uid=0,
            gid=0,
        ),
        tmp_path,
        confinement,
    )
    assert output.splitlines()[0] == "0 0000000000000000 0000000000000000"
    assert info.exit_code == 0


def test_a_missing_command_is_a_start_error(tmp_path, confinement):
    cfg = config("")
    cfg.argv = ["no-such-command-here"]
    info, _ = run(cfg, tmp_path, confinement)
    assert info.exit_code == 128
    assert info.start_error is not None and "executable file not found" in info.start_error


def test_sigterm_reaches_the_command_and_sigkill_ends_one_that_ignores_it(tmp_path, confinement):
    polite = start(
        config("""
        import signal, sys, time
        signal.signal(signal.SIGTERM, lambda *_: (print("terminating", flush=True),
                                                  sys.exit(0)))
        print("ready", flush=True)
        time.sleep(60)
    """),
        tmp_path,
        confinement,
    )
    stubborn = start(
        config("""
        import signal, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(60)
    """),
        tmp_path,
        confinement,
    )
    time.sleep(0.5)
    polite.signal(signal.SIGTERM)
    stubborn.signal(signal.SIGTERM)
    polite_info = polite.wait(10)
    assert polite_info is not None and polite_info.exit_code == 0
    assert stubborn.wait(1.0) is None  # SIGTERM ignored: still running
    stubborn.kill()
    stubborn_info = stubborn.wait(10)
    assert stubborn_info is not None and (stubborn_info.exit_code, stubborn_info.signal) == (
        137,
        signal.SIGKILL,
    )
    assert b"terminating" in polite.log_path.read_bytes()


def test_nothing_of_a_container_outlives_it(tmp_path, confinement):
    container = start(
        config("""
        import os, subprocess, sys
        # A daemonised grandchild that would outlive a careless runtime.
        subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                         start_new_session=True)
        print("started", flush=True)
    """),
        tmp_path,
        confinement,
    )
    assert container.cgroup is not None
    cgroup = container.cgroup
    info = container.wait(30)
    assert info is not None and info.exit_code == 0
    assert not cgroup.memory_dir.exists() and not cgroup.pids_dir.exists()


def test_unprivileged_fallback_says_so():
    fallback = Confinement(False, "runs as uid 1000, not root: rlimits only")
    assert "rlimits only" in fallback.describe()
    assert Confinement(True).describe().startswith("cgroup memory and pids limits")


def test_without_root_only_rlimits_confine_and_no_namespace_is_made(tmp_path):
    # Run as root here, but the way an unprivileged agent would: no cgroup, no namespaces.
    fallback = Confinement(False, "not root: rlimits only")
    cfg = config(
        """
        import os, resource
        print(resource.getrlimit(resource.RLIMIT_AS)[0], resource.getrlimit(
            resource.RLIMIT_NPROC)[0], os.getpid() != 1)
    """,
        memory_bytes=512 * 1024 * 1024,
        pids_max=4096,
    )
    container = RunningContainer(cfg, "unused", tmp_path / "fallback.log", fallback)
    container.start()
    info = container.wait(30)
    assert info is not None and info.exit_code == 0
    assert container.cgroup is None
    output = b"".join(line.content for line in parse_records(container.log_path.read_bytes()))
    assert output.decode() == f"{512 * 1024 * 1024} 4096 True\n"


def test_leftover_cgroups_of_dead_agents_are_removed(confinement):
    from devcluster.cgroups import LimitedCgroup
    from devcluster.node_agent import remove_leftover_cgroups

    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = LimitedCgroup.create(f"dcnode-{dead.pid}-abc-pod-main", 1 << 24, 8)
    mine = LimitedCgroup.create(f"dcnode-{os.getpid()}-abc-pod-main", 1 << 24, 8)
    try:
        assert remove_leftover_cgroups() >= 1
        assert not leftover.memory_dir.exists()
        assert mine.memory_dir.exists()  # a live agent's cgroups stay
    finally:
        mine.remove()
        leftover.remove()


def test_dev_shm_is_private_to_the_container(tmp_path, confinement):
    info, output = run(
        config("""
        import os
        open("/dev/shm/devcluster-test", "w").write("x")
        print(os.listdir("/dev/shm"))
    """),
        tmp_path,
        confinement,
    )
    assert info.exit_code == 0, output
    assert output == "['devcluster-test']\n"
    assert not Path("/dev/shm/devcluster-test").exists()


def test_cpu_limit_throttles_a_busy_loop(tmp_path, confinement):
    container = start(
        config(
            """
        import os, time
        start = time.monotonic()
        while time.monotonic() - start < 1.5:
            pass
        print(round(os.times().user + os.times().system, 2), flush=True)
    """,
            cpu_millis=100,
        ),
        tmp_path,
        confinement,
    )
    assert container.cpu_limit is not None, "the CPU quota could not be set"
    quota, period = container.cpu_limit.read_quota()
    assert (quota, period) == (10_000, 100_000)
    info = container.wait(30)
    assert info is not None and info.exit_code == 0
    used = float(b"".join(line.content for line in parse_records(container.log_path.read_bytes())))
    assert used < 0.5, f"a 100m container used {used} s of CPU in 1.5 s"
