"""`make run`: bring up the local stack in order, print where to find it, stop it on Ctrl+C.

Order: devcluster's API server, its node agent (two nodes), the project's own manifests from
deploy/base, a token per service account, then the operator and the web UI (gunicorn) as
their own processes with their own identities. Each part runs in its own process group and
logs to a file under `.run/logs/`; Ctrl+C (or SIGTERM) stops every group. A lock file makes a
second `make run` say plainly that one is already running.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any

from coderun_operator.settings import SettingsError, load_web_settings
from devstack.cluster_setup import SetupError, apply_base, service_account_kubeconfig
from devstack.processes import (
    Child,
    StartError,
    free_port,
    group_alive,
    stop_group,
    wait_until,
)

ROOT = Path(__file__).resolve().parent.parent
STATE_DIR = ROOT / ".run"
LOCK_PATH = STATE_DIR / "stack.lock"
INFO_PATH = STATE_DIR / "stack.json"
KUBECONFIG_PATH = STATE_DIR / "kubeconfig"
LOG_DIR = STATE_DIR / "logs"
NODES = 2


class AlreadyRunningError(RuntimeError):
    """Another `make run` holds the lock."""


def _take_lock() -> Any:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    handle = LOCK_PATH.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise AlreadyRunningError(_running_description()) from None
    return handle


def _running_description() -> str:
    try:
        info = json.loads(INFO_PATH.read_text())
    except (OSError, ValueError):
        return "coderun is already starting or running in another terminal (make run)."
    if not info.get("url"):
        return f"coderun is already starting in another terminal (pid {info.get('pid')})."
    return (
        f"coderun is already running (pid {info.get('pid')}): {info.get('url')} "
        f"with kubeconfig {info.get('kubeconfig')}; stop it with Ctrl+C in its terminal."
    )


def answers(url: str) -> bool:
    """True when ``url`` answers 200 within two seconds."""
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


class LocalStack:
    """The processes of one stack, started in order and stopped in reverse.

    ``state_dir`` holds the kubeconfigs and logs; `make run` uses `.run/`, tests a temporary
    directory. ``operator_env`` and ``web_env`` add settings and ``node_args`` node-agent
    options (tests use them for limits and capacity).
    """

    def __init__(
        self,
        state_dir: Path,
        web_port: int,
        operator_env: dict[str, str] | None = None,
        web_env: dict[str, str] | None = None,
        node_args: tuple[str, ...] = (),
    ) -> None:
        self.state_dir = state_dir
        self.web_port = web_port
        self.operator_env = dict(operator_env or {})
        self.web_env = dict(web_env or {})
        self.node_args = node_args
        self.log_dir = state_dir / "logs"
        self.kubeconfig = state_dir / "kubeconfig"
        self.kubectl_home = state_dir / "kubectl-home"
        self.children: dict[str, Child] = {}
        self.url = f"http://127.0.0.1:{web_port}/"
        self.operator_health_url = ""
        self.operator_metrics_url = ""
        # Called after each part starts; `make run` records the process groups there.
        self.on_start: Any = None

    def _start(self, child: Child) -> Child:
        self.children[child.name] = child
        child.start()
        if self.on_start is not None:
            self.on_start(self)
        return child

    def process_groups(self) -> list[int]:
        """The process group of every part started so far."""
        return [c.process.pid for c in self.children.values() if c.process is not None]

    def start_all(self) -> None:
        """Bring up every part in order; raises StartError or SetupError with the reason."""
        self.start_api_server()
        self.start_node_agent()
        apply_base(self.kubeconfig, self.kubectl_home)
        for account in ("coderun-operator", "coderun-webui"):
            service_account_kubeconfig(
                self.kubeconfig,
                self.kubectl_home,
                account,
                self.state_dir / f"{account}.kubeconfig",
            )
        self.start_operator()
        self.start_web_ui()

    def start_api_server(self) -> dict[str, Any]:
        ready_file = self.state_dir / "devcluster.ready.json"
        ready_file.unlink(missing_ok=True)
        child = self._start(
            Child(
                "devcluster",
                [
                    sys.executable,
                    "-m",
                    "devcluster",
                    "--kubeconfig",
                    str(self.kubeconfig),
                    "--ready-file",
                    str(ready_file),
                    "--nodes",
                    "0",
                    "--namespace",
                    "coderun-runs",
                    "--audit-log",
                    str(self.log_dir / "audit.jsonl"),
                ],
                self.log_dir / "devcluster.log",
            )
        )
        wait_until(ready_file.exists, child, 60, "waiting for the API server")
        return json.loads(ready_file.read_text())

    def start_node_agent(self) -> None:
        child = self._start(
            Child(
                "node-agent",
                [
                    sys.executable,
                    "-m",
                    "devcluster.node_agent",
                    "--kubeconfig",
                    str(self.kubeconfig),
                    "--nodes",
                    str(NODES),
                    *self.node_args,
                ],
                self.log_dir / "node-agent.log",
            )
        )
        wait_until(
            lambda: '"event": "ready"' in child.log_tail(200), child, 60, "registering nodes"
        )

    def start_operator(self) -> None:
        """Start (or start again) the operator under its own service account."""
        health, metrics = free_port(), free_port()
        self.operator_health_url = f"http://127.0.0.1:{health}/healthz"
        self.operator_metrics_url = f"http://127.0.0.1:{metrics}/metrics"
        child = self._start(
            Child(
                "operator",
                [sys.executable, "-m", "coderun_operator"],
                self.log_dir / "operator.log",
                env={
                    **self.operator_env,
                    "KUBECONFIG": str(self.state_dir / "coderun-operator.kubeconfig"),
                    "CODERUN_OPERATOR_HEALTH_PORT": str(health),
                    "CODERUN_OPERATOR_METRICS_PORT": str(metrics),
                },
            )
        )
        url = self.operator_health_url
        wait_until(lambda: answers(url), child, 60, "waiting for its health endpoint")

    def start_web_ui(self) -> None:
        child = self._start(
            Child(
                "webui",
                [
                    sys.executable,
                    "-m",
                    "gunicorn",
                    "-c",
                    str(ROOT / "gunicorn.conf.py"),
                    # On a laptop the page is for this machine only; in a cluster the Service
                    # decides who reaches it.
                    "--bind",
                    f"127.0.0.1:{self.web_port}",
                    "webui:create_app()",
                ],
                self.log_dir / "webui.log",
                env={
                    **self.web_env,
                    "KUBECONFIG": str(self.state_dir / "coderun-webui.kubeconfig"),
                    "CODERUN_PORT": str(self.web_port),
                },
            )
        )
        wait_until(lambda: answers(self.url + "readyz"), child, 60, "waiting for /readyz")

    def watch(self, stop: threading.Event) -> str | None:
        """Block until asked to stop; returns the name of a part that died, if one did."""
        while not stop.wait(0.5):
            for child in self.children.values():
                if not child.alive():
                    return child.name
        return None

    def stop(self) -> None:
        """Stop every part, the last started first."""
        for child in reversed(list(self.children.values())):
            child.stop()


def _banner(url: str) -> str:
    kubectl = Path(sys.executable).parent / "kubectl"
    return (
        f"\ncoderun is running: open {url}\n"
        f"  kubeconfig: {KUBECONFIG_PATH}\n"
        f"  try:        {kubectl} --kubeconfig {KUBECONFIG_PATH} -n coderun-runs get coderuns\n"
        f"  logs:       {LOG_DIR}/ (devcluster, node-agent, operator, webui, audit.jsonl)\n"
        "Runs live in memory: they are gone once the stack stops. "
        "Press Ctrl+C to stop everything.\n"
    )


def _clean_up_after_a_killed_launcher() -> None:
    """Stop process groups that a `make run` killed with SIGKILL left behind."""
    try:
        info = json.loads(INFO_PATH.read_text())
    except (OSError, ValueError):
        return
    left = [pgid for pgid in info.get("processGroups", []) if group_alive(pgid)]
    if left:
        print(f"Stopping {len(left)} processes left by an earlier make run ...", flush=True)
        for pgid in left:
            stop_group(pgid)
    INFO_PATH.unlink(missing_ok=True)


def _record(stack: LocalStack, url: str | None = None) -> None:
    INFO_PATH.write_text(
        json.dumps(
            {
                "pid": os.getpid(),
                "url": url,
                "kubeconfig": str(KUBECONFIG_PATH),
                "processGroups": stack.process_groups(),
            }
        )
    )


def _port_is_free(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def main() -> int:
    """Entry point of `make run`; returns the exit code."""
    try:
        web_port = load_web_settings(os.environ).port
    except SettingsError as error:
        print(f"make run: {error}", file=sys.stderr)
        return 2
    try:
        lock = _take_lock()
    except AlreadyRunningError as error:
        print(error, file=sys.stderr)
        return 1
    _clean_up_after_a_killed_launcher()
    if not _port_is_free(web_port):
        print(
            f"make run: port {web_port} is in use by another program; pick another one with "
            f"CODERUN_PORT, e.g. CODERUN_PORT=8081 make run.",
            file=sys.stderr,
        )
        lock.close()
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    stack = LocalStack(STATE_DIR, web_port)
    stack.on_start = _record
    try:
        print(
            "Starting devcluster (API server, two nodes), applying deploy/base, then the "
            "operator and the web UI ...",
            flush=True,
        )
        stack.start_all()
        _record(stack, stack.url)
        print(_banner(stack.url), flush=True)
        died = stack.watch(stop)
        if died:
            print(f"{died} stopped unexpectedly; see {LOG_DIR}/", file=sys.stderr)
            return 1
        return 0
    except (StartError, SetupError) as error:
        if stop.is_set():
            print("Interrupted while starting.", file=sys.stderr)
            return 130
        print(f"make run: {error}", file=sys.stderr)
        return 1
    finally:
        print("Stopping ...", flush=True)
        stack.stop()
        INFO_PATH.unlink(missing_ok=True)
        lock.close()
        print("Stopped.", flush=True)
