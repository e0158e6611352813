"""Real kubectl against devcluster: the everyday commands and their output."""

from __future__ import annotations

import json
import subprocess
import time

POD = """
apiVersion: v1
kind: Pod
metadata: {name: hello, labels: {app: hello}}
spec:
  containers:
  - {name: main, image: "python:3.12", command: [python, -c, "print(1)"]}
"""

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - name: web
        image: nginx:1.25
        env: [{name: A, value: "VALUE"}]
"""


def configmap(name: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {name}}}\ndata: {{a: '1'}}\n"


def test_create_get_delete_pod(devcluster, namespace):
    out = devcluster.kubectl("-n", namespace, "create", "-f", "-", input=POD)
    assert "pod/hello created" in out.stdout
    table = devcluster.kubectl("-n", namespace, "get", "pods").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert table[1].split()[:4] == ["hello", "0/1", "Pending", "0"]
    pod = json.loads(
        devcluster.kubectl("-n", namespace, "get", "pod", "hello", "-o", "json").stdout
    )
    assert pod["status"]["phase"] == "Pending"
    assert pod["metadata"]["uid"] and pod["metadata"]["resourceVersion"]
    again = devcluster.kubectl("-n", namespace, "create", "-f", "-", input=POD, check=False)
    assert again.returncode != 0 and "AlreadyExists" in again.stderr
    devcluster.kubectl("-n", namespace, "delete", "pod", "hello")
    gone = devcluster.kubectl("-n", namespace, "get", "pod", "hello", check=False)
    assert "NotFound" in gone.stderr


def test_get_nodes_shows_status(devcluster):
    lines = devcluster.kubectl("get", "nodes").stdout.splitlines()
    assert lines[0].split()[:2] == ["NAME", "STATUS"]
    assert all(line.split()[1] == "Ready" for line in lines[1:])
    assert len(lines) == 3  # the session cluster has two nodes


def test_default_validation_refuses_unknown_fields(devcluster, namespace):
    manifest = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: b}\nbogus: 1\n"
    result = devcluster.kubectl("-n", namespace, "create", "-f", "-", input=manifest, check=False)
    assert result.returncode != 0
    assert 'unknown field "bogus"' in result.stderr
    warned = devcluster.kubectl(
        "-n", namespace, "create", "--validate=warn", "-f", "-", input=manifest
    )
    assert 'unknown field "bogus"' in warned.stderr


def test_apply_client_side_then_server_side(devcluster, namespace):
    manifest = DEPLOYMENT.replace("REPLICAS", "2").replace("VALUE", "1")
    assert (
        "created" in devcluster.kubectl("-n", namespace, "apply", "-f", "-", input=manifest).stdout
    )
    changed = DEPLOYMENT.replace("REPLICAS", "3").replace("VALUE", "2")
    assert (
        "configured"
        in devcluster.kubectl("-n", namespace, "apply", "-f", "-", input=changed).stdout
    )
    deployment = json.loads(
        devcluster.kubectl("-n", namespace, "get", "deploy", "web", "-o", "json").stdout
    )
    assert deployment["spec"]["replicas"] == 3
    assert deployment["metadata"]["generation"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "2"}
    ]
    unchanged = devcluster.kubectl("-n", namespace, "apply", "-f", "-", input=changed)
    assert "unchanged" in unchanged.stdout
    ssa = DEPLOYMENT.replace("REPLICAS", "4").replace("VALUE", "3")
    devcluster.kubectl(
        "-n", namespace, "apply", "--server-side", "--force-conflicts", "-f", "-", input=ssa
    )
    deployment = json.loads(
        devcluster.kubectl(
            "-n", namespace, "get", "deploy", "web", "-o", "json", "--show-managed-fields"
        ).stdout
    )
    assert deployment["spec"]["replicas"] == 4
    managers = {m["manager"] for m in deployment["metadata"]["managedFields"]}
    assert "kubectl" in managers


def test_get_watch_prints_rows(devcluster, namespace):
    home = devcluster.workdir / "home"
    home.mkdir(exist_ok=True)
    watcher = subprocess.Popen(
        [
            devcluster.kubectl.__globals__["KUBECTL"],
            "--cache-dir",
            str(devcluster.workdir / "kubectl-cache"),
            "--kubeconfig",
            devcluster.kubeconfig,
            "-n",
            namespace,
            "get",
            "configmaps",
            "-w",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={"HOME": str(home), "PATH": ""},
    )
    try:
        time.sleep(1.0)
        devcluster.kubectl("-n", namespace, "apply", "-f", "-", input=configmap("watched"))
        time.sleep(1.0)
    finally:
        watcher.terminate()
        out, _ = watcher.communicate(timeout=10)
    lines = out.splitlines()
    assert lines[0].split() == ["NAME", "DATA", "AGE"]
    assert any(line.split()[:2] == ["watched", "1"] for line in lines[1:])


def test_crd_columns_short_names_and_categories(devcluster, widget_crd, namespace):
    widget = (
        "apiVersion: test.devcluster.io/v1\nkind: Widget\nmetadata: {name: w}\nspec: {size: 3}\n"
    )
    devcluster.kubectl("-n", namespace, "apply", "-f", "-", input=widget)
    lines = devcluster.kubectl("-n", namespace, "get", "wd").stdout.splitlines()
    assert lines[0].split() == ["NAME", "SIZE", "PHASE", "AGE"]
    assert lines[1].split()[:2] == ["w", "3"]
    everything = devcluster.kubectl("-n", namespace, "get", "all").stdout
    assert "widget.test.devcluster.io/w" in everything
    explained = devcluster.kubectl("explain", "widgets.spec").stdout
    assert "size" in explained


def test_kubectl_patch_types(devcluster, namespace):
    devcluster.kubectl("-n", namespace, "create", "-f", "-", input=configmap("p"))
    devcluster.kubectl(
        "-n", namespace, "patch", "configmap", "p", "--type", "merge", "-p", '{"data":{"b":"2"}}'
    )
    devcluster.kubectl(
        "-n",
        namespace,
        "patch",
        "configmap",
        "p",
        "--type",
        "json",
        "-p",
        '[{"op":"remove","path":"/data/a"}]',
    )
    devcluster.kubectl(
        "-n", namespace, "patch", "configmap", "p", "-p", '{"data":{"c":"3"}}'
    )  # strategic, the default
    data = json.loads(devcluster.kubectl("-n", namespace, "get", "cm", "p", "-o", "json").stdout)[
        "data"
    ]
    assert data == {"b": "2", "c": "3"}


def test_label_selector_and_dry_run(devcluster, namespace):
    devcluster.kubectl("-n", namespace, "create", "-f", "-", input=configmap("one"))
    devcluster.kubectl("-n", namespace, "label", "configmap", "one", "tier=a")
    devcluster.kubectl("-n", namespace, "create", "-f", "-", input=configmap("two"))
    devcluster.kubectl(
        "-n", namespace, "create", "--dry-run=server", "-f", "-", input=configmap("three")
    )
    names = devcluster.kubectl(
        "-n", namespace, "get", "cm", "-l", "tier=a", "-o", "name"
    ).stdout.split()
    assert names == ["configmap/one"]
    everything = devcluster.kubectl("-n", namespace, "get", "cm", "-o", "name").stdout.split()
    assert "configmap/three" not in everything


def test_typed_commands_that_send_protobuf(devcluster, namespace):
    """`kubectl create <generator>`, `create token` and `auth can-i` post protobuf bodies."""
    ns = ("-n", namespace)
    devcluster.kubectl(*ns, "create", "configmap", "gen", "--from-literal=key=value")
    devcluster.kubectl(*ns, "create", "secret", "generic", "sec", "--from-literal=k=v")
    devcluster.kubectl(*ns, "create", "serviceaccount", "robot")
    devcluster.kubectl(*ns, "create", "deployment", "dep", "--image=nginx", "--replicas=2")
    devcluster.kubectl(*ns, "create", "role", "reader", "--verb=get", "--resource=pods")
    devcluster.kubectl(
        *ns,
        "create",
        "rolebinding",
        "robot-reads",
        "--role=reader",
        f"--serviceaccount={namespace}:robot",
    )
    devcluster.kubectl(*ns, "create", "pdb", "budget", "--selector=app=x", "--min-available=50%")
    devcluster.kubectl(*ns, "create", "quota", "q", "--hard=pods=30,requests.cpu=4")
    devcluster.kubectl(*ns, "create", "job", "once", "--image=busybox", "--", "echo", "hi")
    devcluster.kubectl(*ns, "expose", "deployment", "dep", "--port=80", "--target-port=8080")
    pdb = json.loads(devcluster.kubectl(*ns, "get", "pdb", "budget", "-o", "json").stdout)
    assert pdb["spec"]["minAvailable"] == "50%"
    quota = json.loads(devcluster.kubectl(*ns, "get", "quota", "q", "-o", "json").stdout)
    assert quota["spec"]["hard"] == {"pods": "30", "requests.cpu": "4"}
    service = json.loads(devcluster.kubectl(*ns, "get", "svc", "dep", "-o", "json").stdout)
    assert service["spec"]["ports"][0]["targetPort"] == 8080
    configmap = json.loads(devcluster.kubectl(*ns, "get", "cm", "gen", "-o", "json").stdout)
    assert configmap["data"] == {"key": "value"}
    secret = json.loads(devcluster.kubectl(*ns, "get", "secret", "sec", "-o", "json").stdout)
    assert secret["data"] == {"k": "dg=="} and secret["type"] == "Opaque"
    deployment = json.loads(devcluster.kubectl(*ns, "get", "deploy", "dep", "-o", "json").stdout)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"
    token = devcluster.kubectl(*ns, "create", "token", "robot", "--duration=10m").stdout.strip()
    robot = devcluster.kubeconfig_for(token, "robot", namespace)
    can = devcluster.kubectl("auth", "can-i", "get", "pods", kubeconfig=robot, check=False)
    cannot = devcluster.kubectl("auth", "can-i", "delete", "pods", kubeconfig=robot, check=False)
    assert (can.stdout.strip(), cannot.stdout.strip()) == ("yes", "no")
    whoami = devcluster.kubectl("auth", "whoami", kubeconfig=robot).stdout
    assert f"system:serviceaccount:{namespace}:robot" in whoami
    listed = devcluster.kubectl("auth", "can-i", "--list", kubeconfig=robot).stdout
    assert any(line.split()[:1] == ["pods"] and "[get]" in line for line in listed.splitlines())
    name = f"ns-{namespace}"
    devcluster.kubectl("create", "namespace", name)
    assert devcluster.kubectl("get", "ns", name, "-o", "name").stdout.strip() == f"namespace/{name}"
    devcluster.kubectl("delete", "namespace", name)


ALL_KINDS = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: app}
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 1
  selector: {matchLabels: {app: web}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 1
  maxReplicas: 5
  metrics:
  - type: Resource
    resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: deny-all}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
---
apiVersion: v1
kind: ResourceQuota
metadata: {name: runs}
spec:
  hard: {pods: "20"}
---
apiVersion: v1
kind: LimitRange
metadata: {name: runs}
spec:
  limits: [{type: Container, default: {cpu: 500m}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: app}
rules: [{apiGroups: [""], resources: [pods, pods/log], verbs: [get, list, watch]}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: app}
subjects: [{kind: ServiceAccount, name: app}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: app}
---
apiVersion: coordination.k8s.io/v1
kind: Lease
metadata: {name: leader}
spec: {holderIdentity: me, leaseDurationSeconds: 15}
---
apiVersion: events.k8s.io/v1
kind: Event
metadata: {name: ev1}
eventTime: "2026-01-01T00:00:00.000000Z"
reportingController: test
reportingInstance: test-1
action: Testing
reason: Tested
type: Normal
regarding: {kind: Pod, name: x}
"""


def test_apply_every_kind_the_project_uses(devcluster, namespace):
    out = devcluster.kubectl("-n", namespace, "apply", "-f", "-", input=ALL_KINDS).stdout
    assert out.count(" created") == ALL_KINDS.count("---") + 1
    again = devcluster.kubectl("-n", namespace, "apply", "-f", "-", input=ALL_KINDS).stdout
    # kubectl always re-sends a PDB's selector (patch strategy "replace"), as on any cluster.
    changed = [line for line in again.splitlines() if "configured" in line]
    assert changed == ["poddisruptionbudget.policy/web configured"], again
    service = json.loads(
        devcluster.kubectl("-n", namespace, "get", "svc", "web", "-o", "json").stdout
    )
    assert service["spec"]["type"] == "ClusterIP" and service["spec"]["clusterIP"]
    assert (
        devcluster.kubectl(
            "-n", namespace, "get", "pdb,hpa,netpol,quota,limits,lease", "-o", "name"
        ).stdout.count("/")
        == 6
    )


def test_drain_evicts_through_the_eviction_api(devcluster, namespace):
    pod = (
        f"apiVersion: v1\nkind: Pod\nmetadata: {{name: drained, labels: {{drain: "
        f"'{namespace}'}}}}\nspec:\n  nodeName: devcluster-node-2\n"
        f"  terminationGracePeriodSeconds: 0\n  containers: [{{name: c, image: i}}]\n"
    )
    devcluster.kubectl("-n", namespace, "create", "-f", "-", input=pod)
    try:
        out = devcluster.kubectl(
            "drain",
            "devcluster-node-2",
            "--force",
            f"--pod-selector=drain={namespace}",
            "--timeout=20s",
        ).stdout
        assert "pod/drained evicted" in out
        gone = devcluster.kubectl("-n", namespace, "get", "pod", "drained", check=False)
        assert "NotFound" in gone.stderr
        node = json.loads(
            devcluster.kubectl("get", "node", "devcluster-node-2", "-o", "json").stdout
        )
        assert node["spec"]["unschedulable"] is True
    finally:
        devcluster.kubectl("uncordon", "devcluster-node-2")


def test_builtin_columns(devcluster, namespace):
    devcluster.kubectl("-n", namespace, "apply", "-f", "-", input=ALL_KINDS)
    headers = {
        "pdb": ["NAME", "MIN", "AVAILABLE", "MAX", "UNAVAILABLE", "ALLOWED", "DISRUPTIONS", "AGE"],
        "quota": ["NAME", "AGE", "REQUEST", "LIMIT"],
        "lease": ["NAME", "HOLDER", "AGE"],
        "netpol": ["NAME", "POD-SELECTOR", "AGE"],
        "rolebinding": ["NAME", "ROLE", "AGE"],
        "svc": ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
    }
    for kind, expected in headers.items():
        lines = devcluster.kubectl("-n", namespace, "get", kind).stdout.splitlines()
        assert lines[0].split() == expected, (kind, lines)


def test_kubectl_wait_for_conditions_and_deletion(devcluster, widget_crd, namespace):
    devcluster.kubectl(
        "wait", "--for=condition=Established", "crd/widgets.test.devcluster.io", "--timeout=5s"
    )
    devcluster.kubectl("-n", namespace, "apply", "-f", "-", input=configmap("waited"))
    devcluster.kubectl(
        "-n", namespace, "wait", "--for=jsonpath={.data.a}=1", "configmap/waited", "--timeout=5s"
    )
    devcluster.kubectl("-n", namespace, "delete", "configmap", "waited", "--wait=false")
    devcluster.kubectl("-n", namespace, "wait", "--for=delete", "configmap/waited", "--timeout=5s")
