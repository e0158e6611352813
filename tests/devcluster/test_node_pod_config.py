"""From pod spec to container process settings; refusals in the kubelet's words."""

from __future__ import annotations

import base64

import pytest

from devcluster import network_isolation, pod_config
from devcluster.pod_config import ContainerConfigError, VolumeSource


def pod(security=None, container_security=None, **container):
    base = {"name": "main", "image": "python:3.12-slim", **container}
    if container_security is not None:
        base["securityContext"] = container_security
    return {
        "metadata": {"name": "run", "namespace": "ns", "uid": "u-1", "labels": {"app": "coderun"}},
        "spec": {"nodeName": "node-1", "securityContext": security or {}, "containers": [base]},
    }


def build(manifest, lookup=lambda *_: None, **overrides):
    arguments = {
        "image_env": {"PATH": "/img/bin:/usr/bin"},
        "host_ip": "127.0.0.1",
        "node_allocatable": {"cpu": "6", "memory": "8Gi"},
        "node_memory": 8 << 30,
        "pids_max": 256,
        "volumes": {},
        "isolate_network": False,
        "lookup": lookup,
    }
    arguments.update(overrides)
    return pod_config.build(manifest, manifest["spec"]["containers"][0], **arguments)


def test_run_as_non_root_without_a_user_is_refused_like_the_kubelet():
    manifest = pod({"runAsNonRoot": True})
    with pytest.raises(ContainerConfigError) as caught:
        build(manifest)
    assert caught.value.reason == "CreateContainerConfigError"
    assert caught.value.message == (
        "container has runAsNonRoot and image will run as root "
        '(pod: "run_ns(u-1)", container: main)'
    )
    with pytest.raises(ContainerConfigError, match="runAsUser breaks non-root policy"):
        build(pod({"runAsNonRoot": True, "runAsUser": 0}))


def test_numeric_user_group_and_fs_group():
    config = build(
        pod(
            {
                "runAsNonRoot": True,
                "runAsUser": 65532,
                "runAsGroup": 65533,
                "supplementalGroups": [5],
                "fsGroup": 7,
            },
            {"runAsUser": 1000},
        )
    )
    assert (config.uid, config.gid, config.groups) == (1000, 65533, [5, 7])


def test_security_settings_of_a_run_pod():
    config = build(
        pod(
            {"runAsUser": 65532},
            {
                "readOnlyRootFilesystem": True,
                "allowPrivilegeEscalation": False,
                "capabilities": {"drop": ["ALL"]},
            },
        )
    )
    assert config.read_only_root and config.no_new_privs
    assert config.capabilities == []
    default = build(pod())
    assert "KILL" in default.capabilities and "SYS_ADMIN" not in default.capabilities
    added = build(
        pod(container_security={"capabilities": {"add": ["NET_ADMIN"], "drop": ["KILL"]}})
    )
    assert "NET_ADMIN" in added.capabilities and "KILL" not in added.capabilities


def test_environment_and_command_expansion():
    secret = {"data": {"token": base64.b64encode(b"s3cret").decode()}}
    manifest = pod(
        command=["python", "-c"],
        args=["print('$(GREETING)', '$$(x)')"],
        env=[
            {"name": "GREETING", "value": "hi"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {
                "name": "MEM",
                "valueFrom": {"resourceFieldRef": {"resource": "limits.memory", "divisor": "1Mi"}},
            },
            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "s", "key": "token"}}},
        ],
        resources={"limits": {"memory": "64Mi"}},
    )
    config = build(manifest, lookup=lambda kind, ns, name: secret if kind == "secrets" else None)
    assert config.argv == ["python", "-c", "print('hi', '$(x)')"]
    assert config.env["POD"] == "run" and config.env["APP"] == "coderun"
    assert config.env["MEM"] == "64" and config.env["TOKEN"] == "s3cret"
    assert config.env["HOSTNAME"] == "run" and config.env["PATH"] == "/img/bin:/usr/bin"
    assert config.memory_bytes == 64 << 20


def test_missing_config_map_is_a_config_error():
    manifest = pod(
        env=[{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "k"}}}]
    )
    with pytest.raises(ContainerConfigError, match='configmap "cm" not found'):
        build(manifest)


def test_defaults_command_memory_and_mounts():
    manifest = pod(
        volumeMounts=[
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "token", "mountPath": "/var/run/secrets"},
        ]
    )
    config = build(manifest, volumes={"tmp": VolumeSource("/state/pods/u-1/volumes/tmp")})
    assert config.argv == ["python3"]
    assert config.memory_bytes == 8 << 30  # no limit: the node's allocatable memory
    assert config.cwd == "/"
    assert config.mounts == [
        {"source": "/state/pods/u-1/volumes/tmp", "target": "/tmp", "readOnly": False}
    ]


def policy(selector, types=None, egress=None, namespace="ns"):
    spec = {"podSelector": selector}
    if types is not None:
        spec["policyTypes"] = types
    if egress is not None:
        spec["egress"] = egress
    return {"metadata": {"name": "p", "namespace": namespace}, "spec": spec}


@pytest.mark.parametrize(
    ("policies", "denied"),
    [
        ([], False),
        ([policy({}, ["Ingress", "Egress"])], True),
        ([policy({"matchLabels": {"app": "coderun"}}, ["Egress"])], True),
        ([policy({"matchLabels": {"app": "other"}}, ["Egress"])], False),
        ([policy({}, ["Ingress"])], False),
        ([policy({}, ["Egress"]), policy({}, ["Egress"], egress=[{"to": []}])], False),
        (
            [
                policy(
                    {"matchExpressions": [{"key": "app", "operator": "In", "values": ["coderun"]}]},
                    ["Egress"],
                )
            ],
            True,
        ),
        ([policy({}, ["Egress"], namespace="elsewhere")], False),
    ],
)
def test_network_policies_that_deny_all_egress(policies, denied):
    assert network_isolation.egress_denied(pod(), policies) is denied


def test_cpu_limit_in_millicores():
    assert build(pod(resources={"limits": {"cpu": "500m"}})).cpu_millis == 500
    assert build(pod(resources={"limits": {"cpu": "1.5"}})).cpu_millis == 1500
    assert build(pod()).cpu_millis is None


def test_sub_path_stays_inside_its_volume(tmp_path):
    manifest = pod(volumeMounts=[{"name": "v", "mountPath": "/tmp", "subPath": "a/b"}])
    config = build(manifest, volumes={"v": VolumeSource(str(tmp_path))})
    assert config.mounts[0]["source"] == str(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    for bad in ("../../etc", "/etc", "a/../../x"):
        escaping = pod(volumeMounts=[{"name": "v", "mountPath": "/tmp", "subPath": bad}])
        with pytest.raises(ContainerConfigError, match="subPath"):
            build(escaping, volumes={"v": VolumeSource(str(tmp_path))})
