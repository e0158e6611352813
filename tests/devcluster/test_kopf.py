"""A trivial kopf operator, run as a real `kopf run` subprocess against devcluster."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

OPERATOR = textwrap.dedent("""
    import kopf

    @kopf.on.startup()
    def configure(settings: kopf.OperatorSettings, **_):
        settings.watching.server_timeout = 30
        settings.posting.level = 20
        settings.scanning.disabled = SCANNING_DISABLED

    @kopf.on.create("test.devcluster.io", "v1", "widgets")
    def widget_created(spec, patch, body, **_):
        patch.status["phase"] = f"Seen-{spec['size']}"
        kopf.info(body, reason="Seen", message="widget seen")

    @kopf.on.update("test.devcluster.io", "v1", "widgets", field="spec.size")
    def widget_resized(new, patch, **_):
        patch.status["size"] = new
""")


OPERATOR_RULES = [
    {
        "apiGroups": ["test.devcluster.io"],
        "resources": ["widgets"],
        "verbs": ["list", "watch", "patch"],
    },
    {"apiGroups": ["test.devcluster.io"], "resources": ["widgets/status"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
]
# kopf itself scans CRDs and namespaces at the cluster scope, on any cluster.
KOPF_CLUSTER_RULES = [
    {
        "apiGroups": ["apiextensions.k8s.io"],
        "resources": ["customresourcedefinitions"],
        "verbs": ["list", "watch"],
    },
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
]


@pytest.mark.parametrize("scanning", ["cluster-scan", "namespace-only"])
def test_kopf_operator_handles_a_custom_resource(
    devcluster, widget_crd, namespace, tmp_path: Path, scanning: str
):
    """kopf runs under its own service account with least-privilege RBAC: no 403, and the
    audit log shows every rule used. By default kopf scans CRDs and namespaces at the cluster
    scope; with `settings.scanning.disabled` a namespaced Role is enough."""
    cluster_scan = scanning == "cluster-scan"
    (tmp_path / "operator.py").write_text(
        OPERATOR.replace("SCANNING_DISABLED", str(not cluster_scan))
    )
    base_ns = f"/api/v1/namespaces/{namespace}"
    devcluster.request("POST", f"{base_ns}/serviceaccounts", {"metadata": {"name": "op"}})
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{namespace}"
    devcluster.request(
        "POST", f"{rbac}/roles", {"metadata": {"name": "op"}, "rules": OPERATOR_RULES}
    )
    devcluster.request(
        "POST",
        f"{rbac}/rolebindings",
        {
            "metadata": {"name": "op"},
            "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": namespace}],
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "op"},
        },
    )
    cluster_rbac = "/apis/rbac.authorization.k8s.io/v1"
    cluster_rules = KOPF_CLUSTER_RULES if cluster_scan else []
    devcluster.request(
        "POST",
        f"{cluster_rbac}/clusterroles",
        {"metadata": {"name": f"kopf-{namespace}"}, "rules": cluster_rules},
    )
    devcluster.request(
        "POST",
        f"{cluster_rbac}/clusterrolebindings",
        {
            "metadata": {"name": f"kopf-{namespace}"},
            "subjects": [{"kind": "ServiceAccount", "name": "op", "namespace": namespace}],
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": f"kopf-{namespace}",
            },
        },
    )
    _, _, token_request = devcluster.request(
        "POST", f"{base_ns}/serviceaccounts/op/token", {"spec": {}}
    )
    kubeconfig = devcluster.kubeconfig_for(token_request["status"]["token"], "op", namespace)
    kopf = str(Path(sys.executable).parent / "kopf")
    log = open(tmp_path / "kopf.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [kopf, "run", "--standalone", "--namespace", namespace, str(tmp_path / "operator.py")],
        env={**os.environ, "KUBECONFIG": kubeconfig},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"/apis/test.devcluster.io/v1/namespaces/{namespace}/widgets"
    try:
        devcluster.request(
            "POST",
            base,
            {
                "apiVersion": "test.devcluster.io/v1",
                "kind": "Widget",
                "metadata": {"name": "k"},
                "spec": {"size": 3},
            },
        )
        widget = _wait(lambda: _phase(devcluster, f"{base}/k") == "Seen-3")
        devcluster.request(
            "PATCH", f"{base}/k", {"spec": {"size": 4}}, content_type="application/merge-patch+json"
        )
        _wait(
            lambda: (devcluster.request("GET", f"{base}/k")[2].get("status") or {}).get("size") == 4
        )
        _wait(
            lambda: any(
                e["reason"] == "Seen"
                for e in devcluster.request("GET", f"/api/v1/namespaces/{namespace}/events")[2][
                    "items"
                ]
            )
        )
        del widget
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        log.close()
    output = (tmp_path / "kopf.log").read_text()
    assert "Handler 'widget_created' succeeded" in output, output
    entries = devcluster.audit(f"system:serviceaccount:{namespace}:op")
    assert not [e for e in entries if e["code"] == 403]
    used = {(e["authorization"]["role"], e["authorization"]["ruleIndex"]) for e in entries}
    held = {(f"Role/{namespace}/op", index) for index in range(len(OPERATOR_RULES))} | {
        (f"ClusterRole/kopf-{namespace}", index) for index in range(len(cluster_rules))
    }
    assert held <= used, held - used


def _phase(devcluster, path: str) -> str | None:
    return (devcluster.request("GET", path)[2].get("status") or {}).get("phase")


def _wait(check, timeout: float = 20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    raise AssertionError("kopf never got there")
