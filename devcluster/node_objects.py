"""Node and Lease objects as a kubelet registers and renews them (pure builders)."""

from __future__ import annotations

import platform
import time
from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]
CONFINEMENT_ANNOTATION = "devcluster.coderun.dev/confinement"
LEASE_NAMESPACE = "kube-node-lease"
LEASE_SECONDS = 40


@dataclass(frozen=True)
class NodeResources:
    """What each node offers the scheduler."""

    cpu: str = "6"
    memory: str = "8Gi"
    pods: str = "16"
    ephemeral_storage: str = "20Gi"

    def as_dict(self) -> dict[str, str]:
        """capacity / allocatable."""
        return {
            "cpu": self.cpu,
            "memory": self.memory,
            "pods": self.pods,
            "ephemeral-storage": self.ephemeral_storage,
        }


def architecture() -> str:
    """The Kubernetes name of this machine's architecture."""
    machine = platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm"}.get(machine, machine)


def rfc3339(epoch: float) -> str:
    """Second-precision API timestamp."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def micro_time(epoch: float) -> str:
    """MicroTime, as Lease renewTime wants it."""
    return (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch)) + f".{int((epoch % 1) * 1e6):06d}Z"
    )


def build_node(name: str, confinement_note: str, degraded: bool) -> Obj:
    """The Node object (without status) a kubelet registers."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": architecture(),
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": architecture(),
                "devcluster.coderun.dev/node": "true",
            },
            "annotations": {
                CONFINEMENT_ANNOTATION: ("rlimits-only: " if degraded else "") + confinement_note
            },
        },
        "spec": {},
    }


def node_status(
    name: str,
    resources: NodeResources,
    *,
    host_ip: str,
    port: int,
    now: float,
    started: float,
    confinement_note: str,
    degraded: bool,
) -> Obj:
    """The node's status: resources, conditions with a fresh heartbeat, endpoint, addresses."""
    since = rfc3339(started)
    beat = rfc3339(now)

    def condition(kind: str, status: str, reason: str, message: str) -> Obj:
        return {
            "type": kind,
            "status": status,
            "reason": reason,
            "message": message,
            "lastHeartbeatTime": beat,
            "lastTransitionTime": since,
        }

    conditions = [
        condition(
            "MemoryPressure",
            "False",
            "KubeletHasSufficientMemory",
            "kubelet has sufficient memory available",
        ),
        condition(
            "DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"
        ),
        condition(
            "PIDPressure",
            "False",
            "KubeletHasSufficientPID",
            "kubelet has sufficient PID available",
        ),
        condition("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]
    if degraded:
        conditions.append(condition("ConfinementDegraded", "True", "NotRoot", confinement_note))
    return {
        "capacity": resources.as_dict(),
        "allocatable": resources.as_dict(),
        "conditions": conditions,
        "addresses": [
            {"type": "InternalIP", "address": host_ip},
            {"type": "Hostname", "address": name},
        ],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        "nodeInfo": {
            "kubeletVersion": "v1.37.0-devcluster",
            "kubeProxyVersion": "",
            "operatingSystem": "linux",
            "architecture": architecture(),
            "containerRuntimeVersion": "devcluster://1",
            "kernelVersion": platform.release(),
            "osImage": "devcluster node agent",
            "machineID": "",
            "systemUUID": "",
            "bootID": "",
        },
    }


def build_lease(name: str, node_uid: str | None, now: float) -> Obj:
    """The node's Lease in kube-node-lease, owned by the Node."""
    lease: Obj = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
        "spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": LEASE_SECONDS,
            "renewTime": micro_time(now),
        },
    }
    if node_uid:
        lease["metadata"]["ownerReferences"] = [
            {"apiVersion": "v1", "kind": "Node", "name": name, "uid": node_uid}
        ]
    return lease
