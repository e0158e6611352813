"""The coderun stack as the end-to-end tests drive it: cluster, operator, kubectl, client.

By default the tests start their own devcluster (API server and node agent) and operator.
With ``CODERUN_TEST_KUBECONFIG`` set they use that cluster instead, where the operator is
expected to be deployed already (see deploy/overlays/kind).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import kubernetes

from coderun_operator.run_log import parse_run_log
from tests.support.processes import TestProcess

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")
RUNS_NAMESPACE = "coderun-runs"
TERMINAL = {"Succeeded", "Failed"}
WRITE_VERBS = {"create", "update", "patch", "delete", "deletecollection"}
OPERATOR_USER = "system:serviceaccount:coderun-system:coderun-operator"


def kubernetes_client(kubeconfig: str) -> kubernetes.client.ApiClient:
    """An official-client ApiClient for ``kubeconfig``."""
    return kubernetes.config.new_client_from_config(config_file=kubeconfig)


@dataclass
class Stack:
    """A cluster with the CodeRun CRD and a running operator."""

    workdir: Path
    kubeconfig: str
    operator: Any
    namespace: str = RUNS_NAMESPACE
    unplaceable_cpu: str = "32"
    pod_watch: Any = None
    audit_log: Path | None = None
    operator_metrics_url: str | None = None
    _api: kubernetes.client.ApiClient | None = field(default=None, repr=False)

    @property
    def api(self) -> kubernetes.client.ApiClient:
        if self._api is None:
            self._api = kubernetes_client(self.kubeconfig)
        return self._api

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.api)

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.api)

    def kubectl(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Real kubectl, with a HOME and cache of its own, in the runs namespace."""
        home = self.workdir / "kubectl-home"
        home.mkdir(exist_ok=True)
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "KUBECONFIG": self.kubeconfig}
        done = subprocess.run(
            [KUBECTL, "--cache-dir", str(home / "cache"), "-n", self.namespace, *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
        return done

    def create_run(self, code: str, name: str | None = None, **spec: Any) -> dict[str, Any]:
        """Create a CodeRun with the official client; returns it."""
        metadata = {"name": name} if name else {"generateName": "t-"}
        body = {"apiVersion": "coderun.dev/v1alpha1", "kind": "CodeRun", "metadata": metadata,
                "spec": {"code": code, **spec}}  # fmt: skip
        return self.custom.create_namespaced_custom_object(
            "coderun.dev", "v1alpha1", self.namespace, "coderuns", body
        )

    def get_run(self, name: str) -> dict[str, Any] | None:
        """The CodeRun, or None once it is gone."""
        try:
            return self.custom.get_namespaced_custom_object(
                "coderun.dev", "v1alpha1", self.namespace, "coderuns", name
            )
        except kubernetes.client.ApiException as error:
            if error.status == 404:
                return None
            raise

    def wait_for(self, check: Callable[[], Any], what: str, timeout: float = 120) -> Any:
        """Poll until ``check`` returns something truthy; generous, never a speed assertion."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            time.sleep(0.2)

    def wait_run(
        self, name: str, predicate: Callable[[dict], bool], timeout: float = 180
    ) -> dict[str, Any]:
        """Wait until the run satisfies ``predicate``; returns it."""
        found: dict[str, Any] = {}

        def check() -> bool:
            run = self.get_run(name)
            if run is not None and predicate(run):
                found["run"] = run
                return True
            return False

        self.wait_for(check, f"run {name[:40]} to reach the expected state", timeout)
        return found["run"]

    def wait_terminal(self, name: str, timeout: float = 180) -> dict[str, Any]:
        """Wait until the run has its final phase."""
        return self.wait_run(
            name, lambda run: (run.get("status") or {}).get("phase") in TERMINAL, timeout
        )

    def run_and_wait(self, code: str, name: str | None = None, **spec: Any) -> dict[str, Any]:
        """Create a run and wait for its verdict."""
        created = self.create_run(code, name, **spec)
        return self.wait_terminal(created["metadata"]["name"])

    def pods_of(self, run: dict[str, Any]) -> list[dict[str, Any]]:
        """The run's pods, found by the run-uid label."""
        pods = self.core.list_namespaced_pod(
            self.namespace, label_selector=f"coderun.dev/run-uid={run['metadata']['uid']}"
        )
        return [pod.to_dict() for pod in pods.items]

    def live_stdout(self, pod_name: str) -> str:
        """What a running snippet printed so far, from the runner's records in its pod log."""
        raw = self.core.read_namespaced_pod_log(
            pod_name, self.namespace, container="run", _preload_content=False
        ).data
        return parse_run_log(raw).stdout

    def pods_created_for(self, run: dict[str, Any]) -> int:
        """How many distinct pods ever existed for this run (seen by the session's pod watch)."""
        return len(self.pod_watch.uids_for(run["metadata"]["uid"]))

    def audit_mark(self) -> int:
        """A position in devcluster's audit log, to count what happens after it."""
        if self.audit_log is None:
            raise AssertionError("the audit log exists only on devcluster")
        return len(self.audit_log.read_text().splitlines())

    def writes_since(self, mark: int, user: str) -> list[tuple[str, str, str, int]]:
        """(verb, resource, subresource, code) of every write ``user`` made after ``mark``."""
        assert self.audit_log is not None
        writes = []
        for line in self.audit_log.read_text().splitlines()[mark:]:
            entry = json.loads(line)
            if entry["user"] == user and entry["verb"] in WRITE_VERBS:
                writes.append(
                    (entry["verb"], entry["resource"], entry["subresource"], entry["code"])
                )
        return writes


class PodWatch:
    """Records every pod uid seen in the runs namespace, by run uid, for the whole session."""

    def __init__(self, api: kubernetes.client.ApiClient, namespace: str) -> None:
        self._core = kubernetes.client.CoreV1Api(api)
        self._namespace = namespace
        self._seen: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pod-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def uids_for(self, run_uid: str) -> set[str]:
        with self._lock:
            return set(self._seen.get(run_uid, set()))

    def _record(self, pod: Any) -> None:
        labels = pod.metadata.labels or {}
        run_uid = labels.get("coderun.dev/run-uid")
        if run_uid:
            with self._lock:
                self._seen.setdefault(run_uid, set()).add(pod.metadata.uid)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                listed = self._core.list_namespaced_pod(self._namespace)
                for pod in listed.items:
                    self._record(pod)
                watch = kubernetes.watch.Watch()
                for event in watch.stream(
                    self._core.list_namespaced_pod,
                    self._namespace,
                    resource_version=listed.metadata.resource_version,
                    timeout_seconds=30,
                ):
                    self._record(event["object"])
                    if self._stop.is_set():
                        watch.stop()
            except Exception:  # the next loop lists again; nothing is missed that exists
                time.sleep(0.5)


def operator_process(workdir: Path, kubeconfig: str, env: dict[str, str]) -> TestProcess:
    """The real operator, started as `python -m coderun_operator`."""
    return TestProcess(
        "operator",
        [sys.executable, "-m", "coderun_operator"],
        workdir / "operator.log",
        env={"KUBECONFIG": kubeconfig, **env},
        cwd=ROOT,
    )


def start_devcluster(workdir: Path, with_nodes: bool = True) -> tuple[str, list[TestProcess]]:
    """A devcluster (API server, and a node agent with two nodes unless told otherwise) in
    ``workdir``; returns its admin kubeconfig and the processes, to stop in that order."""
    kubeconfig = workdir / "kubeconfig"
    ready = workdir / "devcluster.ready.json"
    server = TestProcess(
        "devcluster",
        [
            sys.executable,
            "-m",
            "devcluster",
            "--kubeconfig",
            str(kubeconfig),
            "--ready-file",
            str(ready),
            "--nodes",
            "0",
            "--namespace",
            "coderun-runs",
            "--audit-log",
            str(workdir / "audit.jsonl"),
        ],
        workdir / "devcluster.log",
        cwd=ROOT,
    )
    server.start()
    server.wait_until(ready.exists, 60, "starting")
    if not with_nodes:
        return str(kubeconfig), [server]
    agent = TestProcess(
        "node agent",
        [
            sys.executable,
            "-m",
            "devcluster.node_agent",
            "--kubeconfig",
            str(kubeconfig),
            "--nodes",
            "2",
            "--cpu",
            "4",
            "--memory",
            "8Gi",
            "--pods",
            "40",
        ],
        workdir / "node-agent.log",
        cwd=ROOT,
    )
    agent.start()
    agent.wait_until(lambda: '"event": "ready"' in agent.log_text(), 60, "registering nodes")
    return str(kubeconfig), [agent, server]
