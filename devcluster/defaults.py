"""Defaults the real server fills into built-in objects, so clients read back what they would
read from a real cluster (and `kubectl apply` diffs stay quiet)."""

from __future__ import annotations

import hashlib
from typing import Any

Obj = dict[str, Any]


def _container(container: Obj) -> None:
    container.setdefault("terminationMessagePath", "/dev/termination-log")
    container.setdefault("terminationMessagePolicy", "File")
    image = container.get("image") or ""
    tag = image.rsplit("/", 1)[-1]
    latest = ":" not in tag or tag.endswith(":latest")
    if "@" in image:
        latest = False
    container.setdefault("imagePullPolicy", "Always" if latest else "IfNotPresent")
    container.setdefault("resources", {})
    resources = container["resources"]
    # Limits without requests: requests default to the limits.
    if resources.get("limits"):
        requests = resources.setdefault("requests", {})
        for name, value in resources["limits"].items():
            requests.setdefault(name, value)
    for port in container.get("ports") or []:
        port.setdefault("protocol", "TCP")


def pod_spec(spec: Obj) -> None:
    """PodSpec defaults (also used for workload templates)."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("securityContext", {})
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("enableServiceLinks", True)
    for container in spec.get("containers") or []:
        _container(container)
    for container in spec.get("initContainers") or []:
        _container(container)


def qos_class(spec: Obj) -> str:
    containers = (spec.get("containers") or []) + (spec.get("initContainers") or [])
    requests_any = limits_all = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        if requests or limits:
            requests_any = True
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits.get(name)) != limits[name]:
                guaranteed = False
        limits_all = limits_all or bool(limits)
    if containers and guaranteed:
        return "Guaranteed"
    return "Burstable" if requests_any else "BestEffort"


def apply_builtin_defaults(group: str, plural: str, obj: Obj) -> None:
    """Defaults applied on every write of a built-in kind."""
    if (group, plural) == ("", "pods"):
        spec = obj.setdefault("spec", {})
        pod_spec(spec)
        spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
        spec.setdefault("serviceAccount", spec["serviceAccountName"])
        spec.setdefault("priority", 0)
        spec.setdefault(
            "tolerations",
            [
                {
                    "key": "node.kubernetes.io/not-ready",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
                {
                    "key": "node.kubernetes.io/unreachable",
                    "operator": "Exists",
                    "effect": "NoExecute",
                    "tolerationSeconds": 300,
                },
            ],
        )
    elif group in ("apps", "batch") and plural in (
        "deployments",
        "replicasets",
        "statefulsets",
        "daemonsets",
        "jobs",
    ):
        spec = obj.setdefault("spec", {})
        if plural not in {"daemonsets", "jobs"}:
            spec.setdefault("replicas", 1)
        spec.setdefault("revisionHistoryLimit", 10) if plural != "jobs" else None
        if plural == "deployments":
            spec.setdefault("progressDeadlineSeconds", 600)
            spec.setdefault(
                "strategy",
                {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"},
                },
            )
        template_spec = (spec.get("template") or {}).get("spec")
        if isinstance(template_spec, dict):
            pod_spec(template_spec)
    elif (group, plural) == ("", "services"):
        spec = obj.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        for port in spec.get("ports") or []:
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
        if spec.get("clusterIP") is None:
            # A stable fake address derived from the name: nothing routes to it here.
            digest = hashlib.sha256(
                f"{obj['metadata'].get('namespace')}/{obj['metadata'].get('name')}".encode()
            ).digest()
            spec["clusterIP"] = f"10.96.{digest[0]}.{digest[1] or 1}"
            spec["clusterIPs"] = [spec["clusterIP"]]
    elif (group, plural) == ("", "secrets"):
        obj.setdefault("type", "Opaque")
    elif (group, plural) == ("", "namespaces"):
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]


def initial_status(group: str, plural: str, obj: Obj) -> None:
    """The status a fresh object gets from the server itself (not from controllers)."""
    if (group, plural) == ("", "pods"):
        obj["status"] = {"phase": "Pending", "qosClass": qos_class(obj.get("spec") or {})}
    elif (group, plural) == ("", "namespaces"):
        obj["status"] = {"phase": "Active"}
        # The namespace controller's finalizer is set at creation only (PrepareForCreate).
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
    elif (group, plural) == ("", "services"):
        obj["status"] = {"loadBalancer": {}}
