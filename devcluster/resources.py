"""The registry of served resources: built-in kinds and the ones CRDs install at run time."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from devcluster import schemas

ALL_VERBS = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]


@dataclass
class Resource:
    """One served resource at one group/version (CRDs with several versions get one each)."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)
    # Subresources that exist: status, scale, log, eviction, token, binding, ephemeralcontainers.
    subresources: set[str] = field(default_factory=set)
    verbs: list[str] = field(default_factory=lambda: list(ALL_VERBS))
    # For built-ins, the OpenAPI definition name; for CRDs, the version's structural schema.
    definition: str | None = None
    crd_schema: dict[str, Any] | None = None
    crd: dict[str, Any] | None = None
    printer_columns: list[dict[str, Any]] = field(default_factory=list)
    # Field selectors beyond metadata.name/metadata.namespace, mapped to dotted paths.
    field_labels: dict[str, str] = field(default_factory=dict)
    storage_version: str = ""

    def __post_init__(self) -> None:
        if not self.singular:
            self.singular = self.kind.lower()
        if not self.storage_version:
            self.storage_version = self.version

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str]:
        """Storage key: all versions of one group/resource share objects."""
        return (self.group, self.plural)

    @property
    def has_status(self) -> bool:
        return "status" in self.subresources

    @property
    def is_crd(self) -> bool:
        return self.crd is not None


_POD_FIELDS = {
    "spec.nodeName": "spec.nodeName",
    "spec.restartPolicy": "spec.restartPolicy",
    "spec.schedulerName": "spec.schedulerName",
    "spec.serviceAccountName": "spec.serviceAccountName",
    "spec.hostNetwork": "spec.hostNetwork",
    "status.phase": "status.phase",
    "status.podIP": "status.podIP",
    "status.nominatedNodeName": "status.nominatedNodeName",
}
_EVENT_FIELDS = {
    f"involvedObject.{k}": f"involvedObject.{k}"
    for k in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
} | {
    "reason": "reason",
    "type": "type",
    "source": "source.component",
    "reportingComponent": "reportingComponent",
}


def _builtin(  # noqa: PLR0917 (one keyword-rich table row per call)
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    sub: tuple[str, ...] = (),
    cats: tuple[str, ...] = (),
    fields: dict[str, str] | None = None,
    verbs: list[str] | None = None,
) -> Resource:
    return Resource(
        group=group,
        version=version,
        plural=plural,
        kind=kind,
        namespaced=namespaced,
        short_names=list(short),
        subresources=set(sub),
        categories=list(cats),
        definition=schemas.definition_for(group, version, kind),
        field_labels=fields or {},
        verbs=verbs or list(ALL_VERBS),
    )


def builtin_resources() -> list[Resource]:
    """The built-in kinds devcluster stores and validates (workloads are stored, not run)."""
    ns_verbs = ["create", "delete", "get", "list", "patch", "update", "watch"]
    return [
        _builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            False,
            ("ns",),
            ("status", "finalize"),
            fields={"status.phase": "status.phase"},
            verbs=ns_verbs,
        ),
        _builtin(
            "",
            "v1",
            "pods",
            "Pod",
            True,
            ("po",),
            ("status", "log", "eviction", "binding", "ephemeralcontainers"),
            ("all",),
            fields=_POD_FIELDS,
        ),
        _builtin(
            "",
            "v1",
            "nodes",
            "Node",
            False,
            ("no",),
            ("status",),
            fields={"spec.unschedulable": "spec.unschedulable"},
        ),
        _builtin("", "v1", "events", "Event", True, ("ev",), fields=_EVENT_FIELDS),
        _builtin("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
        _builtin("", "v1", "secrets", "Secret", True, fields={"type": "type"}),
        _builtin("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",), ("token",)),
        _builtin("", "v1", "services", "Service", True, ("svc",), ("status",), ("all",)),
        _builtin("", "v1", "endpoints", "Endpoints", True, ("ep",)),
        _builtin("", "v1", "resourcequotas", "ResourceQuota", True, ("quota",), ("status",)),
        _builtin("", "v1", "limitranges", "LimitRange", True, ("limits",)),
        _builtin(
            "", "v1", "persistentvolumeclaims", "PersistentVolumeClaim", True, ("pvc",), ("status",)
        ),
        _builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            True,
            ("deploy",),
            ("status", "scale"),
            ("all",),
        ),
        _builtin(
            "apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), ("status", "scale"), ("all",)
        ),
        _builtin(
            "apps",
            "v1",
            "statefulsets",
            "StatefulSet",
            True,
            ("sts",),
            ("status", "scale"),
            ("all",),
        ),
        _builtin("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), ("status",), ("all",)),
        _builtin("batch", "v1", "jobs", "Job", True, (), ("status",), ("all",)),
        _builtin("batch", "v1", "cronjobs", "CronJob", True, ("cj",), ("status",), ("all",)),
        _builtin(
            "policy",
            "v1",
            "poddisruptionbudgets",
            "PodDisruptionBudget",
            True,
            ("pdb",),
            ("status",),
        ),
        _builtin(
            "autoscaling",
            "v2",
            "horizontalpodautoscalers",
            "HorizontalPodAutoscaler",
            True,
            ("hpa",),
            ("status",),
            ("all",),
        ),
        _builtin("networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, ("netpol",)),
        _builtin("networking.k8s.io", "v1", "ingresses", "Ingress", True, ("ing",), ("status",)),
        _builtin("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
        _builtin("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
        _builtin("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
        _builtin(
            "rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False
        ),
        _builtin("coordination.k8s.io", "v1", "leases", "Lease", True),
        _builtin(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            True,
            ("ev",),
            fields={
                "reason": "reason",
                "type": "type",
                "regarding.name": "regarding.name",
                "regarding.kind": "regarding.kind",
                "regarding.namespace": "regarding.namespace",
            },
        ),
        _builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            False,
            ("crd", "crds"),
            ("status",),
            cats=("api-extensions",),
        ),
        _builtin(
            "authorization.k8s.io",
            "v1",
            "selfsubjectaccessreviews",
            "SelfSubjectAccessReview",
            False,
            verbs=["create"],
        ),
        _builtin(
            "authorization.k8s.io",
            "v1",
            "selfsubjectrulesreviews",
            "SelfSubjectRulesReview",
            False,
            verbs=["create"],
        ),
        _builtin(
            "authorization.k8s.io",
            "v1",
            "subjectaccessreviews",
            "SubjectAccessReview",
            False,
            verbs=["create"],
        ),
        _builtin(
            "authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, verbs=["create"]
        ),
        _builtin(
            "authentication.k8s.io",
            "v1",
            "selfsubjectreviews",
            "SelfSubjectReview",
            False,
            verbs=["create"],
        ),
    ]


# Subresources whose body is a different kind than the parent.
SUBRESOURCE_KINDS = {
    "scale": ("autoscaling", "v1", "Scale"),
    "eviction": ("policy", "v1", "Eviction"),
    "token": ("authentication.k8s.io", "v1", "TokenRequest"),
    "binding": ("", "v1", "Binding"),
}

# Resources with no storage: requests are answered, not kept (create-only reviews).
VIRTUAL = {
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("authorization.k8s.io", "subjectaccessreviews"),
    ("authentication.k8s.io", "tokenreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
}


class Registry:
    """Thread-safe map of what is served; CRDs add and remove entries at run time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_gvr: dict[tuple[str, str, str], Resource] = {}
        self.generation = 0  # bumped on every change, so discovery caches can be keyed on it
        for resource in builtin_resources():
            self._by_gvr[(resource.group, resource.version, resource.plural)] = resource

    def get(self, group: str, version: str, plural: str) -> Resource | None:
        return self._by_gvr.get((group, version, plural))

    def all(self) -> list[Resource]:
        with self._lock:
            return list(self._by_gvr.values())

    def storage(self, group: str, plural: str) -> Resource | None:
        """The resource entry for the storage version of group/plural."""
        for resource in self.all():
            if resource.key == (group, plural) and resource.version == resource.storage_version:
                return resource
        return None

    def by_kind(self, group: str, kind: str) -> Resource | None:
        for resource in self.all():
            if resource.group == group and resource.kind == kind:
                return resource
        return None

    def replace_group_resource(self, group: str, plural: str, entries: list[Resource]) -> None:
        """Install or reinstall (empty `entries`: remove) every version of a CRD's resource."""
        with self._lock:
            for key in [k for k in self._by_gvr if k[0] == group and k[2] == plural]:
                del self._by_gvr[key]
            for resource in entries:
                self._by_gvr[(resource.group, resource.version, resource.plural)] = resource
            self.generation += 1

    def groups(self) -> dict[str, list[str]]:
        """group -> served versions, preferred first (legacy core group excluded)."""
        out: dict[str, list[str]] = {}
        for resource in self.all():
            if resource.group:
                versions = out.setdefault(resource.group, [])
                if resource.version not in versions:
                    versions.append(resource.version)
        for group, versions in out.items():
            versions.sort(key=_version_priority)
            out[group] = versions
        return out


def _version_priority(version: str) -> tuple[int, int, int]:
    """Kubernetes version ordering: GA > beta > alpha, higher numbers first."""
    import re

    match = re.fullmatch(r"v(\d+)(?:(alpha|beta)(\d+))?", version)
    if not match:
        return (3, 0, 0)
    major = int(match.group(1))
    stage = {"alpha": 2, "beta": 1, None: 0}[match.group(2)]
    minor = int(match.group(3) or 0)
    return (stage, -major, -minor)
