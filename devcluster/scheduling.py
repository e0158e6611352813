"""Scheduling decisions, as kube-scheduler's default filter and score plugins make them.

Pure: given a pod, the nodes and the non-terminated pods already bound to each node, say where
the pod goes, or why it cannot go anywhere in the scheduler's own words
(`0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient memory.`).
"""

from __future__ import annotations

import datetime
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from devcluster import quantity

Obj = dict[str, Any]
RESOURCES = ("cpu", "memory", "ephemeral-storage")
UNSCHEDULABLE_TAINT = "node.kubernetes.io/unschedulable"
NOT_READY_TAINT = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT = "node.kubernetes.io/unreachable"
# Without a heartbeat for this long a node counts as unreachable (node-monitor-grace-period).
NODE_GRACE_SECONDS = 40.0


@dataclass(frozen=True)
class Decision:
    """Where a pod goes (`node`), or why it cannot be placed (`message`)."""

    node: str | None
    message: str = ""


def _quantity(value: Any) -> Fraction:
    try:
        return quantity.parse(value)
    except (ValueError, TypeError):
        return Fraction(0)


def pod_requests(pod: Obj) -> dict[str, Fraction]:
    """What the pod asks for: sum over containers (a limit without a request counts as the
    request, as API defaulting makes it), at least any init container's, plus overhead."""
    spec = pod.get("spec") or {}

    def container_requests(container: Obj) -> dict[str, Fraction]:
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        return {name: _quantity(requests.get(name, limits.get(name, 0))) for name in RESOURCES}

    total = dict.fromkeys(RESOURCES, Fraction(0))
    for container in spec.get("containers") or []:
        for name, value in container_requests(container).items():
            total[name] += value
    for container in spec.get("initContainers") or []:
        for name, value in container_requests(container).items():
            total[name] = max(total[name], value)
    for name, value in (spec.get("overhead") or {}).items():
        if name in total:
            total[name] += _quantity(value)
    return total


def tolerates(tolerations: list[Obj], taint: Obj) -> bool:
    """Whether one of the tolerations matches the taint (key, operator, value, effect)."""
    for toleration in tolerations:
        effect = toleration.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        key = toleration.get("key")
        operator = toleration.get("operator") or "Equal"
        if not key:
            if operator == "Exists":
                return True
            continue
        if key != taint.get("key"):
            continue
        if operator == "Exists" or (toleration.get("value") or "") == (taint.get("value") or ""):
            return True
    return False


def _match_expression(labels: dict[str, str], expression: Obj) -> bool:
    key, operator = expression.get("key", ""), expression.get("operator", "")
    values = expression.get("values") or []
    if operator == "In":
        return labels.get(key) in values
    if operator == "NotIn":
        return labels.get(key) not in values
    if operator == "Exists":
        return key in labels
    if operator == "DoesNotExist":
        return key not in labels
    if operator in ("Gt", "Lt") and key in labels and values:
        try:
            have, want = int(labels[key]), int(values[0])
        except ValueError:
            return False
        return have > want if operator == "Gt" else have < want
    return False


def matches_node_selection(pod: Obj, node: Obj) -> bool:
    """nodeSelector and required node affinity (NodeAffinity plugin)."""
    spec = pod.get("spec") or {}
    labels = (node.get("metadata") or {}).get("labels") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    fields = {"metadata.name": (node.get("metadata") or {}).get("name", "")}
    for term in terms:
        expressions_ok = all(
            _match_expression(labels, e) for e in term.get("matchExpressions") or []
        )
        fields_ok = all(_match_expression(fields, e) for e in term.get("matchFields") or [])
        if (
            (term.get("matchExpressions") or term.get("matchFields"))
            and expressions_ok
            and fields_ok
        ):
            return True
    return False


def _heartbeat_age(node: Obj, now: datetime.datetime) -> float | None:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("lastHeartbeatTime"):
            beat = datetime.datetime.strptime(
                condition["lastHeartbeatTime"], "%Y-%m-%dT%H:%M:%SZ"
            ).replace(tzinfo=datetime.UTC)
            return (now - beat).total_seconds()
    return None


def effective_taints(node: Obj, now: datetime.datetime) -> list[Obj]:
    """The node's taints plus those the node lifecycle controller would add for a node that is
    cordoned, not ready, or silent for longer than the grace period."""
    spec = node.get("spec") or {}
    taints = list(spec.get("taints") or [])
    keys = {t.get("key") for t in taints}

    def add(key: str) -> None:
        if key not in keys:
            taints.append({"key": key, "effect": "NoSchedule"})

    ready = next(
        (c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"),
        None,
    )
    age = _heartbeat_age(node, now)
    if (
        ready is None
        or ready.get("status") == "Unknown"
        or (age is not None and age > NODE_GRACE_SECONDS)
    ):
        add(UNREACHABLE_TAINT)
    elif ready.get("status") != "True":
        add(NOT_READY_TAINT)
    return taints


def filter_node(pod: Obj, node: Obj, bound: list[Obj], now: datetime.datetime) -> list[str]:
    """Why the pod cannot go on this node, in the scheduler's words; empty if it can."""
    spec = pod.get("spec") or {}
    tolerations = spec.get("tolerations") or []
    # NodeUnschedulable
    if (node.get("spec") or {}).get("unschedulable") and not tolerates(
        tolerations, {"key": UNSCHEDULABLE_TAINT, "effect": "NoSchedule"}
    ):
        return ["node(s) were unschedulable"]
    # TaintToleration: the first untolerated NoSchedule/NoExecute taint is named.
    for taint in effective_taints(node, now):
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return [
                f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value') or ''}}}"
            ]
    # NodeAffinity
    if not matches_node_selection(pod, node):
        return ["node(s) didn't match Pod's node affinity/selector"]
    # NodeResourcesFit: every shortage is named.
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    reasons = []
    if len(bound) + 1 > int(_quantity(allocatable.get("pods", 110))):
        reasons.append("Too many pods")
    wanted = pod_requests(pod)
    used = dict.fromkeys(RESOURCES, Fraction(0))
    for other in bound:
        for name, value in pod_requests(other).items():
            used[name] += value
    for name in RESOURCES:
        if wanted[name] and wanted[name] > _quantity(allocatable.get(name, 0)) - used[name]:
            reasons.append(f"Insufficient {name}")
    return reasons


def _score(node: Obj, bound: list[Obj], pod: Obj) -> tuple[Fraction, int]:
    """LeastAllocated over cpu and memory, then fewer pods (spreads runs across nodes)."""
    allocatable = (node.get("status") or {}).get("allocatable") or {}
    free = Fraction(0)
    wanted = pod_requests(pod)
    for name in ("cpu", "memory"):
        capacity = _quantity(allocatable.get(name, 0))
        if capacity <= 0:
            continue
        used = sum((pod_requests(p)[name] for p in bound), Fraction(0)) + wanted[name]
        free += (capacity - used) / capacity
    return free, -len(bound)


def fit_error(total: int, reasons: Counter[str]) -> str:
    """`0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient memory.`"""
    if total == 0:
        return "no nodes available to schedule pods"
    parts = sorted(f"{count} {reason}" for reason, count in reasons.items())
    return f"0/{total} nodes are available: {', '.join(parts)}."


def schedule(
    pod: Obj,
    nodes: list[Obj],
    bound_by_node: dict[str, list[Obj]],
    now: datetime.datetime | None = None,
) -> Decision:
    """Pick the best feasible node for `pod`, or explain why there is none."""
    now = now or datetime.datetime.now(datetime.UTC)
    reasons: Counter[str] = Counter()
    feasible = []
    for node in sorted(nodes, key=lambda n: n["metadata"]["name"]):
        name = node["metadata"]["name"]
        bound = bound_by_node.get(name, [])
        failures = filter_node(pod, node, bound, now)
        if failures:
            reasons.update(failures)
        else:
            feasible.append((node, bound))
    if not feasible:
        return Decision(None, fit_error(len(nodes), reasons))
    best = max(feasible, key=lambda item: _score(item[0], item[1], pod))
    return Decision(best[0]["metadata"]["name"])


def is_terminated(pod: Obj) -> bool:
    """Succeeded or Failed pods no longer hold resources on their node."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def wants_scheduling(pod: Obj, scheduler_name: str = "default-scheduler") -> bool:
    """An unbound, live pod for this scheduler."""
    spec = pod.get("spec") or {}
    meta = pod.get("metadata") or {}
    return (
        not spec.get("nodeName")
        and not meta.get("deletionTimestamp")
        and not is_terminated(pod)
        and not spec.get("schedulingGates")
        and (spec.get("schedulerName") or "default-scheduler") == scheduler_name
    )
