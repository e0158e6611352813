"""Scheduling decisions: filters, the scheduler's failure message, scoring, binding objects."""

from __future__ import annotations

import datetime

import pytest

from devcluster import scheduling
from devcluster.scheduler import binding, unschedulable_patch

NOW = datetime.datetime(2026, 12, 3, 12, 0, 0, tzinfo=datetime.UTC)
BEAT = "2026-12-03T11:59:55Z"


def node(
    name,
    cpu="6",
    memory="8Gi",
    pods="16",
    labels=None,
    taints=None,
    unschedulable=False,
    ready="True",
    beat=BEAT,
):
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
        "spec": {"unschedulable": unschedulable, "taints": taints or []},
        "status": {
            "allocatable": {
                "cpu": cpu,
                "memory": memory,
                "pods": pods,
                "ephemeral-storage": "20Gi",
            },
            "conditions": [{"type": "Ready", "status": ready, "lastHeartbeatTime": beat}],
        },
    }


def pod(
    name="p",
    cpu=None,
    memory=None,
    node_selector=None,
    tolerations=None,
    node_name=None,
    phase="Pending",
    limits_only=False,
):
    resources = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    container = {
        "name": "c",
        "image": "python:3.12-slim",
        "resources": {"limits": resources} if limits_only else {"requests": resources},
    }
    spec = {"containers": [container]}
    if node_selector:
        spec["nodeSelector"] = node_selector
    if tolerations:
        spec["tolerations"] = tolerations
    if node_name:
        spec["nodeName"] = node_name
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "uid": f"uid-{name}",
            "creationTimestamp": "2026-12-03T11:00:00Z",
        },
        "spec": spec,
        "status": {"phase": phase},
    }


def test_message_counts_reasons_per_node_in_the_schedulers_words():
    nodes = [
        node("node-1", unschedulable=True),
        node("node-2", memory="1Gi"),
        node("node-3", memory="1Gi"),
    ]
    decision = scheduling.schedule(pod(memory="2Gi"), nodes, {}, NOW)
    assert decision.node is None
    assert decision.message == (
        "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient memory."
    )


def test_requests_of_bound_pods_and_pod_count_are_subtracted():
    busy = [pod(f"b{i}", cpu="2", node_name="node-1", phase="Running") for i in range(3)]
    decision = scheduling.schedule(pod(cpu="1"), [node("node-1", cpu="6")], {"node-1": busy}, NOW)
    assert decision.message == "0/1 nodes are available: 1 Insufficient cpu."
    crowded = [pod(f"c{i}", node_name="node-1") for i in range(2)]
    decision = scheduling.schedule(pod(), [node("node-1", pods="2")], {"node-1": crowded}, NOW)
    assert decision.message == "0/1 nodes are available: 1 Too many pods."


def test_a_limit_without_a_request_counts_as_the_request():
    assert scheduling.pod_requests(pod(memory="3Gi", limits_only=True))["memory"] == 3 * 2**30
    decision = scheduling.schedule(pod(memory="9Gi", limits_only=True), [node("node-1")], {}, NOW)
    assert decision.node is None


def test_node_selector_and_taints_filter_and_tolerations_admit():
    tainted = node("node-2", taints=[{"key": "dedicated", "value": "runs", "effect": "NoSchedule"}])
    nodes = [node("node-1"), tainted]
    decision = scheduling.schedule(
        pod(node_selector={"kubernetes.io/hostname": "node-2"}), nodes, {}, NOW
    )
    assert decision.message == (
        "0/2 nodes are available: 1 node(s) didn't match Pod's node "
        "affinity/selector, 1 node(s) had untolerated taint "
        "{dedicated: runs}."
    )
    tolerant = pod(
        node_selector={"kubernetes.io/hostname": "node-2"},
        tolerations=[
            {"key": "dedicated", "operator": "Equal", "value": "runs", "effect": "NoSchedule"}
        ],
    )
    assert scheduling.schedule(tolerant, nodes, {}, NOW).node == "node-2"


@pytest.mark.parametrize(
    ("toleration", "tolerated"),
    [
        ({"operator": "Exists"}, True),
        ({"key": "dedicated", "operator": "Exists"}, True),
        ({"key": "dedicated", "value": "other"}, False),
        ({"key": "dedicated", "value": "runs", "effect": "NoExecute"}, False),
    ],
)
def test_toleration_matching(toleration, tolerated):
    taint = {"key": "dedicated", "value": "runs", "effect": "NoSchedule"}
    assert scheduling.tolerates([toleration], taint) is tolerated


def test_not_ready_and_silent_nodes_are_avoided():
    nodes = [node("node-1", ready="False"), node("node-2", beat="2026-12-03T11:58:00Z")]
    decision = scheduling.schedule(pod(), nodes, {}, NOW)
    assert decision.message == (
        "0/2 nodes are available: 1 node(s) had untolerated taint "
        "{node.kubernetes.io/not-ready: }, 1 node(s) had untolerated taint "
        "{node.kubernetes.io/unreachable: }."
    )


def test_no_nodes_at_all():
    assert scheduling.schedule(pod(), [], {}, NOW).message == "no nodes available to schedule pods"


def test_least_allocated_node_wins_so_runs_spread():
    nodes = [node("node-1"), node("node-2")]
    bound = {"node-1": [pod("x", cpu="1", memory="1Gi", node_name="node-1")]}
    assert scheduling.schedule(pod(cpu="500m", memory="256Mi"), nodes, bound, NOW).node == "node-2"


def test_only_live_unbound_pods_of_the_default_scheduler_want_scheduling():
    assert scheduling.wants_scheduling(pod())
    assert not scheduling.wants_scheduling(pod(node_name="node-1"))
    assert not scheduling.wants_scheduling(pod(phase="Failed"))
    other = pod()
    other["spec"]["schedulerName"] = "someone-else"
    assert not scheduling.wants_scheduling(other)
    deleting = pod()
    deleting["metadata"]["deletionTimestamp"] = "2026-12-03T12:00:00Z"
    assert not scheduling.wants_scheduling(deleting)


def test_unschedulable_patch_is_written_once_per_message():
    patch = unschedulable_patch(
        pod(), "0/1 nodes are available: 1 Too many pods.", "2026-12-03T12:00:00Z"
    )
    assert patch == {
        "status": {
            "phase": "Pending",
            "conditions": [
                {
                    "type": "PodScheduled",
                    "status": "False",
                    "reason": "Unschedulable",
                    "message": "0/1 nodes are available: 1 Too many pods.",
                    "lastProbeTime": None,
                    "lastTransitionTime": "2026-12-03T12:00:00Z",
                }
            ],
        }
    }
    recorded = pod()
    recorded["status"].update(patch["status"])
    assert (
        unschedulable_patch(
            recorded, "0/1 nodes are available: 1 Too many pods.", "2026-12-03T12:00:09Z"
        )
        is None
    )
    changed = unschedulable_patch(
        recorded, "0/1 nodes are available: 1 Insufficient cpu.", "2026-12-03T12:00:09Z"
    )
    assert changed is not None
    # Still unschedulable: the transition time stays where the condition first turned False.
    assert changed["status"]["conditions"][0]["lastTransitionTime"] == "2026-12-03T12:00:00Z"


def test_binding_object():
    assert binding(pod("run-1"), "node-3") == {
        "apiVersion": "v1",
        "kind": "Binding",
        "metadata": {"name": "run-1", "namespace": "ns", "uid": "uid-run-1"},
        "target": {"apiVersion": "v1", "kind": "Node", "name": "node-3"},
    }
