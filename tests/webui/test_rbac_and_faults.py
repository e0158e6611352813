"""The web UI under its own least-privilege identity, and when the API server misbehaves.

The identity gets exactly the Role the deployment grants (deploy/base/rbac-webui.yaml), bound
in the test's runs namespace: a full run's life must see no 403 and use every rule it holds.
"""

import copy
import time
import uuid
from pathlib import Path

import kubernetes
import pytest
import yaml
from webui_support import make_settings

from webui import create_app

ROOT = Path(__file__).resolve().parents[2]
RBAC = ROOT / "deploy" / "base" / "rbac-webui.yaml"


def _deployed_role() -> dict:
    documents = [doc for doc in yaml.safe_load_all(RBAC.read_text()) if doc]
    (role,) = [doc for doc in documents if doc["kind"] == "Role"]
    return role


@pytest.fixture
def webui_identity(cluster, runs_namespace):
    """(user name, kubeconfig) of a user holding the web UI's Role in ``runs_namespace``."""
    user = f"webui-{uuid.uuid4().hex[:8]}"
    role = copy.deepcopy(_deployed_role())
    role["metadata"] = {"name": "coderun-webui", "namespace": runs_namespace}
    rbac = kubernetes.client.RbacAuthorizationV1Api(cluster.api_client())
    rbac.create_namespaced_role(runs_namespace, role)
    rbac.create_namespaced_role_binding(
        runs_namespace,
        {
            "metadata": {"name": "coderun-webui"},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "Role",
                "name": "coderun-webui",
            },
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )
    return user, cluster.user_kubeconfig(user, runs_namespace)


@pytest.fixture
def identity_app(webui_identity, runs_namespace):
    _, kubeconfig = webui_identity
    app = create_app(
        {"KUBECONFIG": kubeconfig, "CODERUN_SETTINGS": make_settings(runs_namespace=runs_namespace)}
    )
    yield app
    app.extensions["coderun"].watch.stop()


@pytest.fixture
def faults(cluster):
    yield cluster
    cluster.admin("DELETE", "/devcluster/v1/faults")


def test_a_full_run_needs_no_more_than_the_deployed_role(
    cluster, webui_identity, identity_app, operator
):
    user, _ = webui_identity
    client = identity_app.test_client()
    assert client.get("/readyz").status_code == 200
    created = client.post("/api/runs", json={"code": "import time; time.sleep(9)"})
    assert created.status_code == 201
    name = created.get_json()["name"]
    operator.later(0.5, lambda: operator.set_status(name, phase="Running"))
    assert client.get(f"/api/runs/{name}?wait=2").status_code == 200  # starts the shared watch
    assert client.post(f"/api/runs/{name}/cancel").status_code == 202
    operator.set_status(name, phase="Failed", reason="Cancelled")
    assert client.get(f"/runs/{name}").status_code == 200

    # A watch is audited when it ends: end it, then wait for its entry.
    identity_app.extensions["coderun"].watch.stop()
    granted = {verb for rule in _deployed_role()["rules"] for verb in rule["verbs"]}
    deadline = time.monotonic() + 10
    while True:
        entries = cluster.audit(user)
        verbs = {entry["verb"] for entry in entries if entry.get("resource") == "coderuns"}
        if verbs >= granted or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert [entry for entry in entries if entry["code"] == 403] == []
    assert verbs == granted  # every verb the Role grants is used, and no other
    used_rules = {
        entry["authorization"].get("ruleIndex")
        for entry in entries
        if entry.get("allowed") and entry.get("resource") == "coderuns"
    }
    assert used_rules == set(range(len(_deployed_role()["rules"])))


def test_without_the_role_the_page_keeps_the_code_and_says_why(cluster, runs_namespace):
    kubeconfig = cluster.user_kubeconfig(f"nobody-{uuid.uuid4().hex[:8]}", runs_namespace)
    app = create_app(
        {"KUBECONFIG": kubeconfig, "CODERUN_SETTINGS": make_settings(runs_namespace=runs_namespace)}
    )
    response = app.test_client().post("/runs", data={"code": "print('kept')"})
    assert response.status_code == 503
    html = response.get_data(as_text=True)
    assert "The cluster refused the run:" in html and "forbidden" in html.lower()
    assert "print(&#39;kept&#39;)</textarea>" in html


def test_api_server_errors_become_503_and_the_code_is_kept(webui_identity, identity_app, faults):
    user, _ = webui_identity
    faults.admin("POST", "/devcluster/v1/faults", {"rules": [{"status": 500, "users": [user]}]})
    client = identity_app.test_client()
    response = client.post("/", data={"code": "print('still here')"})
    assert response.status_code == 503
    assert "print(&#39;still here&#39;)</textarea>" in response.get_data(as_text=True)
    assert client.get("/readyz").status_code == 503
    assert client.post("/api/runs", json={"code": "pass"}).status_code == 503


def test_a_ready_web_ui_stays_ready_through_an_api_outage(webui_identity, identity_app, faults):
    # Every replica shares the API server: were readiness to follow it, an outage would leave
    # the load balancer with no backend at all instead of a page that says what is wrong.
    user, _ = webui_identity
    client = identity_app.test_client()
    assert client.get("/readyz").status_code == 200
    faults.admin("POST", "/devcluster/v1/faults", {"rules": [{"status": 503, "users": [user]}]})
    assert client.get("/readyz").status_code == 200
    response = client.post("/", data={"code": "print('not lost')"})
    assert response.status_code == 503
    assert "print(&#39;not lost&#39;)</textarea>" in response.get_data(as_text=True)


def test_the_workers_of_one_server_share_readiness_through_the_ready_file(
    webui_identity, runs_namespace, faults, tmp_path
):
    user, kubeconfig = webui_identity

    def worker(ready_file):
        settings = make_settings(runs_namespace=runs_namespace)
        config = {"KUBECONFIG": kubeconfig, "CODERUN_SETTINGS": settings, "READY_FILE": ready_file}
        return create_app(config).test_client()

    shared = str(tmp_path / "server.ready")
    first, second, alone = worker(shared), worker(shared), worker(None)
    assert first.get("/readyz").status_code == 200
    faults.admin("POST", "/devcluster/v1/faults", {"rules": [{"status": 503, "users": [user]}]})
    assert second.get("/readyz").status_code == 200  # learnt from the first worker
    assert alone.get("/readyz").status_code == 503  # nothing shared, nothing learnt


def test_api_server_throttling_is_503_with_retry_after(webui_identity, identity_app, faults):
    user, _ = webui_identity
    faults.admin("POST", "/devcluster/v1/faults", {"rules": [{"status": 429, "users": [user]}]})
    response = identity_app.test_client().post("/api/runs", json={"code": "pass"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


def test_the_shared_watch_resumes_after_the_stream_is_dropped(
    webui_identity, identity_app, operator, faults
):
    user, _ = webui_identity
    client = identity_app.test_client()
    name = client.post("/api/runs", json={"code": "pass"}).get_json()["name"]
    assert client.get(f"/api/runs/{name}?wait=1").get_json()["terminal"] is False
    dropped = faults.admin("POST", "/devcluster/v1/faults", {"dropWatches": {"users": [user]}})
    assert dropped["droppedWatches"] >= 1
    operator.later(1.0, lambda: operator.set_status(name, phase="Succeeded", exitCode=0))
    started = time.monotonic()
    run = client.get(f"/api/runs/{name}?wait=10").get_json()
    assert run["phase"] == "Succeeded"
    assert time.monotonic() - started < 5


def test_a_full_runs_namespace_says_the_service_is_at_capacity_and_keeps_the_code(
    cluster, runs_namespace, cluster_client
):
    quota = {"metadata": {"name": "runs"}, "spec": {"hard": {"count/coderuns.coderun.dev": "1"}}}
    kubernetes.client.CoreV1Api(cluster.api_client()).create_namespaced_resource_quota(
        runs_namespace, quota
    )
    assert cluster_client.post("/api/runs", json={"code": "pass"}).status_code == 201

    refused = cluster_client.post("/api/runs", json={"code": "pass"})
    assert (refused.status_code, refused.headers["Retry-After"]) == (503, "30")
    message = refused.get_json()["error"]["message"]
    assert message.startswith("The service is at capacity") and "try again in 30" in message

    page = cluster_client.post("/runs", data={"code": "print('kept')"})
    assert (page.status_code, page.headers["Retry-After"]) == (503, "30")
    html = page.get_data(as_text=True)
    assert "The service is at capacity" in html
    assert "print(&#39;kept&#39;)</textarea>" in html
