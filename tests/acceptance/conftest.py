"""One whole stack per test session, reached as a person would: through a browser, the JSON API,
and real kubectl.

By default the stack is started here exactly as `make run` starts it: devcluster's API server
and node agent, deploy/base applied, the operator and gunicorn running under their own
service-account tokens. With ``CODERUN_E2E_URL`` and ``CODERUN_E2E_KUBECONFIG`` set (see
tests/support/e2e_target.py) the same tests run against that cluster, where deploy/overlays/kind
is applied, and the tests marked ``devcluster_only`` are deselected.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from coderun_operator.quantity import parse_quantity
from coderun_operator.settings import load_run_limits
from devstack.launcher import LocalStack, answers
from devstack.processes import free_port
from tests.support.e2e_target import (
    DEVCLUSTER_ONLY,
    KUBECONFIG_ENV,
    URL_ENV,
    ExternalTarget,
    external_target,
)
from tests.support.stack import PodWatch, kubernetes_client

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
KUBECTL = str(Path(sys.executable).parent / "kubectl")
TERMINAL = {"Succeeded", "Failed"}
RUNS_NAMESPACE = "coderun-runs"
SYSTEM_NAMESPACE = "coderun-system"
OPERATOR_USER = "system:serviceaccount:coderun-system:coderun-operator"
WEBUI_USER = "system:serviceaccount:coderun-system:coderun-webui"
# A short pending limit, and small CPU requests so that 100 concurrent runs fit. The kind
# overlay's ConfigMap sets the same values (and WEB_ENV's) for a cluster under test.
OPERATOR_ENV = {"CODERUN_DEFAULT_CPU": "50m", "CODERUN_PENDING_LIMIT_SECONDS": "10"}
# Room for 100 concurrent runs of the default 256Mi; the real limit is each pod's cgroup.
NODE_ARGS = ("--pods", "80", "--memory", "32Gi", "--cpu", "16")
WEB_ENV = {"CODERUN_RUNS_PER_MINUTE_PER_CLIENT": "100000"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Against a cluster, deselect the tests that need devcluster's internals, and say so."""
    target = external_target(os.environ)  # half of the pair set: a usage error, here
    if target is None:
        return
    dropped = [item for item in items if item.get_closest_marker(DEVCLUSTER_ONLY)]
    if not dropped:
        return
    items[:] = [item for item in items if not item.get_closest_marker(DEVCLUSTER_ONLY)]
    config.hook.pytest_deselected(items=dropped)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(
            f"{URL_ENV}/{KUBECONFIG_ENV} set, testing {target.url}: deselected "
            f"{len(dropped)} {DEVCLUSTER_ONLY} tests (they need devcluster's fault injection, "
            "node agent, audit log or the local operator process)."
        )


class FullStack:
    """The running stack and the ways a person or a script uses it.

    The same in both modes; `LocalFullStack` adds what only the local stack offers (faults,
    the audit log, the operator process), which tests marked devcluster_only use.
    """

    def __init__(self, url: str, kubeconfig: str, kubectl_home: Path, pod_watch: PodWatch):
        self.url = url.rstrip("/")
        self.kubeconfig = kubeconfig
        self.kubectl_home = kubectl_home
        self.pod_watch = pod_watch

    # What only devcluster offers: tests that use it are marked devcluster_only.

    def _devcluster_only(self, what: str) -> AssertionError:
        return AssertionError(
            f"{what} exists only on the local stack; mark the test {DEVCLUSTER_ONLY}"
        )

    def restart_operator(self) -> None:
        raise self._devcluster_only("restarting the operator process")

    def cluster_admin(self, method: str, path: str, body: Any = None) -> Any:
        raise self._devcluster_only("devcluster's admin endpoints")

    def audit(self) -> list[dict[str, Any]]:
        raise self._devcluster_only("devcluster's audit log")

    def operator_log(self) -> str:
        raise self._devcluster_only("the operator's log file")

    # Differs per mode.

    def service_incarnations(self) -> dict[str, Any]:
        """Who serves now (operator, web UI, ...): unchanged as long as nothing restarted."""
        raise NotImplementedError

    def operator_env(self) -> Mapping[str, str]:
        """The operator's settings (``CODERUN_*``) as it reads them."""
        raise NotImplementedError

    # The same everywhere.

    def wait_for_no_pod(self, name: str, timeout: float = 120) -> None:
        """Wait until the pod is gone (deleted after its verdict was stored)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.kubectl("get", "pod", name, "--ignore-not-found", "-o", "name").strip():
                return
            time.sleep(0.3)
        raise AssertionError(f"pod {name} is still there")

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """Real kubectl as the cluster admin, in the runs namespace, with its own HOME.

        A later ``-n`` in ``args`` picks another namespace. Returns stdout; with
        ``check=False`` stdout and stderr together.
        """
        self.kubectl_home.mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.kubectl_home),
            "KUBECONFIG": self.kubeconfig,
        }
        done = subprocess.run(
            [KUBECTL, "-n", RUNS_NAMESPACE, *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout if check else done.stdout + done.stderr

    def api(self, method: str, path: str, body: Any = None, headers: dict | None = None):
        """A JSON API call; returns (status, decoded body)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")

    def submit(self, code: str, **fields: Any) -> str:
        """Start a run through the JSON API; returns its name."""
        status, body = self.api("POST", "/api/runs", {"code": code, **fields})
        assert status == 201, body
        return body["name"]

    def result(self, name: str, timeout: float = 180) -> dict[str, Any]:
        """Wait (long-polling the API) until the run is terminal; returns the API's view."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status, body = self.api("GET", f"/api/runs/{name}?wait=20")
            assert status == 200, body
            if body["terminal"]:
                return body
        raise AssertionError(f"run {name} did not finish")

    def run(self, code: str, **fields: Any) -> dict[str, Any]:
        """Submit through the API and wait for the verdict; returns the status."""
        return self.result(self.submit(code, **fields))["status"]

    def coderun(self, name: str) -> dict[str, Any] | None:
        """The CodeRun object as the admin sees it (None once gone)."""
        out = self.kubectl("get", "coderun", name, "-o", "json", "--ignore-not-found")
        return json.loads(out) if out.strip() else None

    def wait_coderun_terminal(self, name: str, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = self.coderun(name)
            if run and (run.get("status") or {}).get("phase") in TERMINAL:
                return run
            time.sleep(0.3)
        raise AssertionError(f"run {name} did not finish")

    def run_pods(self) -> list[dict[str, Any]]:
        out = self.kubectl("get", "pods", "-l", "app.kubernetes.io/name=coderun-run", "-o", "json")
        return json.loads(out)["items"]

    def schedulable_nodes(self) -> list[dict[str, Any]]:
        """Nodes a run pod may be placed on now: not cordoned, no taint that repels it."""
        nodes = json.loads(self.kubectl("get", "nodes", "-o", "json"))["items"]
        return [
            node
            for node in nodes
            if not node["spec"].get("unschedulable")
            and not [
                taint
                for taint in node["spec"].get("taints") or []
                if taint.get("effect") in ("NoSchedule", "NoExecute")
            ]
        ]

    def run_slots(self) -> int:
        """How many runs of the default size the schedulable nodes have room for right now."""
        limits = load_run_limits(self.operator_env())
        cpu, memory = parse_quantity(limits.default_cpu), parse_quantity(limits.default_memory)
        pods = json.loads(self.kubectl("get", "pods", "--all-namespaces", "-o", "json"))["items"]
        slots = 0
        for node in self.schedulable_nodes():
            name, allocatable = node["metadata"]["name"], node["status"]["allocatable"]
            free = {
                key: parse_quantity(allocatable.get(key, "0")) for key in ("cpu", "memory", "pods")
            }
            for pod in pods:
                if pod["spec"].get("nodeName") != name or pod["status"].get("phase") in TERMINAL:
                    continue
                free["pods"] -= 1
                for container in pod["spec"]["containers"]:
                    requests = (container.get("resources") or {}).get("requests") or {}
                    for key in ("cpu", "memory"):
                        free[key] -= parse_quantity(requests.get(key, "0"))
            slots += max(0, int(min(free["cpu"] / cpu, free["memory"] / memory, free["pods"])))
        return slots


class LocalFullStack(FullStack):
    """The stack this session started: devcluster, the operator and the web UI as processes."""

    def __init__(self, local: LocalStack, pod_watch: PodWatch):
        super().__init__(
            local.url, str(local.kubeconfig), local.state_dir / "test-kubectl-home", pod_watch
        )
        self.local = local

    def restart_operator(self) -> None:
        """SIGKILL the operator's whole process group, as a crash would, and start it again."""
        process = self.local.children["operator"].process
        assert process is not None
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        self.local.start_operator()

    def cluster_admin(self, method: str, path: str, body: Any = None) -> Any:
        """A request to devcluster's own admin endpoints (faults), as the cluster admin."""
        config = yaml.safe_load(Path(self.kubeconfig).read_text())
        server = config["clusters"][0]["cluster"]
        ca = base64.b64decode(server["certificate-authority-data"]).decode()
        context = ssl.create_default_context(cadata=ca)
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(server["server"] + path, data=data, method=method)
        request.add_header("Authorization", f"Bearer {config['users'][0]['user']['token']}")
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, context=context, timeout=30) as response:
            return json.loads(response.read() or b"null")

    def audit(self) -> list[dict[str, Any]]:
        audit_log = self.local.log_dir / "audit.jsonl"
        return [json.loads(line) for line in audit_log.read_text().splitlines()]

    def operator_log(self) -> str:
        return (self.local.log_dir / "operator.log").read_text()

    def service_incarnations(self) -> dict[str, Any]:
        """The process id of every part of the stack that is alive."""
        return {
            name: child.process.pid
            for name, child in self.local.children.items()
            if child.process is not None and child.alive()
        }

    def operator_env(self) -> Mapping[str, str]:
        return {**os.environ, **self.local.operator_env}


class ExternalFullStack(FullStack):
    """A cluster where deploy/overlays/kind is applied, and its web UI at a URL."""

    def _system_json(self, *args: str) -> Any:
        return json.loads(self.kubectl("-n", SYSTEM_NAMESPACE, *args, "-o", "json"))

    def service_incarnations(self) -> dict[str, Any]:
        """(pod uid, restart count) of every container of coderun's own pods."""
        pods = self._system_json("get", "pods", "-l", "app.kubernetes.io/part-of=coderun")
        return {
            f"{pod['metadata']['name']}/{status['name']}": (
                pod["metadata"]["uid"],
                status.get("restartCount", 0),
            )
            for pod in pods["items"]
            for status in pod["status"].get("containerStatuses") or []
        }

    def operator_env(self) -> Mapping[str, str]:
        """The operator container's environment: its ConfigMaps, then its own values.

        Without the operator's Deployment (an operator running outside the cluster), the
        settings ConfigMap (``coderun-settings-<hash>``) is the best statement there is.
        """
        deployments = self._system_json("get", "deployments")
        found = [d for d in deployments["items"] if d["metadata"]["name"] == "coderun-operator"]
        if not found:
            maps = self._system_json("get", "configmaps")["items"]
            settings = [m for m in maps if m["metadata"]["name"].startswith("coderun-settings")]
            assert len(settings) == 1, "no operator Deployment and no one settings ConfigMap"
            return settings[0].get("data") or {}
        containers = found[0]["spec"]["template"]["spec"]["containers"]
        container = next(c for c in containers if c["name"] == "operator")
        env: dict[str, str] = {}
        for source in container.get("envFrom") or []:
            if "configMapRef" in source:
                data = self._system_json("get", "configmap", source["configMapRef"]["name"])
                prefix = source.get("prefix", "")
                env.update({prefix + k: v for k, v in (data.get("data") or {}).items()})
        env.update({e["name"]: e["value"] for e in container.get("env") or [] if "value" in e})
        return env


@pytest.fixture(scope="session")
def full_stack() -> Iterator[FullStack]:
    """The stack for the whole session: started here and stopped at the end (every process
    group), or the cluster named by CODERUN_E2E_URL and CODERUN_E2E_KUBECONFIG."""
    target = external_target(os.environ)
    if target is None:
        yield from _local_full_stack()
    else:
        yield from _external_full_stack(target)


def _local_full_stack() -> Iterator[FullStack]:
    state = Path(tempfile.mkdtemp(prefix="coderun-stack-"))
    local = LocalStack(
        state, free_port(), operator_env=OPERATOR_ENV, web_env=WEB_ENV, node_args=NODE_ARGS
    )
    watch = None
    try:
        local.start_all()
        watch = PodWatch(kubernetes_client(str(local.kubeconfig)), RUNS_NAMESPACE)
        watch.start()
        yield LocalFullStack(local, watch)
    finally:
        if watch is not None:
            watch.stop()
        local.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        logs = ARTIFACTS / "stack-logs"
        shutil.rmtree(logs, ignore_errors=True)
        shutil.copytree(local.log_dir, logs)


def _external_full_stack(target: ExternalTarget) -> Iterator[FullStack]:
    deadline = time.monotonic() + 60
    while not answers(target.url + "/readyz"):
        if time.monotonic() > deadline:
            pytest.fail(f"{URL_ENV}: the web UI at {target.url} did not answer /readyz in 60 s")
        time.sleep(1)
    home = Path(tempfile.mkdtemp(prefix="coderun-e2e-kubectl-"))
    watch = PodWatch(kubernetes_client(target.kubeconfig), RUNS_NAMESPACE)
    watch.start()
    try:
        yield ExternalFullStack(target.url, target.kubeconfig, home, watch)
    finally:
        watch.stop()
        shutil.rmtree(home, ignore_errors=True)
