"""Authentication, RBAC (deny by default, as Kubernetes evaluates it) and the audit log."""

from __future__ import annotations

import uuid

import kubernetes
import pytest
from kubernetes.client import ApiException

RBAC = "/apis/rbac.authorization.k8s.io/v1"


def grant(
    devcluster,
    namespace: str,
    name: str,
    rules: list[dict],
    subjects: list[dict],
    cluster: bool = False,
) -> None:
    if cluster:
        role_path, binding_path = f"{RBAC}/clusterroles", f"{RBAC}/clusterrolebindings"
    else:
        role_path = f"{RBAC}/namespaces/{namespace}/roles"
        binding_path = f"{RBAC}/namespaces/{namespace}/rolebindings"
    kind = "ClusterRole" if cluster else "Role"
    assert (
        devcluster.request("POST", role_path, {"metadata": {"name": name}, "rules": rules})[0]
        == 201
    )
    binding = {
        "metadata": {"name": name},
        "subjects": subjects,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name},
    }
    assert devcluster.request("POST", binding_path, binding)[0] == 201


def user(name: str) -> list[dict]:
    return [{"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": name}]


def test_no_token_is_unauthorized(devcluster):
    status, _, body = devcluster.request("GET", "/api/v1/namespaces", token="")
    assert (status, body["reason"]) == (401, "Unauthorized")
    status, _, _ = devcluster.request("GET", "/api/v1/namespaces", token="wrong")
    assert status == 401


def test_deny_by_default_with_the_real_message(devcluster, namespace):
    name = f"nobody-{uuid.uuid4().hex[:6]}"
    token = devcluster.add_user(name)
    status, _, body = devcluster.request("GET", f"/api/v1/namespaces/{namespace}/pods", token=token)
    assert (status, body["reason"]) == (403, "Forbidden")
    assert body["message"] == (
        f'pods is forbidden: User "{name}" cannot list resource "pods" in API group "" in '
        f'the namespace "{namespace}"'
    )
    status, _, body = devcluster.request("GET", "/api/v1/nodes/x", token=token)
    assert body["message"] == (
        f'nodes "x" is forbidden: User "{name}" cannot get resource '
        f'"nodes" in API group "" at the cluster scope'
    )
    # Discovery and version stay open to every authenticated user.
    for path in ("/api", "/apis", "/api/v1", "/version", "/openapi/v3"):
        assert devcluster.request("GET", path, token=token)[0] == 200, path


def test_role_rules_resource_names_and_subresources(devcluster, namespace):
    name = f"reader-{uuid.uuid4().hex[:6]}"
    token = devcluster.add_user(name)
    grant(
        devcluster,
        namespace,
        "reader",
        [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "verbs": ["get"],
                "resourceNames": ["allowed"],
            },
            {"apiGroups": [""], "resources": ["pods/log", "pods/status"], "verbs": ["get"]},
        ],
        user(name),
    )
    base = f"/api/v1/namespaces/{namespace}"
    for cm_name in ("allowed", "other"):
        devcluster.request("POST", f"{base}/configmaps", {"metadata": {"name": cm_name}})
    devcluster.request(
        "POST",
        f"{base}/pods",
        {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
    )
    assert devcluster.request("GET", f"{base}/configmaps/allowed", token=token)[0] == 200
    assert devcluster.request("GET", f"{base}/configmaps/other", token=token)[0] == 403
    assert devcluster.request("GET", f"{base}/configmaps", token=token)[0] == 403
    assert devcluster.request("GET", f"{base}/pods/p/status", token=token)[0] == 200
    assert devcluster.request("GET", f"{base}/pods/p", token=token)[0] == 403
    # pods/log is authorized; without a node agent the container is still "waiting".
    status, _, body = devcluster.request("GET", f"{base}/pods/p/log", token=token)
    assert status == 400 and "waiting to start" in body["message"]
    entries = devcluster.audit(name)
    allowed = next(e for e in entries if e["name"] == "allowed")
    assert allowed["authorization"]["binding"] == f"RoleBinding/{namespace}/reader"
    assert allowed["authorization"]["role"] == f"Role/{namespace}/reader"
    assert allowed["authorization"]["ruleIndex"] == 0
    log_entry = next(e for e in entries if e["subresource"] == "log")
    assert log_entry["authorization"]["ruleIndex"] == 1 and log_entry["code"] == 400
    denied = next(e for e in entries if e["name"] == "other")
    assert denied["code"] == 403 and denied["allowed"] is False


def test_wildcards_groups_and_cluster_roles(devcluster, namespace):
    name = f"ops-{uuid.uuid4().hex[:6]}"
    group = f"team-{uuid.uuid4().hex[:6]}"
    token = devcluster.add_user(name, [group])
    grant(
        devcluster,
        namespace,
        f"all-{group}",
        [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["list"]}],
        [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": group}],
        cluster=True,
    )
    assert devcluster.request("GET", "/api/v1/nodes", token=token)[0] == 200
    assert devcluster.request("GET", "/apis/apps/v1/deployments", token=token)[0] == 200
    assert devcluster.request("GET", "/api/v1/nodes/devcluster-node-1", token=token)[0] == 403


def test_service_account_token_and_implicit_groups(devcluster, namespace):
    base = f"/api/v1/namespaces/{namespace}"
    devcluster.request("POST", f"{base}/serviceaccounts", {"metadata": {"name": "robot"}})
    status, _, request = devcluster.request(
        "POST",
        f"{base}/serviceaccounts/robot/token",
        {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 600},
        },
    )
    assert status == 201
    token = request["status"]["token"]
    client = kubernetes.client.CoreV1Api(devcluster.api_client(token))
    with pytest.raises(ApiException) as caught:
        client.list_namespaced_config_map(namespace)
    assert caught.value.status == 403
    assert f"system:serviceaccount:{namespace}:robot" in caught.value.body
    grant(
        devcluster,
        namespace,
        "sa-reader",
        [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch"]}],
        [
            {
                "kind": "Group",
                "apiGroup": "rbac.authorization.k8s.io",
                "name": f"system:serviceaccounts:{namespace}",
            }
        ],
    )
    assert client.list_namespaced_config_map(namespace).items is not None
    grant(
        devcluster,
        namespace,
        "sa-secrets",
        [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]}],
        [{"kind": "ServiceAccount", "name": "robot", "namespace": namespace}],
    )
    assert client.list_namespaced_secret(namespace).items is not None
    # The token dies with its service account.
    devcluster.request("DELETE", f"{base}/serviceaccounts/robot")
    assert devcluster.request("GET", f"{base}/configmaps", token=token)[0] == 401


def test_kubectl_as_a_restricted_user(devcluster, namespace):
    name = f"kubectl-user-{uuid.uuid4().hex[:6]}"
    token = devcluster.add_user(name)
    grant(
        devcluster,
        namespace,
        "cm-editor",
        [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "verbs": ["get", "list", "create", "patch"],
            }
        ],
        user(name),
    )
    config = devcluster.kubeconfig_for(token, name, namespace)
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: mine}\ndata: {a: '1'}\n"
    devcluster.kubectl("apply", "-f", "-", input=manifest, kubeconfig=config)
    denied = devcluster.kubectl("get", "pods", kubeconfig=config, check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr


def test_admin_endpoints_need_admin(devcluster):
    token = devcluster.add_user(f"plain-{uuid.uuid4().hex[:6]}")
    assert devcluster.request("GET", "/devcluster/v1/audit", token=token)[0] == 403


def test_pod_log_is_proxied_to_the_node_agent(devcluster, namespace):
    """pods/log goes to the agent named by the node's kubelet endpoint, like a kubelet."""
    import http.server
    import threading

    class Agent(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"log of {self.path}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Agent)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    node = f"agent-node-{uuid.uuid4().hex[:6]}"
    try:
        devcluster.request("POST", "/api/v1/nodes", {"metadata": {"name": node}})
        devcluster.request(
            "PATCH",
            f"/api/v1/nodes/{node}/status",
            {
                "status": {
                    "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                    "daemonEndpoints": {"kubeletEndpoint": {"Port": server.server_address[1]}},
                }
            },
            content_type="application/merge-patch+json",
        )
        base = f"/api/v1/namespaces/{namespace}/pods"
        devcluster.request(
            "POST",
            base,
            {
                "metadata": {"name": "logged"},
                "spec": {"nodeName": node, "containers": [{"name": "main", "image": "i"}]},
            },
        )
        out = devcluster.kubectl("-n", namespace, "logs", "logged", "--tail=5").stdout
        assert out == f"log of /containerLogs/{namespace}/logged/main?tailLines=5\n"
    finally:
        server.shutdown()
        devcluster.request("DELETE", f"/api/v1/nodes/{node}")
