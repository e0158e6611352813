"""deploy/: every kustomization renders, validates against the official schemas, and holds
together (selectors match pods, settings parse, limits admit the largest run)."""

from __future__ import annotations

import os
import runpy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from coderun_operator.run_pod import build_run_pod, run_pod_labels
from coderun_operator.run_spec import resolve_run_spec
from coderun_operator.settings import load_operator_settings, load_web_settings
from tests.support.manifests import (
    KUBERNETES_VERSION,
    KUSTOMIZATIONS,
    ROOT,
    assert_largest_run_fits,
    find,
    render,
)

SYSTEM, RUNS = "coderun-system", "coderun-runs"
OVERLAYS = [name for name in KUSTOMIZATIONS if name != "base"]


def pod_templates(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [obj["spec"]["template"] for obj in objects if obj["kind"] == "Deployment"]


def containers(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for template in pod_templates(objects) for c in template["spec"]["containers"]]


def settings_env(objects: list[dict[str, Any]]) -> dict[str, str]:
    return find(objects, "ConfigMap", "coderun-settings")["data"]


def selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    assert set(selector) <= {"matchLabels"}, "only matchLabels selectors are used here"
    # An empty selector selects everything.
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


class RecordingEnv(dict):
    """An environment that remembers which names the settings loaders asked for."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key: str) -> Any:
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key: object) -> bool:
        self.asked.add(str(key))
        return super().__contains__(key)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_object_validates_against_the_official_schemas(kustomization):
    objects = render(kustomization)
    assert objects
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        if obj["kind"] not in {"Namespace", "CustomResourceDefinition"}:
            assert obj["metadata"]["namespace"] in {SYSTEM, RUNS}, obj["metadata"]


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_deployed_crd_is_the_one_in_crds(kustomization):
    source = yaml.safe_load((ROOT / "crds" / "coderun.yaml").read_text())
    assert find(render(kustomization), "CustomResourceDefinition", "coderuns.coderun.dev") == source


def test_runs_namespace_enforces_pod_security_restricted():
    namespace = find(render("base"), "Namespace", RUNS)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_every_container_is_hardened_probed_and_bounded(kustomization):
    for template in pod_templates(render(kustomization)):
        pod = template["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["enableServiceLinks"] is False
        volumes = {volume["name"]: volume for volume in pod.get("volumes", [])}
        for container in pod["containers"]:
            security = container["securityContext"]
            assert security["runAsUser"] > 0 and security["runAsGroup"] > 0
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]}
            assert security["seccompProfile"] == {"type": "RuntimeDefault"}
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) == {"cpu", "memory", "ephemeral-storage"}
            ports = {port["name"] for port in container["ports"]}
            for probe in ("livenessProbe", "readinessProbe"):
                assert container[probe]["httpGet"]["port"] in ports
            # A read-only root needs somewhere to write: /tmp, bounded.
            (mount,) = container["volumeMounts"]
            assert mount["mountPath"] == "/tmp"
            assert volumes[mount["name"]]["emptyDir"]["sizeLimit"]


def test_operator_runs_alone_and_the_autoscaler_owns_the_web_ui_replicas():
    objects = render("base")
    operator = find(objects, "Deployment", "coderun-operator")
    assert operator["spec"]["replicas"] == 1
    assert operator["spec"]["strategy"] == {"type": "Recreate"}
    webui = find(objects, "Deployment", "coderun-webui")
    assert "replicas" not in webui["spec"]
    spread = webui["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert {rule["topologyKey"] for rule in spread} >= {"kubernetes.io/hostname"}
    labels = webui["spec"]["template"]["metadata"]["labels"]
    assert all(selects(rule["labelSelector"], labels) for rule in spread)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_service_budget_and_policies_select_the_pods_they_are_for(kustomization):
    objects = render(kustomization)
    webui = find(objects, "Deployment", "coderun-webui")["spec"]["template"]
    operator = find(objects, "Deployment", "coderun-operator")["spec"]["template"]
    webui_labels = webui["metadata"]["labels"]

    service = find(objects, "Service", "coderun-webui")
    assert selects({"matchLabels": service["spec"]["selector"]}, webui_labels)
    (port,) = service["spec"]["ports"]
    (container,) = webui["spec"]["containers"]
    assert port["targetPort"] in {p["name"] for p in container["ports"]}

    budget = find(objects, "PodDisruptionBudget", "coderun-webui")
    assert selects(budget["spec"]["selector"], webui_labels)

    policies = {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == "NetworkPolicy"}
    for template in (webui, operator):
        labels = template["metadata"]["labels"]
        assert [
            name
            for name, policy in policies.items()
            if policy["metadata"]["namespace"] == SYSTEM
            and selects(policy["spec"]["podSelector"], labels)
        ]
    run_pods = policies["run-pods-deny-all"]
    assert run_pods["metadata"]["namespace"] == RUNS
    # Every pod of the runs namespace, whatever its labels: run pods and any other.
    assert run_pods["spec"]["podSelector"] == {}
    assert selects(run_pods["spec"]["podSelector"], run_pod_labels("any-uid"))
    assert run_pods["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert "ingress" not in run_pods["spec"] and "egress" not in run_pods["spec"]


@pytest.mark.parametrize("name", ["coderun-webui", "coderun-operator"])
def test_web_ui_and_operator_reach_only_dns_the_api_server_and_serve_their_own_ports(name):
    objects = render("base")
    policy = find(objects, "NetworkPolicy", name)
    (container,) = find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
    served = {port["containerPort"] for port in container["ports"]}
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    ingress_ports = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert ingress_ports == served
    egress = {
        (port["protocol"], port["port"])
        for rule in policy["spec"]["egress"]
        for port in rule["ports"]
    }
    assert egress == {("UDP", 53), ("TCP", 53), ("TCP", 443), ("TCP", 6443)}


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_declared_and_probed_ports_are_the_ones_the_settings_make_the_programs_serve(
    kustomization,
):
    objects = render(kustomization)
    env = settings_env(objects)
    web, operator = load_web_settings(env), load_operator_settings(env)
    served = {
        "coderun-webui": {"http": web.port},
        "coderun-operator": {"health": operator.health_port, "metrics": operator.metrics_port},
    }
    for name, ports in served.items():
        (container,) = find(objects, "Deployment", name)["spec"]["template"]["spec"]["containers"]
        assert {port["name"]: port["containerPort"] for port in container["ports"]} == ports
        for probe in ("livenessProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] in ports, (name, probe)


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_a_leaving_web_ui_pod_has_time_to_drain(kustomization, monkeypatch):
    objects = render(kustomization)
    for key in [key for key in os.environ if key.startswith("CODERUN_")]:
        monkeypatch.delenv(key)
    for key, value in settings_env(objects).items():
        monkeypatch.setenv(key, value)
    gunicorn = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    spec = find(objects, "Deployment", "coderun-webui")["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    pause = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    assert pause >= 24  # GKE's load balancer health check: three failures 8 s apart
    assert spec["terminationGracePeriodSeconds"] > pause + gunicorn["graceful_timeout"]
    assert gunicorn["graceful_timeout"] > load_web_settings(settings_env(objects)).max_wait_seconds


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_both_programs_read_one_settings_configmap_that_they_accept(kustomization):
    objects = render(kustomization)
    configmap = find(objects, "ConfigMap", "coderun-settings")
    for container in containers(objects):
        assert container["envFrom"] == [{"configMapRef": {"name": configmap["metadata"]["name"]}}]
    env = RecordingEnv(configmap["data"])
    load_operator_settings(env)
    load_web_settings(env)
    unknown = set(configmap["data"]) - env.asked
    assert not unknown, f"settings no program reads: {sorted(unknown)}"


def test_recording_env_notices_a_name_no_program_reads():
    env = RecordingEnv({"CODERUN_NO_SUCH_SETTING": "1"})
    load_operator_settings(env)
    load_web_settings(env)
    assert "CODERUN_NO_SUCH_SETTING" not in env.asked
    assert "CODERUN_MAX_CPU" in env.asked


@pytest.mark.parametrize("kustomization", KUSTOMIZATIONS)
def test_the_largest_run_the_settings_allow_fits_the_limit_range_and_quota(kustomization):
    objects = render(kustomization)
    assert_largest_run_fits(objects)
    hard = find(objects, "ResourceQuota", "coderun-runs")["spec"]["hard"]
    assert set(hard) == {"pods", "count/coderuns.coderun.dev"}
    assert all(int(value) > 0 for value in hard.values())


def test_gke_serves_port_80_from_a_load_balancer_that_keeps_client_addresses():
    objects = render("overlays/gke")
    service = find(objects, "Service", "coderun-webui")
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["externalTrafficPolicy"] == "Local"
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(80, "http")]
    # The client address reaches gunicorn directly, so no proxy header is trusted.
    assert settings_env(objects)["CODERUN_TRUSTED_PROXY_HOPS"] == "0"


@pytest.mark.parametrize("kustomization", ["overlays/gke", "overlays/gke-sandbox"])
def test_gke_scales_the_web_ui_between_one_and_five_replicas_on_cpu(kustomization):
    objects = render(kustomization)
    hpa = find(objects, "HorizontalPodAutoscaler", "coderun-webui")
    assert hpa["apiVersion"] == "autoscaling/v2"
    target = hpa["spec"]["scaleTargetRef"]
    assert find(objects, target["kind"], target["name"])["apiVersion"] == target["apiVersion"]
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (1, 5)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"]["type"] == "Utilization"
    # Utilization is measured against the request, so the web UI must make one.
    (container,) = find(objects, "Deployment", "coderun-webui")["spec"]["template"]["spec"][
        "containers"
    ]
    assert container["resources"]["requests"]["cpu"]


@pytest.mark.parametrize("kustomization", ["overlays/gke", "overlays/gke-sandbox"])
def test_gke_images_come_from_artifact_registry_placeholders(kustomization):
    images = {c["name"]: c["image"] for c in containers(render(kustomization))}
    assert images == {
        "operator": "REGION-docker.pkg.dev/PROJECT_ID/coderun/coderun-operator:0.1.0",
        "webui": "REGION-docker.pkg.dev/PROJECT_ID/coderun/coderun-webui:0.1.0",
    }


@pytest.mark.parametrize("kustomization", ["overlays/gke", "overlays/gke-sandbox"])
def test_gke_leaves_the_cluster_autoscaler_time_to_add_a_node(kustomization):
    base = load_operator_settings(settings_env(render("base")))
    gke = load_operator_settings(settings_env(render(kustomization)))
    assert base.pending_limit_seconds == 120
    assert gke.pending_limit_seconds == 300
    assert gke.limits == base.limits


def test_gke_sandbox_puts_every_run_pod_in_gvisor_and_changes_nothing_else():
    sandbox, plain = render("overlays/gke-sandbox"), render("overlays/gke")
    settings = load_operator_settings(settings_env(sandbox))
    run = {"metadata": {"name": "boxed", "namespace": RUNS, "uid": "u"}, "spec": {"code": "1"}}
    plan = resolve_run_spec(run["spec"], settings.limits)
    assert build_run_pod(run, plan, settings)["spec"]["runtimeClassName"] == "gvisor"
    assert settings_env(sandbox) == {**settings_env(plain), "CODERUN_RUNTIME_CLASS": "gvisor"}

    def without_settings(objects):
        return [o for o in objects if o["kind"] not in {"ConfigMap", "Deployment"}]

    assert without_settings(sandbox) == without_settings(plain)


def test_kind_runs_loaded_images_with_the_end_to_end_settings():
    objects = render("overlays/kind")
    for container in containers(objects):
        assert container["image"].endswith(":local")
        assert container["imagePullPolicy"] == "IfNotPresent"
    env = settings_env(objects)
    assert env["CODERUN_DEFAULT_CPU"] == "50m"
    assert env["CODERUN_PENDING_LIMIT_SECONDS"] == "10"
    assert int(env["CODERUN_RUNS_PER_MINUTE_PER_CLIENT"]) >= 100000
    assert not [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]


def test_one_object_per_new_file_named_after_it():
    base = ROOT / "deploy" / "base"
    listed = yaml.safe_load((base / "kustomization.yaml").read_text())["resources"]
    for name in listed:
        path = base / name
        if path.is_dir() or name in {"namespaces.yaml", "rbac-operator.yaml", "rbac-webui.yaml",
                                     "serviceaccounts.yaml"}:  # fmt: skip
            continue
        (obj,) = list(yaml.safe_load_all(path.read_text()))
        assert Path(name).stem.startswith(obj["kind"].lower()), name
