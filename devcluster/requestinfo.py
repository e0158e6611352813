"""What a request is about, parsed from its path the way the real server's RequestInfo does:
verb, API group/version, resource, subresource, namespace and name.
"""

from __future__ import annotations

from dataclasses import dataclass

from devcluster.selectors import name_from_field_selector

_NAMESPACE_SUBRESOURCES = {"status", "finalize"}
_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass
class RequestInfo:
    """A resource request (`is_resource`) or a non-resource one such as /healthz."""

    path: str
    verb: str
    is_resource: bool = False
    group: str = ""
    version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    # True when the path is a GV discovery document (/api/v1, /apis/g/v).
    is_discovery: bool = False

    @property
    def resource_path(self) -> str:
        """`pods` or `pods/log`, as RBAC rules spell it."""
        return f"{self.resource}/{self.subresource}" if self.subresource else self.resource


def parse(method: str, path: str, query: dict[str, str]) -> RequestInfo:
    """Parse a request path; anything not under /api or /apis is a non-resource request."""
    parts = [p for p in path.split("/") if p]
    lowered = method.lower() if method != "HEAD" else "get"
    if not parts or parts[0] not in ("api", "apis"):
        return RequestInfo(path=path, verb=lowered)
    if parts[0] == "api":
        if len(parts) < 2:
            return RequestInfo(path=path, verb=lowered)
        group, version, rest = "", parts[1], parts[2:]
    else:
        if len(parts) < 3:
            return RequestInfo(path=path, verb=lowered)
        group, version, rest = parts[1], parts[2], parts[3:]
    if not rest:
        return RequestInfo(path=path, verb=lowered, group=group, version=version, is_discovery=True)
    info = RequestInfo(path=path, verb="", is_resource=True, group=group, version=version)
    watch_path = False
    if rest[0] == "watch":  # deprecated /watch/ path prefix, still used by old clients
        watch_path = True
        rest = rest[1:]
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        info.namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    info.resource = rest[0] if rest else ""
    if len(rest) > 1:
        info.name = rest[1]
    if len(rest) > 2:
        info.subresource = rest[2]
    if info.resource == "namespaces" and info.namespace and not info.name:
        info.name = info.namespace
    if info.resource == "namespaces":
        info.namespace = info.name if info.name else ""
        # A namespace object is cluster-scoped; RBAC still sees its name as the namespace.
    if method in ("GET", "HEAD"):
        watching = watch_path or query.get("watch") in ("1", "true", "True")
        if info.name:
            info.verb = "watch" if watching else "get"
        else:
            info.verb = "watch" if watching else "list"
            info.name = name_from_field_selector(query.get("fieldSelector"))
    elif method == "DELETE" and not info.name:
        info.verb = "deletecollection"
    else:
        info.verb = _VERBS.get(method, method.lower())
    return info
