"""Faults aimed at the operator's and the web UI's identities; after each, every run ends
with the right verdict, no pod is doubled or left behind, and the web UI still answers."""

from __future__ import annotations

import random
import time
import urllib.request

import pytest

from tests.acceptance.conftest import OPERATOR_USER, WEBUI_USER

pytestmark = pytest.mark.timeout(900)


def submit_retrying(full_stack, code: str, attempts: int = 30) -> str:
    """Submit as a patient client would: retry while the service says it is unavailable."""
    for _ in range(attempts):
        status, body = full_stack.api("POST", "/api/runs", {"code": code})
        if status == 201:
            return body["name"]
        assert status in (429, 503), body
        time.sleep(0.5)
    raise AssertionError("the web UI never accepted the run")


def result_retrying(full_stack, name: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status, body = full_stack.api("GET", f"/api/runs/{name}?wait=10")
        if status == 200 and body["terminal"]:
            return body["status"]
        assert status in (200, 429, 503), body
        time.sleep(0.2)
    raise AssertionError(f"run {name} did not finish")


def check_aftermath(full_stack, names: list[str], outputs: list[str]) -> None:
    for name, output in zip(names, outputs, strict=True):
        status = result_retrying(full_stack, name)
        assert (status["phase"], status["stdout"]) == ("Succeeded", output), status
        uid = full_stack.coderun(name)["metadata"]["uid"]
        assert len(full_stack.pod_watch.uids_for(uid)) == 1, f"{name} got more than one pod"
    deadline = time.monotonic() + 120
    while full_stack.run_pods() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert full_stack.run_pods() == [], "pods were left behind"
    with urllib.request.urlopen(full_stack.url + "/", timeout=30) as response:
        assert response.status == 200


@pytest.fixture
def faults(full_stack):
    yield lambda body: full_stack.cluster_admin("POST", "/devcluster/v1/faults", body)
    full_stack.cluster_admin("DELETE", "/devcluster/v1/faults")


# devcluster_only: the failures are injected through devcluster's faults endpoint.
@pytest.mark.devcluster_only
def test_one_request_in_ten_failing(full_stack, faults):
    users = [OPERATOR_USER, WEBUI_USER]
    faults(
        {
            "rules": [
                {"status": 500, "fraction": 0.04, "users": users},
                {"status": 429, "fraction": 0.03, "users": users, "retry_after": 1},
                {"status": 409, "fraction": 0.03, "users": users},
            ]
        }
    )
    names = [submit_retrying(full_stack, f"print('f{i}')") for i in range(20)]
    check_aftermath(full_stack, names, [f"f{i}\n" for i in range(20)])


# devcluster_only: devcluster's faults endpoint drops the watch streams.
@pytest.mark.devcluster_only
def test_watch_streams_dropped_again_and_again(full_stack, faults):
    names = []
    for i in range(12):
        names.append(submit_retrying(full_stack, f"import time\ntime.sleep(0.5)\nprint('w{i}')"))
        if i % 3 == 0:
            faults({"dropWatches": {"users": [OPERATOR_USER, WEBUI_USER]}})
    check_aftermath(full_stack, names, [f"w{i}\n" for i in range(12)])


# devcluster_only: SIGKILLs and restarts the local operator process.
@pytest.mark.devcluster_only
def test_operator_killed_at_seeded_points(full_stack):
    moments = random.Random(20261203)
    names = []
    for round_ in range(3):
        for i in range(4):
            names.append(submit_retrying(full_stack, f"print('k{round_}{i}')"))
        time.sleep(moments.uniform(0.0, 1.5))
        full_stack.restart_operator()
    outputs = [f"k{r}{i}\n" for r in range(3) for i in range(4)]
    check_aftermath(full_stack, names, outputs)


# devcluster_only: the eviction is a node-agent fault action of devcluster.
@pytest.mark.devcluster_only
def test_an_evicted_run_pod_is_reported_lost(full_stack):
    name = submit_retrying(full_stack, "import time\nprint('up', flush=True)\ntime.sleep(60)")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run = full_stack.coderun(name)
        if (run.get("status") or {}).get("phase") == "Running":
            break
        time.sleep(0.3)
    pod = run["status"]["podName"]
    full_stack.cluster_admin(
        "POST",
        "/devcluster/v1/faults/actions/node-agent",
        {"data": {"evict": f"coderun-runs/{pod}"}},
    )
    status = result_retrying(full_stack, name)
    assert (status["phase"], status["reason"]) == ("Failed", "Lost")
    assert "evict" in status["message"].lower()
    full_stack.wait_for_no_pod(pod)


# devcluster_only: pauses devcluster's node agent through its fault actions.
@pytest.mark.devcluster_only
def test_node_agent_paused_past_the_pending_limit(full_stack):
    action = "/devcluster/v1/faults/actions/node-agent"
    full_stack.cluster_admin("POST", action, {"data": {"paused": "true"}})
    try:
        name = submit_retrying(full_stack, "print('never placed')")
        status = result_retrying(full_stack, name, timeout=180)
        assert (status["phase"], status["reason"]) == ("Failed", "Unschedulable")
    finally:
        full_stack.cluster_admin("POST", action, {"data": {"paused": "false"}})
    full_stack.wait_for_no_pod(full_stack.coderun(name)["status"]["podName"])
    after = submit_retrying(full_stack, "print('placed again')")
    assert result_retrying(full_stack, after)["stdout"] == "placed again\n"
