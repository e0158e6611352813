"""One whole stack per test session, started exactly as `make run` starts it.

devcluster's API server and node agent, deploy/base applied, the operator and gunicorn
running under their own service-account tokens. Tests reach it as a person would: through a
browser, the JSON API, and real kubectl.
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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.launcher import LocalStack
from devstack.processes import free_port
from tests.support.stack import PodWatch, kubernetes_client

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts"
KUBECTL = str(Path(sys.executable).parent / "kubectl")
TERMINAL = {"Succeeded", "Failed"}
OPERATOR_USER = "system:serviceaccount:coderun-system:coderun-operator"
WEBUI_USER = "system:serviceaccount:coderun-system:coderun-webui"
# A short pending limit, and small CPU requests so that 100 concurrent runs fit.
OPERATOR_ENV = {"CODERUN_DEFAULT_CPU": "50m", "CODERUN_PENDING_LIMIT_SECONDS": "10"}
# Room for 100 concurrent runs of the default 256Mi; the real limit is each pod's cgroup.
NODE_ARGS = ("--pods", "80", "--memory", "32Gi", "--cpu", "16")
WEB_ENV = {"CODERUN_RUNS_PER_MINUTE_PER_CLIENT": "100000"}


@dataclass
class FullStack:
    """The running stack and the ways a person or a script uses it."""

    local: LocalStack
    pod_watch: PodWatch

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

    def wait_for_no_pod(self, name: str, timeout: float = 120) -> None:
        """Wait until the pod is gone (deleted after its verdict was stored)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.kubectl("get", "pod", name, "--ignore-not-found", "-o", "name").strip():
                return
            time.sleep(0.3)
        raise AssertionError(f"pod {name} is still there")

    @property
    def url(self) -> str:
        return self.local.url.rstrip("/")

    @property
    def kubeconfig(self) -> str:
        return str(self.local.kubeconfig)

    @property
    def audit_log(self) -> Path:
        return self.local.log_dir / "audit.jsonl"

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        """Real kubectl as the cluster admin, in the runs namespace, with its own HOME.

        Returns stdout; with ``check=False`` stdout and stderr together.
        """
        home = self.local.state_dir / "test-kubectl-home"
        home.mkdir(exist_ok=True)
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "KUBECONFIG": self.kubeconfig}
        done = subprocess.run(
            [KUBECTL, "-n", "coderun-runs", *args],
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

    def audit(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.audit_log.read_text().splitlines()]


@pytest.fixture(scope="session")
def full_stack() -> Iterator[FullStack]:
    """Start the stack once; stop it (every process group) at the end of the session."""
    state = Path(tempfile.mkdtemp(prefix="coderun-stack-"))
    local = LocalStack(
        state, free_port(), operator_env=OPERATOR_ENV, web_env=WEB_ENV, node_args=NODE_ARGS
    )
    watch = None
    try:
        local.start_all()
        watch = PodWatch(kubernetes_client(str(local.kubeconfig)), "coderun-runs")
        watch.start()
        yield FullStack(local, watch)
    finally:
        if watch is not None:
            watch.stop()
        local.stop()
        ARTIFACTS.mkdir(exist_ok=True)
        logs = ARTIFACTS / "stack-logs"
        shutil.rmtree(logs, ignore_errors=True)
        shutil.copytree(local.log_dir, logs)
