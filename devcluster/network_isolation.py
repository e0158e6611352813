"""Whether NetworkPolicies cut a pod off from the network (pure).

A devcluster node cannot filter traffic rule by rule; it can only give a pod an empty network
namespace (loopback only). It does so when the policies selecting the pod deny all egress: at
least one of them has `Egress` among its policy types and none of them allows any egress.
"""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def selector_matches(selector: Obj | None, labels: dict[str, str]) -> bool:
    """A LabelSelector against labels; an empty selector matches everything."""
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = expression.get("values") or []
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def _policy_types(policy: Obj) -> set[str]:
    spec = policy.get("spec") or {}
    declared = spec.get("policyTypes")
    if declared:
        return set(declared)
    # Without policyTypes, Ingress always applies and Egress only if egress rules are listed.
    return {"Ingress", "Egress"} if spec.get("egress") else {"Ingress"}


def egress_denied(pod: Obj, policies: list[Obj]) -> bool:
    """True when the pod's egress is isolated and no selecting policy allows any of it."""
    labels = (pod.get("metadata") or {}).get("labels") or {}
    namespace = (pod.get("metadata") or {}).get("namespace")
    isolated = False
    for policy in policies:
        if (policy.get("metadata") or {}).get("namespace") not in (None, namespace):
            continue
        spec = policy.get("spec") or {}
        if not selector_matches(spec.get("podSelector"), labels):
            continue
        if "Egress" in _policy_types(policy):
            isolated = True
            if spec.get("egress"):
                return False  # something is allowed, which an empty namespace would break
    return isolated
