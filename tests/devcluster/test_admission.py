"""Admission: Pod Security `restricted`, ResourceQuota and LimitRange."""

from __future__ import annotations

import time

RESTRICTED_CONTAINER = {
    "name": "c",
    "image": "python:3.12",
    "securityContext": {
        "allowPrivilegeEscalation": False,
        "runAsNonRoot": True,
        "runAsUser": 1000,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    },
}


def pod(name: str, container: dict | None = None, **resources) -> dict:
    spec_container = dict(container or {"name": "c", "image": "i"})
    if resources:
        spec_container["resources"] = resources
    return {"metadata": {"name": name}, "spec": {"containers": [spec_container]}}


def label(devcluster, namespace: str, labels: dict) -> None:
    devcluster.request(
        "PATCH",
        f"/api/v1/namespaces/{namespace}",
        {"metadata": {"labels": labels}},
        content_type="application/merge-patch+json",
    )


def test_pod_security_restricted(devcluster, namespace):
    label(devcluster, namespace, {"pod-security.kubernetes.io/enforce": "restricted"})
    base = f"/api/v1/namespaces/{namespace}/pods"
    status, _, body = devcluster.request("POST", base, pod("loose"))
    assert (status, body["reason"]) == (403, "Forbidden")
    assert body["message"].startswith(
        'pods "loose" is forbidden: violates PodSecurity "restricted:latest": '
        'allowPrivilegeEscalation != false (container "c" must set '
        "securityContext.allowPrivilegeEscalation=false)"
    )
    for part in ("unrestricted capabilities", "runAsNonRoot != true", "seccompProfile"):
        assert part in body["message"]
    status, _, body = devcluster.request("POST", base, pod("tight", RESTRICTED_CONTAINER))
    assert status == 201, body


def test_pod_security_warn_label(devcluster, namespace):
    label(devcluster, namespace, {"pod-security.kubernetes.io/warn": "restricted"})
    status, headers, _ = devcluster.request(
        "POST", f"/api/v1/namespaces/{namespace}/pods", pod("warned")
    )
    assert status == 201
    assert "would violate PodSecurity" in headers["Warning"]


def quota(devcluster, namespace: str, hard: dict) -> None:
    status, _, body = devcluster.request(
        "POST",
        f"/api/v1/namespaces/{namespace}/resourcequotas",
        {"metadata": {"name": "q"}, "spec": {"hard": hard}},
    )
    assert status == 201, body


def wait_used(devcluster, namespace: str, expected: dict) -> dict:
    deadline = time.monotonic() + 5
    while True:
        _, _, body = devcluster.request("GET", f"/api/v1/namespaces/{namespace}/resourcequotas/q")
        used = (body.get("status") or {}).get("used")
        if used == expected or time.monotonic() > deadline:
            return used
        time.sleep(0.05)


def test_quota_counts_and_refuses(devcluster, namespace):
    quota(
        devcluster,
        namespace,
        {"pods": "2", "count/configmaps": "1", "requests.cpu": "1", "limits.memory": "1Gi"},
    )
    base = f"/api/v1/namespaces/{namespace}"
    small = {"requests": {"cpu": "200m"}, "limits": {"memory": "256Mi", "cpu": "200m"}}
    assert devcluster.request("POST", f"{base}/pods", pod("a", **small))[0] == 201
    assert devcluster.request("POST", f"{base}/pods", pod("b", **small))[0] == 201
    status, _, body = devcluster.request("POST", f"{base}/pods", pod("c", **small))
    assert status == 403
    assert body["message"] == (
        'pods "c" is forbidden: exceeded quota: q, requested: pods=1, used: pods=2, limited: pods=2'
    )
    assert wait_used(
        devcluster,
        namespace,
        {"pods": "2", "count/configmaps": "0", "requests.cpu": "400m", "limits.memory": "512Mi"},
    ) == {"pods": "2", "count/configmaps": "0", "requests.cpu": "400m", "limits.memory": "512Mi"}
    devcluster.request("DELETE", f"{base}/pods/a")
    big = {"requests": {"cpu": "900m"}, "limits": {"memory": "256Mi", "cpu": "1"}}
    status, _, body = devcluster.request("POST", f"{base}/pods", pod("d", **big))
    assert (
        status == 403 and "requested: requests.cpu=900m, used: requests.cpu=200m" in body["message"]
    )
    status, _, body = devcluster.request("POST", f"{base}/pods", pod("e"))
    assert status == 403 and "must specify" in body["message"]
    assert devcluster.request("POST", f"{base}/configmaps", {"metadata": {"name": "x"}})[0] == 201
    assert devcluster.request("POST", f"{base}/configmaps", {"metadata": {"name": "y"}})[0] == 403


def test_quota_counts_ephemeral_storage(devcluster, namespace):
    quota(devcluster, namespace, {"requests.ephemeral-storage": "1Gi"})
    base = f"/api/v1/namespaces/{namespace}/pods"
    disk = {"requests": {"ephemeral-storage": "600Mi"}}
    assert devcluster.request("POST", base, pod("one", **disk))[0] == 201
    status, _, body = devcluster.request("POST", base, pod("two", **disk))
    assert status == 403 and "requests.ephemeral-storage=600Mi" in body["message"]
    assert wait_used(devcluster, namespace, {"requests.ephemeral-storage": "600Mi"}) == {
        "requests.ephemeral-storage": "600Mi"
    }


def test_limit_range_defaults_and_maximum(devcluster, namespace):
    base = f"/api/v1/namespaces/{namespace}"
    devcluster.request(
        "POST",
        f"{base}/limitranges",
        {
            "metadata": {"name": "lr"},
            "spec": {
                "limits": [
                    {
                        "type": "Container",
                        "default": {"cpu": "500m", "memory": "128Mi"},
                        "defaultRequest": {"cpu": "100m", "memory": "64Mi"},
                        "max": {"cpu": "1"},
                    }
                ]
            },
        },
    )
    status, _, created = devcluster.request("POST", f"{base}/pods", pod("defaulted"))
    assert status == 201
    resources = created["spec"]["containers"][0]["resources"]
    assert resources == {
        "limits": {"cpu": "500m", "memory": "128Mi"},
        "requests": {"cpu": "100m", "memory": "64Mi"},
    }
    assert "kubernetes.io/limit-ranger" in created["metadata"]["annotations"]
    status, _, body = devcluster.request("POST", f"{base}/pods", pod("greedy", limits={"cpu": "2"}))
    assert status == 403
    assert "maximum cpu usage per Container is 1, but limit is 2" in body["message"]
