"""Discovery documents: legacy (/api, /apis, per group-version) and aggregated (apidiscovery v2)."""

from __future__ import annotations

from typing import Any

from devcluster.resources import SUBRESOURCE_KINDS, Registry, Resource

AGGREGATED_TYPE = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
SUBRESOURCE_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "log": ["get"],
    "eviction": ["create"],
    "token": ["create"],
    "binding": ["create"],
    "finalize": ["update"],
    "ephemeralcontainers": ["get", "patch", "update"],
}


def wants_aggregated(accept: str) -> bool:
    return "as=APIGroupDiscoveryList" in accept and "v=v2" in accept


def api_versions(address: str) -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": address}],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    entries = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": entries, "preferredVersion": entries[0]}


def api_group_list(registry: Registry) -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group(g, v) for g, v in sorted(registry.groups().items())],
    }


def api_group(registry: Registry, name: str) -> dict[str, Any] | None:
    versions = registry.groups().get(name)
    if not versions:
        return None
    return {"kind": "APIGroup", "apiVersion": "v1", **_group(name, versions)}


def _resources(registry: Registry, group: str, version: str) -> list[Resource]:
    return sorted(
        (r for r in registry.all() if r.group == group and r.version == version),
        key=lambda r: r.plural,
    )


def resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    resources = _resources(registry, group, version)
    if not resources:
        return None
    out = []
    for r in resources:
        entry: dict[str, Any] = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs,
        }
        if r.short_names:
            entry["shortNames"] = r.short_names
        if r.categories:
            entry["categories"] = r.categories
        out.append(entry)
        for sub in sorted(r.subresources):
            sub_entry: dict[str, Any] = {
                "name": f"{r.plural}/{sub}",
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": SUBRESOURCE_KINDS.get(sub, ("", "", r.kind))[2],
                "verbs": SUBRESOURCE_VERBS.get(sub, ["get"]),
            }
            if sub in SUBRESOURCE_KINDS:
                sub_group, sub_version, _ = SUBRESOURCE_KINDS[sub]
                sub_entry["group"], sub_entry["version"] = sub_group, sub_version
            out.append(sub_entry)
    group_version = f"{group}/{version}" if group else version
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": out,
    }


def _aggregated_resource(r: Resource) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "resource": r.plural,
        "responseKind": {"group": r.group, "version": r.version, "kind": r.kind},
        "scope": "Namespaced" if r.namespaced else "Cluster",
        "singularResource": r.singular,
        "verbs": r.verbs,
    }
    if r.short_names:
        entry["shortNames"] = r.short_names
    if r.categories:
        entry["categories"] = r.categories
    subs = []
    for sub in sorted(r.subresources):
        group, version, kind = SUBRESOURCE_KINDS.get(sub, (r.group, r.version, r.kind))
        subs.append(
            {
                "subresource": sub,
                "responseKind": {"group": group, "version": version, "kind": kind},
                "verbs": SUBRESOURCE_VERBS.get(sub, ["get"]),
            }
        )
    if subs:
        entry["subresources"] = subs
    return entry


def aggregated(registry: Registry, legacy: bool) -> dict[str, Any]:
    """The APIGroupDiscoveryList for /api (legacy=True) or /apis."""
    groups = {"": ["v1"]} if legacy else registry.groups()
    items = []
    for group, versions in sorted(groups.items()):
        entries = [
            {
                "version": v,
                "resources": [_aggregated_resource(r) for r in _resources(registry, group, v)],
                "freshness": "Current",
            }
            for v in versions
        ]
        items.append({"metadata": {"name": group} if group else {}, "versions": entries})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }
