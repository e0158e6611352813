"""`as=Table` responses: the columns `kubectl get` prints, for built-ins and CRDs."""

from __future__ import annotations

import datetime
import json
from collections.abc import Callable
from typing import Any

from devcluster import jsonpath
from devcluster.resources import Resource

Obj = dict[str, Any]
_NAME = {
    "name": "Name",
    "type": "string",
    "format": "name",
    "priority": 0,
    "description": "Name must be unique within a namespace.",
}
_AGE = {
    "name": "Age",
    "type": "string",
    "format": "",
    "priority": 0,
    "description": "CreationTimestamp is a timestamp representing the server time when "
    "this object was created.",
}


def human_age(timestamp: str | None, now: datetime.datetime | None = None) -> str:
    """`5s`, `3m20s`, `2d4h` — the same rounding kubectl uses for AGE."""
    if not timestamp:
        return "<unknown>"
    created = datetime.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    now = now or datetime.datetime.now(datetime.UTC)
    seconds = max(0, int((now - created).total_seconds()))
    if seconds < 120:
        return f"{seconds}s"
    minutes = seconds // 60
    if minutes < 10:
        return f"{minutes}m{seconds % 60}s" if seconds % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h{minutes % 60}m" if hours < 8 and minutes % 60 else f"{hours}h"
    days = hours // 24
    if days < 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    return f"{days}d" if days < 365 * 2 else f"{days // 365}y"


def _col(name: str, kind: str = "string", priority: int = 0, description: str = "") -> Obj:
    return {
        "name": name,
        "type": kind,
        "format": "",
        "priority": priority,
        "description": description,
    }


def _pod_cells(pod: Obj) -> list[Any]:
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    containers = spec.get("containers") or []
    statuses = status.get("containerStatuses") or []
    ready = sum(1 for s in statuses if s.get("ready"))
    restarts = sum(int(s.get("restartCount") or 0) for s in statuses)
    reason = status.get("reason") or status.get("phase") or "Pending"
    for container_status in statuses:
        state = container_status.get("state") or {}
        if "waiting" in state and state["waiting"].get("reason"):
            reason = state["waiting"]["reason"]
        elif "terminated" in state:
            terminated = state["terminated"]
            reason = terminated.get("reason") or (
                f"Signal:{terminated['signal']}"
                if terminated.get("signal")
                else f"ExitCode:{terminated.get('exitCode')}"
            )
    if pod["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return [
        f"{ready}/{len(containers)}",
        reason,
        restarts,
        human_age(pod["metadata"].get("creationTimestamp")),
        status.get("podIP") or "<none>",
        spec.get("nodeName") or "<none>",
    ]


def _node_cells(node: Obj) -> list[Any]:
    conditions = (node.get("status") or {}).get("conditions") or []
    ready = next((c for c in conditions if c.get("type") == "Ready"), None)
    status = "Ready" if ready and ready.get("status") == "True" else "NotReady"
    if (node.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    roles = sorted(
        k.split("/", 1)[1]
        for k in node["metadata"].get("labels") or {}
        if k.startswith("node-role.kubernetes.io/")
    )
    version = ((node.get("status") or {}).get("nodeInfo") or {}).get("kubeletVersion", "")
    return [
        status,
        ",".join(roles) or "<none>",
        human_age(node["metadata"].get("creationTimestamp")),
        version,
    ]


def _deployment_cells(obj: Obj) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [
        f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 1)}",
        status.get("updatedReplicas", 0),
        status.get("availableReplicas", 0),
        human_age(obj["metadata"].get("creationTimestamp")),
    ]


def _service_cells(obj: Obj) -> list[Any]:
    spec = obj.get("spec") or {}
    ports = ",".join(f"{p.get('port')}/{p.get('protocol', 'TCP')}" for p in spec.get("ports") or [])
    return [
        spec.get("type", "ClusterIP"),
        spec.get("clusterIP") or "<none>",
        "<none>",
        ports or "<none>",
        human_age(obj["metadata"].get("creationTimestamp")),
    ]


def _event_cells(obj: Obj) -> list[Any]:
    involved = obj.get("involvedObject") or obj.get("regarding") or {}
    last = (
        obj.get("lastTimestamp") or obj.get("eventTime") or obj["metadata"].get("creationTimestamp")
    )
    return [
        human_age(last),
        obj.get("type", ""),
        obj.get("reason", ""),
        f"{(involved.get('kind') or '').lower()}/{involved.get('name', '')}",
        obj.get("message") or obj.get("note") or "",
    ]


def _age(obj: Obj) -> str:
    return human_age(obj["metadata"].get("creationTimestamp"))


def _selector_text(selector: Obj | None) -> str:
    labels = (selector or {}).get("matchLabels") or {}
    text = ",".join(f"{k}={v}" for k, v in labels.items())
    return text or ("<none>" if not (selector or {}).get("matchExpressions") else "...")


def _pdb_cells(obj: Obj) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    return [
        str(spec.get("minAvailable", "N/A")),
        str(spec.get("maxUnavailable", "N/A")),
        status.get("disruptionsAllowed", 0),
        _age(obj),
    ]


def _hpa_cells(obj: Obj) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    target = spec.get("scaleTargetRef") or {}
    return [
        f"{target.get('kind', '')}/{target.get('name', '')}",
        "<unknown>",
        spec.get("minReplicas", 1),
        spec.get("maxReplicas", 0),
        status.get("currentReplicas", 0),
        _age(obj),
    ]


def _quota_cells(obj: Obj) -> list[Any]:
    status = obj.get("status") or {}
    hard, used = status.get("hard") or {}, status.get("used") or {}
    pairs = [f"{k}: {used.get(k, '0')}/{v}" for k, v in sorted(hard.items())]
    requests = ", ".join(p for p in pairs if not p.startswith("limits."))
    limits = ", ".join(p for p in pairs if p.startswith("limits."))
    return [_age(obj), requests, limits]


def _job_cells(obj: Obj) -> list[Any]:
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    conditions = {c.get("type"): c.get("status") for c in status.get("conditions") or []}
    state = (
        "Complete"
        if conditions.get("Complete") == "True"
        else ("Failed" if conditions.get("Failed") == "True" else "Running")
    )
    return [state, f"{status.get('succeeded', 0)}/{spec.get('completions', 1)}", "", _age(obj)]


_BUILTIN: dict[tuple[str, str], tuple[list[Obj], Callable[[Obj], list[Any]]]] = {
    ("", "pods"): (
        [
            _col("Ready"),
            _col("Status"),
            _col("Restarts", "string"),
            _AGE,
            _col("IP", priority=1),
            _col("Node", priority=1),
        ],
        _pod_cells,
    ),
    ("", "nodes"): ([_col("Status"), _col("Roles"), _AGE, _col("Version")], _node_cells),
    ("", "namespaces"): (
        [_col("Status"), _AGE],
        lambda o: [
            (o.get("status") or {}).get("phase", "Active"),
            human_age(o["metadata"].get("creationTimestamp")),
        ],
    ),
    ("", "configmaps"): (
        [_col("Data", "integer"), _AGE],
        lambda o: [
            len(o.get("data") or {}) + len(o.get("binaryData") or {}),
            human_age(o["metadata"].get("creationTimestamp")),
        ],
    ),
    ("", "secrets"): (
        [_col("Type"), _col("Data", "integer"), _AGE],
        lambda o: [
            o.get("type", "Opaque"),
            len(o.get("data") or {}),
            human_age(o["metadata"].get("creationTimestamp")),
        ],
    ),
    ("", "services"): (
        [_col("Type"), _col("Cluster-IP"), _col("External-IP"), _col("Port(s)"), _AGE],
        _service_cells,
    ),
    ("apps", "deployments"): (
        [_col("Ready"), _col("Up-to-date", "integer"), _col("Available", "integer"), _AGE],
        _deployment_cells,
    ),
    ("", "events"): (
        [_col("Last Seen"), _col("Type"), _col("Reason"), _col("Object"), _col("Message")],
        _event_cells,
    ),
    ("", "serviceaccounts"): (
        [_col("Secrets", "integer"), _AGE],
        lambda o: [len(o.get("secrets") or []), _age(o)],
    ),
    ("", "resourcequotas"): ([_AGE, _col("Request"), _col("Limit")], _quota_cells),
    ("policy", "poddisruptionbudgets"): (
        [
            _col("Min Available"),
            _col("Max Unavailable"),
            _col("Allowed Disruptions", "integer"),
            _AGE,
        ],
        _pdb_cells,
    ),
    ("autoscaling", "horizontalpodautoscalers"): (
        [
            _col("Reference"),
            _col("Targets"),
            _col("MinPods", "integer"),
            _col("MaxPods", "integer"),
            _col("Replicas", "integer"),
            _AGE,
        ],
        _hpa_cells,
    ),
    ("networking.k8s.io", "networkpolicies"): (
        [_col("Pod-Selector"), _AGE],
        lambda o: [_selector_text((o.get("spec") or {}).get("podSelector")), _age(o)],
    ),
    ("coordination.k8s.io", "leases"): (
        [_col("Holder"), _AGE],
        lambda o: [(o.get("spec") or {}).get("holderIdentity", ""), _age(o)],
    ),
    ("rbac.authorization.k8s.io", "rolebindings"): (
        [_col("Role"), _AGE],
        lambda o: [
            f"{(o.get('roleRef') or {}).get('kind')}/{(o.get('roleRef') or {}).get('name')}",
            _age(o),
        ],
    ),
    ("rbac.authorization.k8s.io", "clusterrolebindings"): (
        [_col("Role"), _AGE],
        lambda o: [
            f"{(o.get('roleRef') or {}).get('kind')}/{(o.get('roleRef') or {}).get('name')}",
            _age(o),
        ],
    ),
    ("rbac.authorization.k8s.io", "roles"): (
        [_col("Created At", "date")],
        lambda o: [o["metadata"].get("creationTimestamp")],
    ),
    ("rbac.authorization.k8s.io", "clusterroles"): (
        [_col("Created At", "date")],
        lambda o: [o["metadata"].get("creationTimestamp")],
    ),
    ("apps", "replicasets"): (
        [_col("Desired", "integer"), _col("Current", "integer"), _col("Ready", "integer"), _AGE],
        lambda o: [
            (o.get("spec") or {}).get("replicas", 1),
            (o.get("status") or {}).get("replicas", 0),
            (o.get("status") or {}).get("readyReplicas", 0),
            _age(o),
        ],
    ),
    ("apps", "statefulsets"): (
        [_col("Ready"), _AGE],
        lambda o: [
            f"{(o.get('status') or {}).get('readyReplicas', 0)}/"
            f"{(o.get('spec') or {}).get('replicas', 1)}",
            _age(o),
        ],
    ),
    ("batch", "jobs"): ([_col("Status"), _col("Completions"), _col("Duration"), _AGE], _job_cells),
    ("apiextensions.k8s.io", "customresourcedefinitions"): (
        [_col("Created At", "date")],
        lambda o: [o["metadata"].get("creationTimestamp")],
    ),
}


def _cell(obj: Obj, column: Obj) -> Any:
    try:
        values = jsonpath.evaluate(obj, column.get("jsonPath", ""))
    except ValueError:
        return None
    if not values:
        return None
    value = (
        values[0]
        if len(values) == 1
        else ",".join(json.dumps(v) if isinstance(v, dict | list) else str(v) for v in values)
    )
    if column.get("type") == "date" and isinstance(value, str):
        return human_age(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return value


def columns_and_cells(resource: Resource) -> tuple[list[Obj], Callable[[Obj], list[Any]]]:
    """The column definitions and the function that makes one row's cells."""
    if resource.is_crd and resource.printer_columns:
        columns = [_NAME] + [
            {
                "name": c["name"],
                "type": c.get("type", "string"),
                "format": c.get("format", ""),
                "description": c.get("description", ""),
                "priority": c.get("priority", 0),
            }
            for c in resource.printer_columns
        ]
        specs = resource.printer_columns

        def crd_cells(obj: Obj) -> list[Any]:
            return [obj["metadata"]["name"]] + [_cell(obj, column) for column in specs]

        return columns, crd_cells
    builtin = _BUILTIN.get(resource.key)
    if builtin is not None:
        extra, make = builtin
        return [_NAME, *extra], lambda obj: [obj["metadata"]["name"], *make(obj)]
    return [_NAME, _AGE], lambda obj: [
        obj["metadata"]["name"],
        human_age(obj["metadata"].get("creationTimestamp")),
    ]


def partial_metadata(obj: Obj) -> Obj:
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"],
    }


def table(
    resource: Resource,
    objects: list[Obj],
    list_meta: Obj | None,
    include_object: str = "Metadata",
    with_columns: bool = True,
) -> Obj:
    """A meta.k8s.io/v1 Table for one object or a list."""
    columns, cells = columns_and_cells(resource)
    rows = []
    for obj in objects:
        row: Obj = {"cells": cells(obj)}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = partial_metadata(obj)
        rows.append(row)
    result: Obj = {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {},
        "rows": rows,
    }
    if with_columns:
        result["columnDefinitions"] = columns
    return result
