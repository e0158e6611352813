"""RBAC authorization, evaluated as Kubernetes does, deny by default.

Admins (`system:masters`) are allowed everything. Everyone else needs a rule from a
ClusterRoleBinding, or from a RoleBinding in the request's namespace; the decision records
which binding, role and rule index allowed it so the audit log can prove RBAC minimal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from devcluster.auth import AUTHENTICATED, User
from devcluster.requestinfo import RequestInfo
from devcluster.store import Store

RBAC = "rbac.authorization.k8s.io"
# Non-resource paths every authenticated user may read (system:discovery and
# system:public-info-viewer on a real cluster).
_DISCOVERY_PATHS = ("/api", "/apis", "/openapi", "/version")
_PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")
# Self reviews every authenticated user may create (system:basic-user).
_SELF_REVIEWS = {
    ("authorization.k8s.io", "selfsubjectaccessreviews"),
    ("authorization.k8s.io", "selfsubjectrulesreviews"),
    ("authentication.k8s.io", "selfsubjectreviews"),
}


@dataclass(frozen=True)
class Decision:
    """Whether a request is allowed, and by what."""

    allowed: bool
    reason: str = ""
    binding: str = ""  # "ClusterRoleBinding/name" or "RoleBinding/ns/name" or "builtin"
    role: str = ""  # "ClusterRole/name" or "Role/ns/name"
    rule_index: int = -1

    def as_dict(self) -> dict[str, Any]:
        return {
            "binding": self.binding,
            "role": self.role,
            "ruleIndex": self.rule_index,
            "reason": self.reason,
        }


def _matches(values: list[str] | None, wanted: str) -> bool:
    values = values or []
    return "*" in values or wanted in values


def _resource_matches(rule_resources: list[str] | None, resource: str, sub: str) -> bool:
    combined = f"{resource}/{sub}" if sub else resource
    for item in rule_resources or []:
        if item in ("*", combined):
            return True
        if sub and item == f"*/{sub}":
            return True
        if item == f"{resource}/*" and sub:
            return True
    return False


def rule_allows(rule: dict[str, Any], info: RequestInfo) -> bool:
    """One PolicyRule against one request (resourceNames never match create or list)."""
    if not _matches(rule.get("verbs"), info.verb):
        return False
    if not info.is_resource:
        for url in rule.get("nonResourceURLs") or []:
            if url in ("*", info.path) or (url.endswith("*") and info.path.startswith(url[:-1])):
                return True
        return False
    if not _matches(rule.get("apiGroups"), info.group):
        return False
    if not _resource_matches(rule.get("resources"), info.resource, info.subresource):
        return False
    names = rule.get("resourceNames")
    if names:
        return bool(info.name) and info.name in names
    return True


def subject_matches(subject: dict[str, Any], user: User, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user.name
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.service_account == (namespace, subject.get("name"))
    return False


class Authorizer:
    """Evaluates the RBAC objects in the store on every request (they are few)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def authorize(self, user: User, info: RequestInfo) -> Decision:
        if user.is_admin:
            return Decision(True, "system:masters", "builtin", "cluster-admin")
        if AUTHENTICATED in user.groups:
            if not info.is_resource and info.verb in ("get", "head"):
                path = info.path.rstrip("/") or "/"
                if path.startswith(_DISCOVERY_PATHS) or path.startswith(_PUBLIC_PATHS):
                    return Decision(True, "system:discovery", "builtin", "system:discovery")
            if (
                info.is_resource
                and info.verb == "create"
                and ((info.group, info.resource) in _SELF_REVIEWS)
            ):
                return Decision(True, "system:basic-user", "builtin", "system:basic-user")
        for binding in self.store.list((RBAC, "clusterrolebindings"))[0]:
            decision = self._check_binding(binding, "", user, info)
            if decision:
                return decision
        if info.namespace:
            for binding in self.store.list((RBAC, "rolebindings"), info.namespace)[0]:
                decision = self._check_binding(binding, info.namespace, user, info)
                if decision:
                    return decision
        return Decision(False, "no RBAC rule allowed it")

    def _check_binding(
        self, binding: dict[str, Any], namespace: str, user: User, info: RequestInfo
    ) -> Decision | None:
        if not any(subject_matches(s, user, namespace) for s in binding.get("subjects") or []):
            return None
        ref = binding.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole":
            role = self.store.get((RBAC, "clusterroles"), "", ref.get("name", ""))
            role_label = f"ClusterRole/{ref.get('name')}"
        else:
            role = self.store.get((RBAC, "roles"), namespace, ref.get("name", ""))
            role_label = f"Role/{namespace}/{ref.get('name')}"
        if role is None:
            return None
        for index, rule in enumerate(role.get("rules") or []):
            if rule_allows(rule, info):
                kind = "RoleBinding" if namespace else "ClusterRoleBinding"
                where = f"{namespace}/" if namespace else ""
                return Decision(
                    True, "RBAC", f"{kind}/{where}{binding['metadata']['name']}", role_label, index
                )
        return None

    def rules_for(self, user: User, namespace: str) -> list[dict[str, Any]]:
        """Every rule a user holds in a namespace (SelfSubjectRulesReview, `auth can-i`)."""
        rules: list[dict[str, Any]] = []
        sources = [(b, "") for b in self.store.list((RBAC, "clusterrolebindings"))[0]]
        if namespace:
            sources += [
                (b, namespace) for b in self.store.list((RBAC, "rolebindings"), namespace)[0]
            ]
        for binding, ns in sources:
            if any(subject_matches(s, user, ns) for s in binding.get("subjects") or []):
                ref = binding.get("roleRef") or {}
                role = (
                    self.store.get((RBAC, "clusterroles"), "", ref.get("name", ""))
                    if ref.get("kind") == "ClusterRole"
                    else self.store.get((RBAC, "roles"), ns, ref.get("name", ""))
                )
                rules.extend((role or {}).get("rules") or [])
        return rules


def forbidden_message(user: User, info: RequestInfo) -> str:
    """The real server's wording, e.g. `User "x" cannot list resource "pods" in API group ""
    in the namespace "ns"`."""
    if not info.is_resource:
        return f'User "{user.name}" cannot {info.verb} path "{info.path}"'
    scope = f'in the namespace "{info.namespace}"' if info.namespace else "at the cluster scope"
    return (
        f'User "{user.name}" cannot {info.verb} resource "{info.resource_path}" in API '
        f'group "{info.group}" {scope}'
    )
