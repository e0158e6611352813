"""The JSON API with real CodeRuns in devcluster; the tests write statuses as the operator would."""

import time

import pytest
from webui_support import make_settings

from webui import create_app


def _create(client, **body) -> dict:
    response = client.post("/api/runs", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_create_returns_201_with_name_urls_and_location(cluster_client, operator):
    response = cluster_client.post(
        "/api/runs", json={"code": "print(input())", "stdin": "Ada\n", "timeoutSeconds": 7}
    )
    assert response.status_code == 201
    run = response.get_json()
    name = run["name"]
    assert response.headers["Location"] == f"/api/runs/{name}"
    assert run["url"] == f"/runs/{name}" and run["apiUrl"] == f"/api/runs/{name}"
    assert (run["phase"], run["terminal"]) == ("Pending", False)
    assert run["spec"] == {"code": "print(input())", "stdin": "Ada\n", "timeoutSeconds": 7}
    assert operator.get(name)["spec"] == run["spec"]


def test_get_with_wait_answers_as_soon_as_the_run_ends(cluster_client, operator):
    name = _create(cluster_client, code="print('next')")["name"]
    operator.later(
        0.5,
        lambda: operator.set_status(
            name,
            phase="Succeeded",
            reason="Completed",
            exitCode=0,
            stdout="next\n",
            podName="crun-x",
            nodeName="node-1",
        ),
    )
    started = time.monotonic()
    response = cluster_client.get(f"/api/runs/{name}?wait=20")
    assert time.monotonic() - started < 5
    run = response.get_json()
    assert (run["phase"], run["terminal"]) == ("Succeeded", True)
    assert run["status"]["stdout"] == "next\n" and run["status"]["exitCode"] == 0
    assert "podName" not in run["status"] and "nodeName" not in run["status"]


def test_get_without_wait_answers_at_once(cluster_client):
    name = _create(cluster_client, code="pass")["name"]
    started = time.monotonic()
    assert cluster_client.get(f"/api/runs/{name}").get_json()["phase"] == "Pending"
    assert time.monotonic() - started < 2.5


def test_the_wait_is_capped_by_the_settings(cluster, runs_namespace):
    settings = make_settings(runs_namespace=runs_namespace, max_wait_seconds=1)
    app = create_app({"KUBECONFIG": cluster.kubeconfig, "CODERUN_SETTINGS": settings})
    client = app.test_client()
    try:
        name = _create(client, code="pass")["name"]
        started = time.monotonic()
        run = client.get(f"/api/runs/{name}?wait=3600").get_json()
        assert 0.9 < time.monotonic() - started < 3
        assert run["terminal"] is False
    finally:
        app.extensions["coderun"].watch.stop()


def test_cancel_is_202_while_running_and_409_once_ended(cluster_client, operator):
    name = _create(cluster_client, code="import time; time.sleep(60)")["name"]
    response = cluster_client.post(f"/api/runs/{name}/cancel")
    assert response.status_code == 202
    assert response.get_json()["spec"]["cancel"] is True
    operator.set_status(name, phase="Failed", reason="Cancelled")
    response = cluster_client.post(f"/api/runs/{name}/cancel")
    assert response.status_code == 409
    assert response.get_json()["error"]["message"].startswith("The run has already ended")


def test_a_deleted_run_is_404(cluster_client, operator):
    name = _create(cluster_client, code="pass")["name"]
    operator.delete(name)
    response = cluster_client.get(f"/api/runs/{name}?wait=1")
    assert response.status_code == 404
    assert "expired or been deleted" in response.get_json()["error"]["message"]
    assert cluster_client.post(f"/api/runs/{name}/cancel").status_code == 404


@pytest.mark.parametrize("code", ["print('é 🐍')", "x = '\\u00e9'"])
def test_unicode_code_round_trips(cluster_client, operator, code):
    name = _create(cluster_client, code=code)["name"]
    assert operator.get(name)["spec"]["code"] == code
