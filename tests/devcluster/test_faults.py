"""Injected faults hit only the identities they aim at."""

from __future__ import annotations

import ssl
import threading
import time
import urllib.request
import uuid

import pytest


@pytest.fixture
def victim(devcluster):
    name = f"victim-{uuid.uuid4().hex[:6]}"
    token = devcluster.add_user(name, ["system:masters"])
    yield name, token
    devcluster.request("DELETE", "/devcluster/v1/faults")


@pytest.mark.parametrize(("code", "reason"), [(500, "InternalError"), (429, "TooManyRequests")])
def test_requests_fail_for_the_chosen_user_only(devcluster, namespace, victim, code, reason):
    name, token = victim
    status, _, _ = devcluster.request(
        "POST",
        "/devcluster/v1/faults",
        {"rules": [{"status": code, "fraction": 1.0, "users": [name], "verbs": ["list"]}]},
    )
    assert status == 200
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    status, headers, body = devcluster.request("GET", path, token=token)
    assert (status, body["reason"]) == (code, reason)
    if code == 429:
        assert headers["Retry-After"] == "1"
    assert devcluster.request("GET", path)[0] == 200  # the admin is not hit
    assert devcluster.request("GET", f"{path}/nope", token=token)[0] == 404  # other verbs pass


def test_conflicts_are_injected_on_writes_only(devcluster, namespace, victim):
    name, token = victim
    devcluster.request(
        "POST", "/devcluster/v1/faults", {"rules": [{"status": 409, "users": [name]}]}
    )
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    assert devcluster.request("GET", path, token=token)[0] == 200
    assert devcluster.request("GET", f"{path}?watch=1&timeoutSeconds=1", token=token)[0] == 200
    body = {"metadata": {"name": "c"}, "data": {}}
    status, _, answer = devcluster.request("POST", path, body, token=token)
    assert (status, answer["reason"]) == (409, "Conflict")


def test_fraction_fails_some_requests(devcluster, namespace, victim):
    name, token = victim
    devcluster.request(
        "POST",
        "/devcluster/v1/faults",
        {"rules": [{"status": 500, "fraction": 0.5, "users": [name]}]},
    )
    codes = [
        devcluster.request("GET", f"/api/v1/namespaces/{namespace}/configmaps", token=token)[0]
        for _ in range(60)
    ]
    assert 5 < codes.count(500) < 55 and codes.count(200) == 60 - codes.count(500)


def test_drop_watch_streams(devcluster, namespace, victim):
    name, token = victim
    ended = threading.Event()

    def watch() -> None:
        request = urllib.request.Request(
            f"{devcluster.url}/api/v1/namespaces/{namespace}/configmaps?watch=1"
        )
        request.add_header("Authorization", f"Bearer {token}")
        context = ssl.create_default_context(cafile=devcluster.ca_file)
        with urllib.request.urlopen(request, context=context, timeout=20) as response:
            for _ in response:
                pass
        ended.set()

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    time.sleep(0.5)
    status, _, body = devcluster.request(
        "POST", "/devcluster/v1/faults", {"rules": [], "dropWatches": {"users": [name]}}
    )
    assert status == 200 and body["droppedWatches"] >= 1
    assert ended.wait(5)


def test_node_agent_fault_seam(devcluster):
    status, _, body = devcluster.request(
        "POST", "/devcluster/v1/faults/actions/node-agent", {"data": {"paused": "true"}}
    )
    assert status == 200, body
    _, _, configmap = devcluster.request(
        "GET", "/api/v1/namespaces/kube-system/configmaps/devcluster-node-faults"
    )
    assert configmap["data"] == {"paused": "true"}
    devcluster.request("POST", "/devcluster/v1/faults/actions/node-agent", {"data": {}})
    _, _, configmap = devcluster.request(
        "GET", "/api/v1/namespaces/kube-system/configmaps/devcluster-node-faults"
    )
    assert not configmap.get("data")
