"""The node agent against a real devcluster API server, driven with real kubectl.

The API server runs as `python -m devcluster --nodes 0` (this module's own, so no other test's
pods land on these nodes); the agent runs in this process with three nodes.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from devcluster.kube_client import ApiError, KubeClient
from devcluster.node_agent import (
    NodeAgent,
    NodeAgentSettings,
    remove_leftover_cgroups,
    remove_leftover_state,
)
from devstack.processes import stop_process_group

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")
RUN_USER = 65532


class Cluster:
    """The API server, the agent and helpers to act on them."""

    def __init__(self, workdir: Path, kubeconfig: str, agent: NodeAgent) -> None:
        self.workdir = workdir
        self.kubeconfig = kubeconfig
        self.agent = agent
        self.client = KubeClient(kubeconfig)

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self.workdir),
            "KUBECONFIG": self.kubeconfig,
        }
        done = subprocess.run(
            [KUBECTL, *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )
        if check and done.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)}: {done.stdout}{done.stderr}")
        return done

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", stdin=yaml.safe_dump(manifest))

    def pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self.client.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
        except ApiError as error:
            if error.code == 404:
                return None
            raise

    def wait_pod(
        self,
        namespace: str,
        name: str,
        predicate: Callable[[dict[str, Any] | None], bool],
        timeout: float = 90,
    ) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        pod = None
        while time.monotonic() < deadline:
            pod = self.pod(namespace, name)
            if predicate(pod):
                return pod
            time.sleep(0.1)
        pytest.fail(
            f"pod {namespace}/{name} did not get there in {timeout} s; last seen:\n"
            f"{json.dumps(pod, indent=1)[:3000]}"
        )


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    workdir = Path(tempfile.mkdtemp(prefix="node-agent-e2e-"))
    workdir.chmod(0o711)  # pod users must reach the interpreter links below it
    kubeconfig = workdir / "kubeconfig"
    ready = workdir / "ready.json"
    with open(workdir / "server.log", "wb") as server_log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devcluster",
                "--nodes",
                "0",
                "--kubeconfig",
                str(kubeconfig),
                "--ready-file",
                str(ready),
            ],
            cwd=ROOT,
            stdout=server_log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    "the devcluster API server did not start:\n"
                    + (workdir / "server.log").read_text()
                )
            time.sleep(0.05)
        agent = NodeAgent(
            str(kubeconfig),
            NodeAgentSettings(nodes=3, image_pull_backoff=1.0, state_root=workdir / "state"),
        )
        agent.start()
        try:
            yield Cluster(workdir, str(kubeconfig), agent)
        finally:
            agent.stop()
    finally:
        stop_process_group(server)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    cluster.kubectl("create", "namespace", name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def run_pod(
    name: str,
    code: str,
    *,
    node: str | None = None,
    memory: str = "64Mi",
    user: int | None = RUN_USER,
    **spec: Any,
) -> dict[str, Any]:
    security = {"runAsNonRoot": True}
    if user is not None:
        security.update(runAsUser=user, runAsGroup=user)
    manifest: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 2,
            "securityContext": security,
            "containers": [
                {
                    "name": "main",
                    "image": "python:3.12-slim",
                    "command": ["python", "-c", code],
                    "resources": {
                        "requests": {"cpu": "100m", "memory": memory},
                        "limits": {"cpu": "100m", "memory": memory},
                    },
                }
            ],
            **spec,
        },
    }
    if node is not None:
        manifest["spec"]["nodeName"] = node
    return manifest


def phase_is(*phases: str) -> Callable[[dict[str, Any] | None], bool]:
    return lambda pod: pod is not None and (pod.get("status") or {}).get("phase") in phases


def container_state(pod: dict[str, Any]) -> dict[str, Any]:
    return pod["status"]["containerStatuses"][0]["state"]


def test_nodes_are_registered_ready_with_a_lease_and_log_endpoint(cluster):
    nodes = cluster.client.get("/api/v1/nodes")["items"]
    names = sorted(n["metadata"]["name"] for n in nodes)
    assert names == ["node-1", "node-2", "node-3"]
    node = next(n for n in nodes if n["metadata"]["name"] == "node-1")
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "node-1"
    assert node["metadata"]["labels"]["kubernetes.io/os"] == "linux"
    assert node["status"]["allocatable"]["pods"] == "16"
    assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == cluster.agent.port
    ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    lease = cluster.client.get(
        "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/node-1"
    )
    assert lease["spec"]["holderIdentity"] == "node-1"


def test_scheduled_pod_runs_as_its_user_succeeds_and_kubectl_logs_shows_output(cluster, namespace):
    cluster.apply(
        run_pod("forty-two", "import os; print(42); print(os.getuid())")
        | {"metadata": {"name": "forty-two", "namespace": namespace}}
    )
    pod = cluster.wait_pod(namespace, "forty-two", phase_is("Succeeded", "Failed"))
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    assert pod["spec"]["nodeName"] in ("node-1", "node-2", "node-3")
    terminated = container_state(pod)["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    logs = cluster.kubectl("logs", "-n", namespace, "forty-two").stdout
    assert logs == f"42\n{RUN_USER}\n"


def test_unplaceable_pod_stays_pending_with_the_schedulers_reason(cluster, namespace):
    manifest = run_pod("too-big", "print(1)", memory="100Gi")
    manifest["metadata"]["namespace"] = namespace
    cluster.apply(manifest)

    def unschedulable(pod):
        conditions = (pod or {}).get("status", {}).get("conditions") or []
        return any(
            c["type"] == "PodScheduled" and c.get("reason") == "Unschedulable" for c in conditions
        )

    pod = cluster.wait_pod(namespace, "too-big", unschedulable)
    condition = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert condition["status"] == "False"
    assert condition["message"] == "0/3 nodes are available: 3 Insufficient memory."
    assert pod["status"]["phase"] == "Pending" and not pod["spec"].get("nodeName")


def test_run_as_non_root_without_a_user_fails_like_a_kubelet(cluster, namespace):
    manifest = run_pod("rootish", "print(1)", node="node-2", user=None)
    manifest["metadata"]["namespace"] = namespace
    cluster.apply(manifest)

    def refused(pod):
        waiting = (
            container_state(pod)
            if pod and (pod.get("status") or {}).get("containerStatuses")
            else {}
        ).get("waiting") or {}
        return waiting.get("reason") == "CreateContainerConfigError"

    pod = cluster.wait_pod(namespace, "rootish", refused)
    uid = pod["metadata"]["uid"]
    assert container_state(pod)["waiting"]["message"] == (
        f'container has runAsNonRoot and image will run as root (pod: "rootish_{namespace}'
        f'({uid})", container: main)'
    )
    assert pod["status"]["phase"] == "Pending"


def test_memory_limit_is_enforced_by_the_kernel(cluster, namespace):
    manifest = run_pod(
        "hog", "x = []\nwhile True: x.append(bytearray(8 << 20))", node="node-1", memory="48Mi"
    )
    manifest["metadata"]["namespace"] = namespace
    cluster.apply(manifest)
    pod = cluster.wait_pod(namespace, "hog", phase_is("Succeeded", "Failed"))
    terminated = container_state(pod)["terminated"]
    assert (pod["status"]["phase"], terminated["reason"], terminated["exitCode"]) == (
        "Failed",
        "OOMKilled",
        137,
    )


def test_active_deadline_kills_and_fails_the_pod(cluster, namespace):
    manifest = run_pod(
        "slow", "import time; time.sleep(60)", node="node-3", activeDeadlineSeconds=1
    )
    manifest["metadata"]["namespace"] = namespace
    cluster.apply(manifest)
    pod = cluster.wait_pod(namespace, "slow", phase_is("Failed"), timeout=60)
    assert pod["status"]["reason"] == "DeadlineExceeded"
    assert (
        pod["status"]["message"] == "Pod was active on the node longer than the specified deadline"
    )
    assert "terminated" in container_state(pod)


def test_deletion_sends_sigterm_then_sigkill_and_the_node_confirms_it(cluster, namespace):
    marker = f"marker-{uuid.uuid4().hex[:8]}"
    stubborn = run_pod(
        "stubborn",
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"print('ready', flush=True)\ntime.sleep(120)  # {marker}",
        node="node-1",
    )
    stubborn["metadata"]["namespace"] = namespace
    polite = run_pod(
        "polite",
        "import signal, sys, time\n"
        "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        "time.sleep(120)",
        node="node-2",
        terminationGracePeriodSeconds=30,
    )
    polite["metadata"]["namespace"] = namespace
    cluster.apply(stubborn)
    cluster.apply(polite)
    for name in ("stubborn", "polite"):
        cluster.wait_pod(namespace, name, phase_is("Running"))
    time.sleep(0.3)  # let the handlers get installed
    started = time.monotonic()
    cluster.kubectl("delete", "pod", "-n", namespace, "polite", "--wait=true")
    assert time.monotonic() - started < 20  # SIGTERM honoured: well before its 30 s grace
    started = time.monotonic()
    cluster.kubectl("delete", "pod", "-n", namespace, "stubborn", "--grace-period=2", "--wait=true")
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < 25, elapsed  # SIGTERM ignored: killed after the grace period
    assert cluster.pod(namespace, "stubborn") is None
    assert _processes_with(marker) == []


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def test_unknown_image_is_err_image_pull_then_back_off(cluster, namespace):
    manifest = run_pod("no-image", "print(1)", node="node-3")
    manifest["metadata"]["namespace"] = namespace
    manifest["spec"]["containers"][0]["image"] = "registry.invalid/nothing:1"
    cluster.apply(manifest)
    reasons = set()

    def backing_off(pod):
        if pod and (pod.get("status") or {}).get("containerStatuses"):
            reasons.add((container_state(pod).get("waiting") or {}).get("reason"))
        return "ImagePullBackOff" in reasons

    pod = cluster.wait_pod(namespace, "no-image", backing_off)
    assert "ErrImagePull" in reasons
    assert pod["status"]["phase"] == "Pending"


def test_network_policy_denying_egress_leaves_only_loopback(cluster, namespace):
    cluster.apply(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "deny-all", "namespace": namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        }
    )
    manifest = run_pod(
        "offline",
        "import socket\nprint(sorted(n for _, n in socket.if_nameindex()))",
        node="node-2",
    )
    manifest["metadata"]["namespace"] = namespace
    cluster.apply(manifest)
    cluster.wait_pod(namespace, "offline", phase_is("Succeeded"))
    assert cluster.kubectl("logs", "-n", namespace, "offline").stdout == "['lo']\n"


def test_eviction_fault_fails_the_pod_as_evicted(cluster, namespace):
    manifest = run_pod("victim", "import time; time.sleep(120)", node="node-1")
    manifest["metadata"]["namespace"] = namespace
    cluster.apply(manifest)
    cluster.wait_pod(namespace, "victim", phase_is("Running"))
    assert cluster.agent.evict(namespace, "victim")
    pod = cluster.wait_pod(namespace, "victim", phase_is("Failed"))
    assert pod["status"]["reason"] == "Evicted"
    assert pod["status"]["message"].startswith("The node was low on resource: memory.")


def test_paused_agent_reports_nothing_until_resumed(cluster, namespace):
    cluster.agent.pause()
    try:
        manifest = run_pod("waits", "print('late')", node="node-3")
        manifest["metadata"]["namespace"] = namespace
        cluster.apply(manifest)
        time.sleep(1.5)
        assert (cluster.pod(namespace, "waits").get("status") or {}).get("phase") in (
            None,
            "Pending",
        )
    finally:
        cluster.agent.resume()
    cluster.wait_pod(namespace, "waits", phase_is("Succeeded"))


def test_cordoned_nodes_take_no_new_pods(cluster, namespace):
    for node in ("node-1", "node-2", "node-3"):
        cluster.kubectl("cordon", node)
    try:
        manifest = run_pod("homeless", "print(1)")
        manifest["metadata"]["namespace"] = namespace
        cluster.apply(manifest)

        def unschedulable(pod):
            return any(
                c.get("reason") == "Unschedulable"
                for c in ((pod or {}).get("status") or {}).get("conditions") or []
            )

        pod = cluster.wait_pod(namespace, "homeless", unschedulable)
        assert (
            pod["status"]["conditions"][0]["message"]
            == "0/3 nodes are available: 3 node(s) were unschedulable."
        )
    finally:
        for node in ("node-1", "node-2", "node-3"):
            cluster.kubectl("uncordon", node)


def test_faults_through_the_api_servers_node_agent_configmap(cluster, namespace):
    manifest = run_pod("target", "import time; time.sleep(120)", node="node-2")
    manifest["metadata"]["namespace"] = namespace
    cluster.apply(manifest)
    cluster.wait_pod(namespace, "target", phase_is("Running"))

    def fault(data):
        cluster.client.create("/devcluster/v1/faults/actions/node-agent", {"data": data})

    try:
        fault({"paused": "true"})
        deadline = time.monotonic() + 30
        while not cluster.agent.paused.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cluster.agent.paused.is_set()
        fault({"paused": "false", "evict": f"{namespace}/target"})
        pod = cluster.wait_pod(namespace, "target", phase_is("Failed"))
        assert pod["status"]["reason"] == "Evicted"
        assert not cluster.agent.paused.is_set()
    finally:
        fault({})


def test_in_process_log_seam_serves_and_follows_logs(cluster, namespace):
    manifest = run_pod(
        "talker",
        "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.3)",
        node="node-1",
    )
    manifest["metadata"]["namespace"] = namespace
    cluster.apply(manifest)
    cluster.wait_pod(namespace, "talker", phase_is("Running", "Succeeded"))
    stream = cluster.agent.pod_log(namespace, "talker", "main", {"follow": "true"})

    async def collect(chunks):
        async def read_all():
            return b"".join([chunk async for chunk in chunks])

        # Cancelling closes the stream, which stops the reading thread: no hang on failure.
        return await asyncio.wait_for(read_all(), 90)

    followed = stream if isinstance(stream, bytes) else asyncio.run(collect(stream))
    assert followed == b"0\n1\n2\n"
    cluster.wait_pod(namespace, "talker", phase_is("Succeeded"))
    assert cluster.agent.pod_log(namespace, "talker", "main", {"tailLines": "1"}) == b"2\n"
    assert cluster.kubectl("logs", "-n", namespace, "talker", "--limit-bytes=3").stdout == "0\n1"
    assert cluster.agent.pod_log(namespace, "nobody", "main", {}) is None
    assert cluster.agent.owns_graceful_deletion()


def test_the_operators_run_pod_runs_its_snippet_confined(cluster, namespace):
    from coderun_operator.run_log import parse_run_log
    from coderun_operator.run_pod import build_run_pod
    from coderun_operator.run_spec import resolve_run_spec
    from coderun_operator.settings import load_operator_settings

    settings = load_operator_settings({})
    code = (
        "import os, socket\n"
        "print(os.getuid(), sorted(n for _, n in socket.if_nameindex()))\n"
        "try:\n    open('/etc/x', 'w')\nexcept OSError as e:\n    print('ro', e.errno)\n"
        "open('/tmp/scratch', 'w').write('ok')\nprint(open('/tmp/scratch').read())\n"
    )
    run = {
        "apiVersion": "coderun.dev/v1alpha1",
        "kind": "CodeRun",
        "metadata": {"name": "hello", "namespace": namespace, "uid": "run-uid-1"},
        "spec": {"code": code},
    }
    plan = resolve_run_spec(run["spec"], settings.limits)
    manifest = build_run_pod(run, plan, settings)
    del manifest["metadata"]["ownerReferences"]  # no CodeRun object exists in this test
    cluster.apply(
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": {"name": "runs-offline", "namespace": namespace},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        }
    )
    cluster.apply(manifest)
    name = manifest["metadata"]["name"]
    pod = cluster.wait_pod(namespace, name, phase_is("Succeeded", "Failed"), timeout=60)
    logs = cluster.kubectl("logs", "-n", namespace, name).stdout
    assert pod["status"]["phase"] == "Succeeded", (json.dumps(container_state(pod)), logs)
    parsed = parse_run_log(logs.encode())
    assert parsed.result is not None and parsed.result.exit_code == 0, parsed
    assert parsed.stdout == f"{RUN_USER} ['lo']\nro 30\nok\n"


def _processes_with(marker: str) -> list[str]:
    return [p.name for p in Path("/proc").iterdir() if p.name.isdigit() and marker in _cmdline(p)]


def _start_separate_agent(cluster: Cluster, log_path: Path) -> subprocess.Popen[bytes]:
    with open(log_path, "ab") as log:
        agent = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devcluster.node_agent",
                "--kubeconfig",
                cluster.kubeconfig,
                "--nodes",
                "1",
                "--name-prefix",
                "separate-",
                "--no-scheduler",
                "--state-root",
                str(cluster.workdir / "separate-state"),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + 30
    while log_path.read_bytes().count(b'"event": "ready"') < 1 + log_path.read_bytes().count(
        b"==== restarted"
    ):
        assert agent.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    return agent


def _kill(agent: subprocess.Popen[bytes]) -> None:
    if agent.poll() is None:
        os.killpg(agent.pid, signal.SIGKILL)
        agent.wait(10)


def test_containers_die_with_a_sigkilled_agent_and_its_successor_reports_them_lost(
    cluster, namespace
):
    log_path = cluster.workdir / "separate-agent.log"
    log_path.write_bytes(b"")
    agent = _start_separate_agent(cluster, log_path)
    try:
        marker = f"marker-{uuid.uuid4().hex[:8]}"
        manifest = run_pod("orphan", f"import time; time.sleep(300)  # {marker}", node="separate-1")
        manifest["metadata"]["namespace"] = namespace
        cluster.apply(manifest)
        cluster.wait_pod(namespace, "orphan", phase_is("Running"))
        assert _processes_with(marker)
        _kill(agent)
        deadline = time.monotonic() + 30
        while _processes_with(marker) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _processes_with(marker) == [], "a container outlived its node agent"
        # What the dead agent left on disk and in the cgroup tree goes with the next start.
        assert remove_leftover_cgroups() >= 1
        assert remove_leftover_state(cluster.workdir / "separate-state") == 1
        assert list((cluster.workdir / "separate-state" / "agents").iterdir()) == []
        # A new agent for the node finds the pod it cannot have: Failed, container lost.
        with open(log_path, "ab") as log:
            log.write(b"\n==== restarted\n")
        agent = _start_separate_agent(cluster, log_path)
        pod = cluster.wait_pod(namespace, "orphan", phase_is("Failed"))
        terminated = container_state(pod)["terminated"]
        assert (terminated["reason"], terminated["exitCode"]) == ("ContainerStatusUnknown", 137)
        cluster.kubectl("delete", "pod", "-n", namespace, "orphan", "--wait=true")
    finally:
        _kill(agent)
        cluster.client.delete("/api/v1/nodes/separate-1")


def test_init_containers_run_first_and_share_empty_dirs(cluster, namespace):
    manifest = run_pod("with-init", "print(open('/mnt/greeting').read())", node="node-2")
    manifest["metadata"]["namespace"] = namespace
    spec = manifest["spec"]
    spec["volumes"] = [{"name": "work", "emptyDir": {}}]
    spec["containers"][0]["volumeMounts"] = [{"name": "work", "mountPath": "/mnt"}]
    spec["initContainers"] = [
        {
            "name": "prepare",
            "image": "python:3.12-slim",
            "command": ["python", "-c", "open('/mnt/greeting', 'w').write('prepared')"],
            "volumeMounts": [{"name": "work", "mountPath": "/mnt"}],
        }
    ]
    Path("/mnt").is_dir() or pytest.fail(
        "the e2e tests mount an emptyDir at /mnt, which must exist on this machine"
    )
    cluster.apply(manifest)
    pod = cluster.wait_pod(namespace, "with-init", phase_is("Succeeded", "Failed"))
    assert pod["status"]["phase"] == "Succeeded", pod["status"]
    init = pod["status"]["initContainerStatuses"][0]["state"]["terminated"]
    assert (init["exitCode"], init["reason"]) == (0, "Completed")
    assert cluster.kubectl("logs", "-n", namespace, "with-init").stdout == "prepared\n"


def test_a_failing_init_container_fails_the_pod(cluster, namespace):
    manifest = run_pod("bad-init", "print('never')", node="node-3")
    manifest["metadata"]["namespace"] = namespace
    manifest["spec"]["initContainers"] = [
        {
            "name": "check",
            "image": "python:3.12-slim",
            "command": ["python", "-c", "raise SystemExit(3)"],
        }
    ]
    cluster.apply(manifest)
    pod = cluster.wait_pod(namespace, "bad-init", phase_is("Failed"))
    assert pod["status"]["initContainerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert "waiting" in container_state(pod)
    initialized = next(c for c in pod["status"]["conditions"] if c["type"] == "Initialized")
    assert (initialized["status"], initialized["reason"]) == ("False", "ContainersNotInitialized")


def test_a_pod_that_never_started_is_let_go_when_deleted(cluster, namespace):
    manifest = run_pod("stuck", "print(1)", node="node-1", terminationGracePeriodSeconds=30)
    manifest["metadata"]["namespace"] = namespace
    manifest["spec"]["containers"][0]["image"] = "registry.invalid/nothing:2"
    cluster.apply(manifest)
    cluster.wait_pod(
        namespace,
        "stuck",
        lambda pod: bool(pod and (pod.get("status") or {}).get("containerStatuses")),
    )
    started = time.monotonic()
    cluster.kubectl("delete", "pod", "-n", namespace, "stuck", "--wait=true")
    assert time.monotonic() - started < 20  # not the 30 s grace period: nothing to stop


def test_scheduler_and_kubelet_record_events_for_kubectl_describe(cluster, namespace):
    manifest = run_pod("described", "print('hi')")
    manifest["metadata"]["namespace"] = namespace
    cluster.apply(manifest)
    cluster.wait_pod(namespace, "described", phase_is("Succeeded"))
    deadline = time.monotonic() + 30
    reasons: list[str] = []
    while time.monotonic() < deadline:
        events = cluster.client.get(f"/api/v1/namespaces/{namespace}/events")["items"]
        reasons = [
            e["reason"]
            for e in sorted(events, key=lambda e: e["metadata"]["name"])
            if e["involvedObject"]["name"] == "described"
        ]
        if {"Scheduled", "Pulled", "Created", "Started"} <= set(reasons):
            break
        time.sleep(0.1)
    assert {"Scheduled", "Pulled", "Created", "Started"} <= set(reasons), reasons
    described = cluster.kubectl("describe", "pod", "-n", namespace, "described").stdout
    assert "Successfully assigned" in described and "Started container main" in described
