"""Pod status the way a kubelet computes it, from what the node knows about its containers.

Pure: no API calls, no clock reads except through the arguments. The node agent keeps one
`PodView` per pod and sends `status_patch(pod, view)` to `pods/status`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

WAITING, RUNNING, TERMINATED = "waiting", "running", "terminated"
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


def rfc3339(epoch: float) -> str:
    """Seconds since the epoch as the API's second-precision timestamp."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass
class ContainerView:
    """What the node knows about one container."""

    name: str
    image: str
    state: str = WAITING
    reason: str = "ContainerCreating"
    message: str | None = None
    started_at: float | None = None
    finished_at: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    container_id: str = ""
    image_id: str = ""


@dataclass
class PodView:
    """What the node knows about one pod."""

    host_ip: str
    pod_ip: str
    start_time: float
    containers: list[ContainerView]
    reason: str | None = None  # DeadlineExceeded, Evicted: the pod failed as a whole
    message: str | None = None
    disruption: str | None = None  # message of a DisruptionTarget condition (eviction)
    init_containers: list[ContainerView] = field(default_factory=list)  # run first, in order
    # condition type -> (status, when it last flipped), so transition times stay put
    transitions: dict[str, tuple[bool, float]] = field(default_factory=dict)


def phase(view: PodView) -> str:
    """Pending, Running, Succeeded or Failed, as the kubelet decides for restartPolicy Never.

    A pod failed as a whole (deadline, eviction) turns Failed only once no container runs any
    more, as kubelets do since 1.27, so a terminal phase always means a complete log.
    """
    states = [c.state for c in view.containers]
    init_running = any(c.state == RUNNING for c in view.init_containers)
    if view.reason:
        return "Running" if RUNNING in states or init_running else "Failed"
    if init_failed(view):
        return "Failed"
    if not initialized(view):
        return "Pending"
    if any(s == WAITING for s in states):
        return "Pending"
    if any(s == RUNNING for s in states):
        return "Running"
    if all(c.exit_code == 0 for c in view.containers):
        return "Succeeded"
    return "Failed"


def initialized(view: PodView) -> bool:
    """Whether every init container has completed successfully."""
    return all(c.state == TERMINATED and c.exit_code == 0 for c in view.init_containers)


def init_failed(view: PodView) -> bool:
    """Whether an init container failed (with restartPolicy Never the pod fails)."""
    return any(c.state == TERMINATED and c.exit_code != 0 for c in view.init_containers)


def container_status(container: ContainerView) -> dict[str, Any]:
    """One entry of `status.containerStatuses`."""
    state: dict[str, Any]
    if container.state == WAITING:
        waiting: dict[str, Any] = {"reason": container.reason}
        if container.message:
            waiting["message"] = container.message
        state = {"waiting": waiting}
    elif container.state == RUNNING:
        state = {"running": {"startedAt": rfc3339(container.started_at or 0)}}
    else:
        terminated: dict[str, Any] = {
            "exitCode": container.exit_code,
            "reason": container.reason,
            "startedAt": rfc3339(container.started_at or container.finished_at or 0),
            "finishedAt": rfc3339(container.finished_at or 0),
        }
        if container.signal:
            terminated["signal"] = container.signal
        if container.message:
            terminated["message"] = container.message
        if container.container_id:
            terminated["containerID"] = container.container_id
        state = {"terminated": terminated}
    status: dict[str, Any] = {
        "name": container.name,
        "state": state,
        "lastState": {},
        "ready": container.state == RUNNING,
        "restartCount": 0,
        "image": container.image,
        "imageID": container.image_id,
        "started": container.state == RUNNING,
    }
    if container.container_id:
        status["containerID"] = container.container_id
    return status


def terminated_reason(exit_code: int, oom_killed: bool) -> str:
    """Completed, Error or OOMKilled, as containerd reports a container's end."""
    if oom_killed:
        return "OOMKilled"
    return "Completed" if exit_code == 0 else "Error"


def _condition(
    kind: str, ok: bool, since: float, reason: str | None = None, message: str | None = None
) -> dict[str, Any]:
    condition: dict[str, Any] = {
        "type": kind,
        "status": "True" if ok else "False",
        "lastProbeTime": None,
        "lastTransitionTime": rfc3339(since),
    }
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def conditions(pod: dict[str, Any], view: PodView, now: float) -> list[dict[str, Any]]:
    """PodScheduled (kept from the scheduler), Initialized, ContainersReady, Ready, and
    DisruptionTarget for evictions; transition times move only when a status flips."""
    current = phase(view)
    unready = [c.name for c in view.containers if c.state != RUNNING]
    ready = not unready and current == "Running"
    if current == "Succeeded":
        reason, message = "PodCompleted", None
    elif ready:
        reason, message = None, None
    else:
        reason = "ContainersNotReady" if current != "Failed" or unready else "PodFailed"
        message = f"containers with unready status: [{' '.join(unready)}]" if unready else None

    def since(kind: str, ok: bool) -> float:
        previous = view.transitions.get(kind)
        if previous is None or previous[0] != ok:
            view.transitions[kind] = (ok, now)
        return view.transitions[kind][1]

    existing = {c.get("type"): c for c in (pod.get("status") or {}).get("conditions") or []}
    result = []
    scheduled = existing.get("PodScheduled")
    if scheduled and scheduled.get("status") == "True":
        result.append(scheduled)
    else:
        result.append(_condition("PodScheduled", True, since("PodScheduled", True)))
    if view.disruption:
        result.append(
            _condition(
                "DisruptionTarget",
                True,
                since("DisruptionTarget", True),
                "TerminationByKubelet",
                view.disruption,
            )
        )
    incomplete = [
        c.name for c in view.init_containers if not (c.state == TERMINATED and c.exit_code == 0)
    ]
    result.append(
        _condition(
            "Initialized",
            not incomplete,
            since("Initialized", not incomplete),
            "ContainersNotInitialized" if incomplete else None,
            f"containers with incomplete status: [{' '.join(incomplete)}]" if incomplete else None,
        )
    )
    result.append(
        _condition("ContainersReady", ready, since("ContainersReady", ready), reason, message)
    )
    result.append(_condition("Ready", ready, since("Ready", ready), reason, message))
    return result


def status_patch(pod: dict[str, Any], view: PodView, now: float) -> dict[str, Any]:
    """A merge patch for `pods/status` that states everything the node owns."""
    status: dict[str, Any] = {
        "phase": phase(view),
        "conditions": conditions(pod, view, now),
        "hostIP": view.host_ip,
        "hostIPs": [{"ip": view.host_ip}],
        "podIP": view.pod_ip,
        "podIPs": [{"ip": view.pod_ip}],
        "startTime": rfc3339(view.start_time),
        "containerStatuses": [container_status(c) for c in view.containers],
    }
    if view.init_containers:
        status["initContainerStatuses"] = [container_status(c) for c in view.init_containers]
    terminal = status["phase"] in ("Succeeded", "Failed")
    status["reason"] = view.reason if terminal else None
    status["message"] = view.message if terminal else None
    if "qosClass" not in (pod.get("status") or {}):
        status["qosClass"] = qos_class(pod)
    return {"status": status}


def qos_class(pod: dict[str, Any]) -> str:
    """Guaranteed, Burstable or BestEffort from the containers' requests and limits."""
    containers = (pod.get("spec") or {}).get("containers") or []
    any_set = False
    guaranteed = True
    for container in containers:
        resources = container.get("resources") or {}
        requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
        if requests or limits:
            any_set = True
        for name in ("cpu", "memory"):
            if name not in limits or requests.get(name, limits[name]) != limits[name]:
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"
