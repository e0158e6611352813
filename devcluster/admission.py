"""Admission where it changes outcomes: Pod Security (`restricted`/`baseline` enforce and warn
labels), LimitRange defaults and bounds for pods, and ResourceQuota counting with `status.used`.
"""

from __future__ import annotations

import threading
from fractions import Fraction
from typing import Any

from devcluster import quantity
from devcluster.errors import ApiError, forbidden
from devcluster.store import Event, Store

Obj = dict[str, Any]
_RESTRICTED_VOLUMES = {
    "configMap",
    "csi",
    "downwardAPI",
    "emptyDir",
    "ephemeral",
    "persistentVolumeClaim",
    "projected",
    "secret",
}
_BASELINE_CAPABILITIES = {
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
}
_LEVELS = {"privileged": 0, "baseline": 1, "restricted": 2}
# Legacy object-count quota names.
_LEGACY_COUNTS = {
    "pods": ("", "pods"),
    "services": ("", "services"),
    "configmaps": ("", "configmaps"),
    "secrets": ("", "secrets"),
    "persistentvolumeclaims": ("", "persistentvolumeclaims"),
    "resourcequotas": ("", "resourcequotas"),
}
_QUOTA_RESOURCES = ("cpu", "memory", "ephemeral-storage")
_COMPUTE = (
    tuple(f"{kind}.{name}" for kind in ("requests", "limits") for name in _QUOTA_RESOURCES)
    + _QUOTA_RESOURCES
)


def _containers(spec: Obj) -> list[Obj]:
    return (
        (spec.get("initContainers") or [])
        + (spec.get("containers") or [])
        + (spec.get("ephemeralContainers") or [])
    )


def _names(names: list[str]) -> str:
    quoted = ", ".join(f'"{n}"' for n in names)
    return f"container {quoted}" if len(names) == 1 else f"containers {quoted}"


def pod_security_violations(pod: Obj, level: str) -> list[str]:
    """The Pod Security Standards checks for `baseline` and `restricted`, worded as PSA does."""
    spec = pod.get("spec") or {}
    pod_sc = spec.get("securityContext") or {}
    containers = _containers(spec)
    out: list[str] = []
    host = [f"{k}=true" for k in ("hostNetwork", "hostPID", "hostIPC") if spec.get(k)]
    if host:
        out.append(f"host namespaces ({', '.join(host)})")
    privileged = [
        c["name"] for c in containers if (c.get("securityContext") or {}).get("privileged")
    ]
    if privileged:
        out.append(
            f"privileged ({_names(privileged)} must not set securityContext.privileged=true)"
        )
    added = sorted(
        {
            cap
            for c in containers
            for cap in ((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or []
            if cap not in _BASELINE_CAPABILITIES
        }
    )
    if added:
        out.append(f"non-default capabilities (capabilities {', '.join(added)} are not allowed)")
    host_paths = [v["name"] for v in spec.get("volumes") or [] if "hostPath" in v]
    if host_paths and level == "baseline":
        out.append(
            f"hostPath volumes (volume{'s' if len(host_paths) > 1 else ''} "
            + ", ".join(f'"{n}"' for n in host_paths)
            + ")"
        )
    ports = [c["name"] for c in containers if any(p.get("hostPort") for p in c.get("ports") or [])]
    if ports:
        out.append(f"hostPort ({_names(ports)} uses hostPort)")
    if level != "restricted":
        return out
    escalation = [
        c["name"]
        for c in containers
        if (c.get("securityContext") or {}).get("allowPrivilegeEscalation") is not False
    ]
    if escalation:
        out.append(
            f"allowPrivilegeEscalation != false ({_names(escalation)} must set "
            f"securityContext.allowPrivilegeEscalation=false)"
        )
    drop = [
        c["name"]
        for c in containers
        if "ALL"
        not in (((c.get("securityContext") or {}).get("capabilities") or {}).get("drop") or [])
    ]
    extra_caps = [
        c["name"]
        for c in containers
        if set(((c.get("securityContext") or {}).get("capabilities") or {}).get("add") or [])
        - {"NET_BIND_SERVICE"}
    ]
    if drop or extra_caps:
        parts = []
        if drop:
            parts.append(f'{_names(drop)} must set securityContext.capabilities.drop=["ALL"]')
        if extra_caps:
            parts.append(
                f"{_names(extra_caps)} must not include capabilities other than "
                f"NET_BIND_SERVICE in securityContext.capabilities.add"
            )
        out.append(f"unrestricted capabilities ({'; '.join(parts)})")
    restricted_volumes = [
        (v["name"], next((k for k in v if k != "name"), ""))
        for v in spec.get("volumes") or []
        if not set(v) - {"name"} <= _RESTRICTED_VOLUMES
    ]
    if restricted_volumes:
        described = ", ".join(f'"{n}"' for n, _ in restricted_volumes)
        kinds = ", ".join(sorted({k for _, k in restricted_volumes}))
        out.append(
            f"restricted volume types (volume{'s' if len(restricted_volumes) > 1 else ''}"
            f" {described} use{'s' if len(restricted_volumes) == 1 else ''} restricted "
            f'volume type{"s" if "," in kinds else ""} "{kinds}")'
        )
    pod_non_root = pod_sc.get("runAsNonRoot")
    non_root = [
        c["name"]
        for c in containers
        if (c.get("securityContext") or {}).get("runAsNonRoot", pod_non_root) is not True
    ]
    if non_root:
        who = "pod or " + _names(non_root) if pod_non_root is not False else _names(non_root)
        out.append(f"runAsNonRoot != true ({who} must set securityContext.runAsNonRoot=true)")
    root_users = []
    if pod_sc.get("runAsUser") == 0:
        root_users.append("pod must not set runAsUser=0")
    zero = [c["name"] for c in containers if (c.get("securityContext") or {}).get("runAsUser") == 0]
    if zero:
        root_users.append(f"{_names(zero)} must not set runAsUser=0")
    if root_users:
        out.append(f"runAsUser=0 ({'; '.join(root_users)})")
    pod_seccomp = (pod_sc.get("seccompProfile") or {}).get("type")
    seccomp = [
        c["name"]
        for c in containers
        if ((c.get("securityContext") or {}).get("seccompProfile") or {}).get("type", pod_seccomp)
        not in ("RuntimeDefault", "Localhost")
    ]
    if seccomp:
        who = "pod or " + _names(seccomp) if pod_seccomp is None else _names(seccomp)
        out.append(
            f"seccompProfile ({who} must set securityContext.seccompProfile.type to "
            f'"RuntimeDefault" or "Localhost")'
        )
    return out


def _level(labels: dict[str, str], mode: str) -> tuple[str, str]:
    level = labels.get(f"pod-security.kubernetes.io/{mode}", "privileged")
    version = labels.get(f"pod-security.kubernetes.io/{mode}-version", "latest")
    return (level if level in _LEVELS else "restricted"), version


def check_pod_security(pod: Obj, namespace: Obj | None) -> list[str]:
    """Raise 403 for `enforce` violations; return warnings for `warn` violations."""
    labels = ((namespace or {}).get("metadata") or {}).get("labels") or {}
    name = pod["metadata"].get("name") or pod["metadata"].get("generateName", "")
    level, version = _level(labels, "enforce")
    if level != "privileged":
        violations = pod_security_violations(pod, level)
        if violations:
            raise forbidden(
                "pods",
                "",
                name,
                f'violates PodSecurity "{level}:{version}": ' + ", ".join(violations),
            )
    warn_level, warn_version = _level(labels, "warn")
    if warn_level != "privileged":
        violations = pod_security_violations(pod, warn_level)
        if violations:
            return [
                f'would violate PodSecurity "{warn_level}:{warn_version}": ' + ", ".join(violations)
            ]
    return []


# -- LimitRange ----------------------------------------------------------------------------------
def apply_limit_ranges(pod: Obj, limit_ranges: list[Obj]) -> None:
    """Fill container defaults from LimitRanges, then refuse containers outside min/max."""
    name = pod["metadata"].get("name", "")
    annotations: list[str] = []
    for limit_range in limit_ranges:
        for item in (limit_range.get("spec") or {}).get("limits") or []:
            if item.get("type") != "Container":
                continue
            default_limits = item.get("default") or {}
            default_requests = item.get("defaultRequest") or default_limits
            for container in (pod.get("spec") or {}).get("containers") or []:
                resources = container.setdefault("resources", {})
                set_requests, set_limits = [], []
                for resource, value in default_limits.items():
                    limits = resources.setdefault("limits", {})
                    if resource not in limits:
                        limits[resource] = value
                        set_limits.append(resource)
                for resource, value in default_requests.items():
                    requests = resources.setdefault("requests", {})
                    if resource not in requests:
                        # Requests for user-set limits were already defaulted to those limits.
                        requests[resource] = value
                        set_requests.append(resource)
                if set_requests:
                    annotations.append(
                        f"{', '.join(set_requests)} request for container {container['name']}"
                    )
                if set_limits:
                    annotations.append(
                        f"{', '.join(set_limits)} limit for container {container['name']}"
                    )
                _check_bounds(name, container, item)
    if annotations:
        pod["metadata"].setdefault("annotations", {})["kubernetes.io/limit-ranger"] = (
            "LimitRanger plugin set: " + "; ".join(annotations)
        )


def _check_bounds(pod_name: str, container: Obj, item: Obj) -> None:
    resources = container.get("resources") or {}
    for resource, bound in (item.get("max") or {}).items():
        limit = (resources.get("limits") or {}).get(resource)
        if limit is None:
            raise forbidden(
                "pods",
                "",
                pod_name,
                f"maximum {resource} usage per Container is {bound}.  No limit is specified",
            )
        if quantity.parse(limit) > quantity.parse(bound):
            raise forbidden(
                "pods",
                "",
                pod_name,
                f"maximum {resource} usage per Container is {bound}, but limit is {limit}",
            )
    for resource, bound in (item.get("min") or {}).items():
        request = (resources.get("requests") or {}).get(resource)
        if request is None or quantity.parse(request) < quantity.parse(bound):
            raise forbidden(
                "pods",
                "",
                pod_name,
                f"minimum {resource} usage per Container is {bound}, but request is {request or 0}",
            )


# -- ResourceQuota --------------------------------------------------------------------------------
def _pod_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pod_usage(pod: Obj) -> dict[str, Fraction]:
    """Compute resources a pod counts against quota (terminal pods count nothing)."""
    if _pod_terminal(pod):
        return {}
    usage: dict[str, Fraction] = {}
    for container in (pod.get("spec") or {}).get("containers") or []:
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            for resource in _QUOTA_RESOURCES:
                value = (resources.get(kind) or {}).get(resource)
                if value is not None:
                    key = f"{kind}.{resource}"
                    usage[key] = usage.get(key, Fraction(0)) + quantity.parse(value)
    for resource in _QUOTA_RESOURCES:
        if f"requests.{resource}" in usage:
            usage[resource] = usage[f"requests.{resource}"]
    return usage


def _count_key(name: str) -> tuple[str, str] | None:
    """The (group, plural) a quota name counts, e.g. `count/deployments.apps`."""
    if name in _LEGACY_COUNTS:
        return _LEGACY_COUNTS[name]
    if name.startswith("count/"):
        resource = name[len("count/") :]
        plural, _, group = resource.partition(".")
        return (group, plural)
    return None


def _format(name: str, value: Fraction) -> str:
    return quantity.format_quantity(value, memory="memory" in name or "storage" in name)


class QuotaTracker:
    """Checks quota on create and keeps every quota's `status.used` current."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._dirty: set[str] = set()
        self._lock = threading.Lock()
        store.listeners.append(self._on_event)

    def _on_event(self, event: Event) -> None:
        if not event.namespace or (
            event.key == ("", "resourcequotas")
            and event.type != "ADDED"
            and (event.obj.get("spec") == (event.old or {}).get("spec"))
        ):
            return
        if self.store.list(("", "resourcequotas"), event.namespace)[0]:
            with self._lock:
                self._dirty.add(event.namespace)

    def usage(self, namespace: str, hard: dict[str, Any]) -> dict[str, Fraction]:
        used: dict[str, Fraction] = {}
        pods = None
        for name in hard:
            key = _count_key(name)
            if key is not None:
                objects = self.store.list(key, namespace)[0]
                if key == ("", "pods"):
                    objects = [p for p in objects if not _pod_terminal(p)]
                used[name] = Fraction(len(objects))
            elif name in _COMPUTE:
                if pods is None:
                    pods = self.store.list(("", "pods"), namespace)[0]
                used[name] = sum((pod_usage(p).get(name, Fraction(0)) for p in pods), Fraction(0))
        return used

    def admit(self, key: tuple[str, str], obj: Obj, namespace: str) -> None:
        """Refuse a create that would exceed a quota (403 `exceeded quota`)."""
        quotas = self.store.list(("", "resourcequotas"), namespace)[0]
        if not quotas:
            return
        name = obj["metadata"].get("name") or obj["metadata"].get("generateName", "")
        group, plural = key
        for quota in quotas:
            hard = (quota.get("spec") or {}).get("hard") or {}
            requested: dict[str, Fraction] = {}
            missing: list[str] = []
            for resource in hard:
                if _count_key(resource) == key:
                    requested[resource] = Fraction(1)
                elif resource in _COMPUTE and key == ("", "pods"):
                    usage = pod_usage(obj)
                    if resource in usage:
                        requested[resource] = usage[resource]
                    else:
                        kind, _, what = resource.partition(".")
                        field = resource if what else f"requests.{kind}"
                        containers = [
                            c["name"]
                            for c in (obj.get("spec") or {}).get("containers") or []
                            if what not in ((c.get("resources") or {}).get(kind) or {}) or not what
                        ]
                        missing.append(f"{field} for: {','.join(containers)}")
            if missing:
                raise forbidden(
                    plural if not group else f"{plural}.{group}",
                    "",
                    name,
                    f"failed quota: {quota['metadata']['name']}: must specify "
                    + "; ".join(missing),
                )
            if not requested:
                continue
            used = self.usage(namespace, {r: hard[r] for r in requested})
            over = [
                r for r in sorted(requested) if used[r] + requested[r] > quantity.parse(hard[r])
            ]
            if over:
                raise ApiError(
                    403,
                    "Forbidden",
                    f'{plural} "{name}" is forbidden: exceeded quota: '
                    f"{quota['metadata']['name']}, requested: "
                    + ",".join(f"{r}={_format(r, requested[r])}" for r in over)
                    + ", used: "
                    + ",".join(f"{r}={_format(r, used[r])}" for r in over)
                    + ", limited: "
                    + ",".join(f"{r}={hard[r]}" for r in over),
                    {"name": name, "kind": plural, "group": group},
                )

    def flush(self) -> None:
        """Rewrite `status.used`/`status.hard` of quotas in namespaces that changed."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        for namespace in dirty:
            for quota in self.store.list(("", "resourcequotas"), namespace)[0]:
                hard = (quota.get("spec") or {}).get("hard") or {}
                used = self.usage(namespace, hard)
                status = {"hard": dict(hard), "used": {k: _format(k, v) for k, v in used.items()}}
                if quota.get("status") != status:
                    current = self.store.get(
                        ("", "resourcequotas"), namespace, quota["metadata"]["name"]
                    )
                    if current is not None:
                        updated = dict(current, status=status)
                        updated["metadata"] = dict(current["metadata"])
                        self.store.put(("", "resourcequotas"), updated, "MODIFIED", current)
