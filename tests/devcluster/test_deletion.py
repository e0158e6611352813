"""Deletion: finalizers, propagation policies, garbage collection, graceful pods, namespaces."""

from __future__ import annotations

import time

import pytest


def wait_for(check, timeout: float = 5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError("condition never became true")


def cm(name: str, **meta) -> dict:
    return {"metadata": {"name": name, **meta}, "data": {"a": "1"}}


def owner_ref(owner: dict) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "blockOwnerDeletion": True,
    }


def test_finalizers_hold_deletion(devcluster, namespace):
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    devcluster.request("POST", base, cm("fin", finalizers=["test/hold"]))
    status, _, body = devcluster.request("DELETE", f"{base}/fin")
    assert status == 200 and body["metadata"]["deletionTimestamp"]
    assert body["metadata"]["deletionGracePeriodSeconds"] == 0
    assert devcluster.request("GET", f"{base}/fin")[0] == 200
    status, _, body = devcluster.request(
        "PATCH",
        f"{base}/fin",
        {"metadata": {"finalizers": ["test/hold", "new"]}},
        content_type="application/merge-patch+json",
    )
    assert status == 403  # no new finalizers while deleting
    devcluster.request(
        "PATCH",
        f"{base}/fin",
        {"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )
    assert devcluster.request("GET", f"{base}/fin")[0] == 404


def _family(devcluster, namespace: str, name: str) -> tuple[str, str]:
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    _, _, owner = devcluster.request("POST", base, cm(name))
    devcluster.request("POST", base, cm(f"{name}-child", ownerReferences=[owner_ref(owner)]))
    return base, owner["metadata"]["uid"]


def test_background_propagation_collects_dependents(devcluster, namespace):
    base, _ = _family(devcluster, namespace, "bg")
    devcluster.request("DELETE", f"{base}/bg")
    assert devcluster.request("GET", f"{base}/bg")[0] == 404
    wait_for(lambda: devcluster.request("GET", f"{base}/bg-child")[0] == 404)


def test_foreground_propagation_waits_for_dependents(devcluster, namespace):
    base, _ = _family(devcluster, namespace, "fg")
    _status, _, body = devcluster.request(
        "DELETE", f"{base}/fg", {"propagationPolicy": "Foreground"}
    )
    assert "foregroundDeletion" in body["metadata"]["finalizers"]
    wait_for(lambda: devcluster.request("GET", f"{base}/fg-child")[0] == 404)
    wait_for(lambda: devcluster.request("GET", f"{base}/fg")[0] == 404)


def test_orphan_propagation_keeps_dependents(devcluster, namespace):
    base, _ = _family(devcluster, namespace, "or")
    devcluster.request("DELETE", f"{base}/or", {"propagationPolicy": "Orphan"})
    wait_for(lambda: devcluster.request("GET", f"{base}/or")[0] == 404)
    time.sleep(0.3)
    status, _, child = devcluster.request("GET", f"{base}/or-child")
    assert status == 200 and not child["metadata"].get("ownerReferences")


def test_dependent_of_a_missing_owner_is_collected(devcluster, namespace):
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    ghost = {"metadata": {"name": "ghost", "uid": "00000000-0000-0000-0000-000000000000"}}
    devcluster.request("POST", base, cm("orphaned", ownerReferences=[owner_ref(ghost)]))
    wait_for(lambda: devcluster.request("GET", f"{base}/orphaned")[0] == 404)


def test_kubectl_delete_cascades(devcluster, namespace):
    base, _ = _family(devcluster, namespace, "kc")
    devcluster.kubectl("-n", namespace, "delete", "configmap", "kc", "--cascade=foreground")
    assert devcluster.request("GET", f"{base}/kc-child")[0] == 404


def test_graceful_pod_deletion_without_a_node_agent(devcluster, namespace):
    base = f"/api/v1/namespaces/{namespace}/pods"
    pod = {
        "metadata": {"name": "bound"},
        "spec": {
            "nodeName": "devcluster-node-1",
            "terminationGracePeriodSeconds": 1,
            "containers": [{"name": "c", "image": "i"}],
        },
    }
    devcluster.request("POST", base, pod)
    status, _, body = devcluster.request("DELETE", f"{base}/bound")
    assert status == 200 and body["metadata"]["deletionGracePeriodSeconds"] == 1
    assert devcluster.request("GET", f"{base}/bound")[0] == 200  # still terminating
    wait_for(lambda: devcluster.request("GET", f"{base}/bound")[0] == 404, timeout=5)
    unbound = {
        "metadata": {"name": "unbound"},
        "spec": {"containers": [{"name": "c", "image": "i"}]},
    }
    devcluster.request("POST", base, unbound)
    devcluster.request("DELETE", f"{base}/unbound")
    assert devcluster.request("GET", f"{base}/unbound")[0] == 404  # never scheduled: at once


def test_grace_period_zero_deletes_at_once(devcluster, namespace):
    base = f"/api/v1/namespaces/{namespace}/pods"
    pod = {
        "metadata": {"name": "now"},
        "spec": {"nodeName": "devcluster-node-1", "containers": [{"name": "c", "image": "i"}]},
    }
    devcluster.request("POST", base, pod)
    devcluster.request("DELETE", f"{base}/now?gracePeriodSeconds=0")
    assert devcluster.request("GET", f"{base}/now")[0] == 404


@pytest.mark.parametrize("with_finalizer", [False, True])
def test_namespace_deletion_removes_contents(devcluster, with_finalizer):
    name = f"gone-{int(with_finalizer)}-{time.monotonic_ns() % 100000}"
    devcluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    base = f"/api/v1/namespaces/{name}/configmaps"
    finalizers = ["test/hold"] if with_finalizer else []
    devcluster.request("POST", base, cm("inside", finalizers=finalizers))
    _, _, body = devcluster.request("DELETE", f"/api/v1/namespaces/{name}")
    assert body["status"]["phase"] == "Terminating"
    status, _, refused = devcluster.request("POST", base, cm("late"))
    assert status == 403 and "being terminated" in refused["message"]
    if with_finalizer:
        time.sleep(0.3)
        assert devcluster.request("GET", f"/api/v1/namespaces/{name}")[0] == 200
        devcluster.request(
            "PATCH",
            f"{base}/inside",
            {"metadata": {"finalizers": None}},
            content_type="application/merge-patch+json",
        )
    wait_for(lambda: devcluster.request("GET", f"/api/v1/namespaces/{name}")[0] == 404)
    assert devcluster.request("GET", f"{base}/inside")[0] == 404


def test_live_node_agent_confirms_graceful_deletion(devcluster, namespace):
    """With a node Lease being renewed, the pod waits for the agent's own grace-0 delete."""
    import datetime

    node = "devcluster-node-2"
    renew = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    lease = {
        "metadata": {"name": node},
        "spec": {"holderIdentity": node, "leaseDurationSeconds": 40, "renewTime": renew},
    }
    leases = "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases"
    assert devcluster.request("POST", leases, lease)[0] == 201
    try:
        base = f"/api/v1/namespaces/{namespace}/pods"
        pod = {
            "metadata": {"name": "agent"},
            "spec": {
                "nodeName": node,
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "c", "image": "i"}],
            },
        }
        devcluster.request("POST", base, pod)
        devcluster.request("DELETE", f"{base}/agent")
        time.sleep(1.5)
        assert devcluster.request("GET", f"{base}/agent")[0] == 200  # not confirmed yet
        devcluster.request("DELETE", f"{base}/agent?gracePeriodSeconds=0")
        assert devcluster.request("GET", f"{base}/agent")[0] == 404
    finally:
        devcluster.request("DELETE", f"{leases}/{node}")
