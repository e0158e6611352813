"""Kubelet-style pod status from container states (pure)."""

from __future__ import annotations

from devcluster import pod_status
from devcluster.pod_status import RUNNING, TERMINATED, ContainerView, PodView

T0 = 1796300000.0  # 2026-12-02T...; only differences matter
POD = {
    "metadata": {"name": "run", "namespace": "ns", "uid": "u1"},
    "spec": {
        "containers": [
            {
                "name": "main",
                "image": "python:3.12-slim",
                "resources": {
                    "requests": {"cpu": "500m", "memory": "256Mi"},
                    "limits": {"cpu": "500m", "memory": "256Mi"},
                },
            }
        ]
    },
    "status": {
        "phase": "Pending",
        "qosClass": "Guaranteed",
        "conditions": [
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-02T00:00:00Z"}
        ],
    },
}


def view(**container) -> PodView:
    return PodView(
        "127.0.0.1", "127.0.0.1", T0, [ContainerView("main", "python:3.12-slim", **container)]
    )


def test_creating_container_is_pending_with_container_creating():
    patch = pod_status.status_patch(POD, view(), T0)["status"]
    assert patch["phase"] == "Pending"
    assert patch["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    ready = {c["type"]: c for c in patch["conditions"]}
    assert ready["PodScheduled"]["status"] == "True"  # the scheduler's condition is kept
    assert ready["Ready"]["status"] == "False"
    assert ready["Ready"]["message"] == "containers with unready status: [main]"
    assert patch["startTime"] == pod_status.rfc3339(T0)
    assert "qosClass" not in patch


def test_running_container_makes_the_pod_ready():
    patch = pod_status.status_patch(
        POD, view(state=RUNNING, reason=None, started_at=T0 + 1), T0 + 2
    )["status"]
    assert patch["phase"] == "Running"
    status = patch["containerStatuses"][0]
    assert status["state"] == {"running": {"startedAt": pod_status.rfc3339(T0 + 1)}}
    assert status["ready"] is True and status["started"] is True
    assert {c["type"]: c["status"] for c in patch["conditions"]} == {
        "PodScheduled": "True",
        "Initialized": "True",
        "ContainersReady": "True",
        "Ready": "True",
    }


def test_completed_and_failed_containers():
    done = view(
        state=TERMINATED,
        reason="Completed",
        exit_code=0,
        started_at=T0 + 1,
        finished_at=T0 + 3,
        container_id="devcluster://abc",
    )
    patch = pod_status.status_patch(POD, done, T0 + 3)["status"]
    assert patch["phase"] == "Succeeded"
    assert patch["containerStatuses"][0]["state"]["terminated"] == {
        "exitCode": 0,
        "reason": "Completed",
        "startedAt": pod_status.rfc3339(T0 + 1),
        "finishedAt": pod_status.rfc3339(T0 + 3),
        "containerID": "devcluster://abc",
    }
    assert {c["type"]: c.get("reason") for c in patch["conditions"]}["Ready"] == "PodCompleted"
    killed = view(
        state=TERMINATED,
        reason="Error",
        exit_code=143,
        signal=15,
        started_at=T0 + 1,
        finished_at=T0 + 3,
    )
    patch = pod_status.status_patch(POD, killed, T0 + 3)["status"]
    assert patch["phase"] == "Failed"
    assert patch["containerStatuses"][0]["state"]["terminated"]["signal"] == 15


def test_deadline_fails_the_pod_with_the_kubelets_reason():
    failed = view(state=TERMINATED, reason="Error", exit_code=137, signal=9, finished_at=T0 + 5)
    failed.reason, failed.message = "DeadlineExceeded", pod_status.DEADLINE_MESSAGE
    patch = pod_status.status_patch(POD, failed, T0 + 5)["status"]
    assert (patch["phase"], patch["reason"], patch["message"]) == (
        "Failed",
        "DeadlineExceeded",
        "Pod was active on the node longer than the specified deadline",
    )


def test_eviction_adds_a_disruption_condition():
    evicted = view(state=TERMINATED, reason="Error", exit_code=137, finished_at=T0 + 5)
    evicted.reason = "Evicted"
    evicted.message = evicted.disruption = "The node was low on resource: memory. "
    patch = pod_status.status_patch(POD, evicted, T0 + 5)["status"]
    target = next(c for c in patch["conditions"] if c["type"] == "DisruptionTarget")
    assert (target["status"], target["reason"]) == ("True", "TerminationByKubelet")
    assert patch["reason"] == "Evicted"


def test_transition_times_move_only_when_a_condition_flips():
    tracked = view()
    first = pod_status.status_patch(POD, tracked, T0)["status"]["conditions"]
    again = pod_status.status_patch(POD, tracked, T0 + 10)["status"]["conditions"]
    assert first == again
    tracked.containers[0].state = RUNNING
    tracked.containers[0].started_at = T0 + 20
    flipped = pod_status.status_patch(POD, tracked, T0 + 20)["status"]["conditions"]
    ready = next(c for c in flipped if c["type"] == "Ready")
    assert ready["lastTransitionTime"] == pod_status.rfc3339(T0 + 20)


def test_terminated_reason_follows_containerd():
    assert pod_status.terminated_reason(0, False) == "Completed"
    assert pod_status.terminated_reason(1, False) == "Error"
    assert pod_status.terminated_reason(137, True) == "OOMKilled"


def test_qos_class():
    assert pod_status.qos_class(POD) == "Guaranteed"
    assert pod_status.qos_class({"spec": {"containers": [{"name": "c"}]}}) == "BestEffort"
    burstable = {"spec": {"containers": [{"resources": {"requests": {"memory": "1Mi"}}}]}}
    assert pod_status.qos_class(burstable) == "Burstable"


def test_a_failed_pod_turns_failed_only_once_its_containers_stopped():
    stopping = view(state=RUNNING, started_at=T0)
    stopping.reason, stopping.message = "DeadlineExceeded", pod_status.DEADLINE_MESSAGE
    patch = pod_status.status_patch(POD, stopping, T0 + 5)["status"]
    assert (patch["phase"], patch["reason"]) == ("Running", None)
