"""The devcluster node agent: kubelet and scheduler for a few local nodes, as an API client.

It talks to the API server only over HTTP with a kubeconfig, so it works with any faithful API
server. Run it in a thread of another process (`NodeAgent(...).start()` / `.stop()`) or as its
own process: `python -m devcluster.node_agent --kubeconfig PATH --nodes N`.

It registers Nodes `node-1`..`node-N` (a Lease in kube-node-lease and a status heartbeat every
10 s), schedules pending pods onto any node (`scheduler`), runs the pods bound to its nodes
(`kubelet`), serves container logs on the port announced in each Node's
`status.daemonEndpoints.kubeletEndpoint.Port`, and offers faults: pause (no scheduling, status
or heartbeats until resumed) and node-pressure eviction. Faults are switched by methods, by the
endpoint's `/admin/*` paths, or through the ConfigMap `kube-system/devcluster-node-faults`
(what the API server's `node-agent` fault action writes): `paused: "true"` pauses (any other
value or no ConfigMap resumes), `evict: "ns/pod ns/pod2"` evicts those pods once each.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devcluster import container_logs, cpu_limits, node_objects, quantity
from devcluster.cgroups import CgroupError, LimitedCgroup, locate_own_cgroup
from devcluster.containers import Confinement
from devcluster.kube_client import ApiError, Informer, KubeClient
from devcluster.kubelet import Kubelet, KubeletSettings
from devcluster.node_endpoint import NodeEndpoint
from devcluster.pod_events import EventRecorder
from devcluster.scheduler import Scheduler

log = logging.getLogger(__name__)
Obj = dict[str, Any]
AGENT_CGROUP_PREFIX = "dcnode"
FAULTS_CONFIGMAP = ("kube-system", "devcluster-node-faults")


def default_state_root() -> Path:
    """Outside /tmp on purpose: run pods mount their own /tmp over it, and the interpreter
    links must stay visible to them."""
    if os.geteuid() == 0:
        return Path("/var/lib/devcluster")
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return Path(base) / "devcluster"


@dataclass(frozen=True)
class NodeAgentSettings:
    """Settings of one node agent."""

    nodes: int = 3
    name_prefix: str = "node-"
    resources: node_objects.NodeResources = field(default_factory=node_objects.NodeResources)
    pids_limit: int = 256
    port: int = 0
    host_ip: str = "127.0.0.1"
    state_root: Path | None = None  # pods' volumes and logs
    images_dir: Path | None = None  # interpreter links (default: under the default state root)
    heartbeat_seconds: float = 10.0
    scheduler: bool = True
    image_pull_backoff: float = 10.0
    logs_need_token: bool = False  # see node_endpoint: set once the API server sends one

    def node_names(self) -> list[str]:
        """node-1 .. node-N."""
        return [f"{self.name_prefix}{i + 1}" for i in range(self.nodes)]


def remove_leftover_cgroups() -> int:
    """Remove the cgroups of node agents that are no longer running; how many were removed."""
    try:
        with (
            open("/proc/self/mountinfo", encoding="utf-8") as mountinfo,
            open("/proc/self/cgroup", encoding="utf-8") as own,
        ):
            placement = locate_own_cgroup(mountinfo.read(), own.read())
    except (OSError, CgroupError):
        return 0
    removed = 0
    names = set()
    for directory in {placement.memory_dir, placement.pids_dir}:
        with contextlib.suppress(OSError):
            names.update(
                p.name
                for p in directory.iterdir()
                if p.is_dir() and p.name.startswith(AGENT_CGROUP_PREFIX + "-")
            )
    for name in names:
        pid = name.split("-")[1]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            with contextlib.suppress(CgroupError):
                LimitedCgroup(placement, name, 1, 1).remove()
                removed += 1
    for name in cpu_limits.child_names(AGENT_CGROUP_PREFIX + "-"):
        pid = name.split("-")[1]
        if pid.isdigit() and not os.path.exists(f"/proc/{pid}"):
            cpu_limits.remove_leftover(name)  # empty now: its processes died above
    return removed


def remove_leftover_state(state_root: Path) -> int:
    """Delete the state directories (volumes, logs) of node agents that are no longer running,
    unmounting their tmpfs volumes first; how many were removed."""
    import shutil

    from devcluster import namespaces_linux

    agents = state_root / "agents"
    removed = 0
    with contextlib.suppress(OSError):
        for directory in agents.iterdir():
            pid = directory.name.split("-")[1] if directory.name.count("-") >= 2 else ""
            if (
                not directory.name.startswith(AGENT_CGROUP_PREFIX + "-")
                or not pid.isdigit()
                or os.path.exists(f"/proc/{pid}")
            ):
                continue
            prefix = str(directory) + "/"
            for point, _ in sorted(namespaces_linux.mount_points(), reverse=True):
                if point.startswith(prefix):
                    with contextlib.suppress(OSError):
                        namespaces_linux.unmount(point)
            shutil.rmtree(directory, ignore_errors=True)
            removed += 1
    return removed


class NodeAgent:
    """Kubelet + scheduler for `settings.nodes` nodes; `start()` returns once they are Ready."""

    def __init__(self, kubeconfig: str, settings: NodeAgentSettings | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.settings = settings or NodeAgentSettings()
        self.confinement = Confinement.detect()
        self.agent_id = f"{AGENT_CGROUP_PREFIX}-{os.getpid()}-{secrets.token_hex(3)}"
        root = self.settings.state_root or default_state_root()
        self.state_dir = root / "agents" / self.agent_id
        self.paused = threading.Event()
        self.client: KubeClient | None = None
        self.kubelet: Kubelet | None = None
        self.scheduler: Scheduler | None = None
        self.endpoint: NodeEndpoint | None = None
        self._informers: list[Informer] = []
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None
        self._started_at = time.time()
        self._node_uids: dict[str, str] = {}
        self._evicted_by_configmap: set[str] = set()

    @property
    def node_names(self) -> list[str]:
        """The nodes this agent runs."""
        return self.settings.node_names()

    @property
    def port(self) -> int:
        """The port of the log/admin endpoint."""
        return self.endpoint.port if self.endpoint else 0

    # -- life cycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> None:
        """Register the nodes and start the kubelet, scheduler and endpoint."""
        if not self.confinement.privileged:
            log.warning("CONFINEMENT DEGRADED: %s", self.confinement.reason)
        removed = remove_leftover_cgroups()
        removed += remove_leftover_state(self.state_dir.parents[1])
        if removed:
            log.info(
                "removed %d cgroups and directories left by node agents that are gone", removed
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_dir.chmod(0o711)
        client = self.client = KubeClient(self.kubeconfig)
        memory = int(quantity.parse(self.settings.resources.memory))
        self.kubelet = Kubelet(
            client,
            self.node_names,
            KubeletSettings(
                state_dir=self.state_dir,
                images_dir=self.settings.images_dir or default_state_root() / "images",
                host_ip=self.settings.host_ip,
                pids_limit=self.settings.pids_limit,
                node_memory_bytes=memory,
                node_allocatable=tuple(self.settings.resources.as_dict().items()),
                image_pull_backoff=self.settings.image_pull_backoff,
            ),
            self.confinement,
            self.agent_id,
            paused=self.paused,
        )
        self.kubelet.events = EventRecorder(client, "kubelet")
        self.endpoint = NodeEndpoint(
            self.kubelet.log_target,
            client.token,
            {
                "pause": lambda _: self.pause(),
                "resume": lambda _: self.resume(),
                "evict": lambda args: self.evict(
                    args["namespace"], args["name"], args.get("resource", "memory")
                ),
                "status": lambda _: self.describe(),
            },
            port=self.settings.port,
            logs_need_token=self.settings.logs_need_token,
        )
        self.endpoint.start()
        self._register_nodes()
        pods = Informer(client, "/api/v1/pods", "pods")
        nodes = Informer(client, "/api/v1/nodes", "nodes")
        faults_namespace, faults_name = FAULTS_CONFIGMAP
        faults = Informer(
            client,
            f"/api/v1/namespaces/{faults_namespace}/configmaps",
            "node-faults",
            {"fieldSelector": f"metadata.name={faults_name}"},
        )
        faults.handlers.append(self._faults_changed)
        self._informers = [pods, nodes, faults]
        self.kubelet.pods_informer = pods
        pods.handlers.append(self.kubelet.handle_pod)
        if self.settings.scheduler:
            self.scheduler = Scheduler(client, pods, nodes, self.paused)
            self.scheduler.events = EventRecorder(client, "default-scheduler")
            pods.handlers.append(self.scheduler.handle)
            nodes.handlers.append(self.scheduler.handle)
            self.scheduler.start()
        for informer in self._informers:
            informer.start()
        deadline = time.monotonic() + timeout
        for informer in self._informers:
            if not informer.synced.wait(max(0.1, deadline - time.monotonic())):
                raise RuntimeError(
                    f"the node agent could not list {informer.name} from "
                    f"{client.host} within {timeout:.0f} s"
                )
        self._heartbeat = threading.Thread(
            target=self._heartbeat_loop, name="node-heartbeat", daemon=True
        )
        self._heartbeat.start()
        log.info(
            "node agent %s: nodes %s, endpoint port %d, confinement: %s",
            self.agent_id,
            ", ".join(self.node_names),
            self.port,
            self.confinement.describe(),
        )

    def stop(self) -> None:
        """Stop everything; every pod process of this agent is killed."""
        self._stop.set()
        if self.scheduler is not None:
            self.scheduler.stop()
        for informer in self._informers:
            informer.stop()
        if self.kubelet is not None:
            self.kubelet.stop()
        if self.endpoint is not None:
            self.endpoint.stop()
        for component in (self.kubelet, self.scheduler):
            if component is not None and component.events is not None:
                component.events.stop()
        import shutil

        shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- nodes --------------------------------------------------------------------------------
    def _status(self, name: str) -> Obj:
        return node_objects.node_status(
            name,
            self.settings.resources,
            host_ip=self.settings.host_ip,
            port=self.port,
            now=time.time(),
            started=self._started_at,
            confinement_note=self.confinement.describe(),
            degraded=not self.confinement.privileged,
        )

    def _register_nodes(self) -> None:
        assert self.client is not None
        for name in self.node_names:
            node = node_objects.build_node(
                name, self.confinement.describe(), not self.confinement.privileged
            )
            try:
                created = self.client.create("/api/v1/nodes", node)
            except ApiError as error:
                if error.code != 409:
                    raise
                # Re-registration keeps what admins set (cordon, taints), refreshes the rest.
                created = self.client.merge_patch(
                    f"/api/v1/nodes/{name}", {"metadata": node["metadata"]}
                )
            self._node_uids[name] = created["metadata"].get("uid", "")
            self.client.merge_patch(f"/api/v1/nodes/{name}/status", {"status": self._status(name)})
            self._renew_lease(name)

    def _renew_lease(self, name: str) -> None:
        assert self.client is not None
        path = f"/apis/coordination.k8s.io/v1/namespaces/{node_objects.LEASE_NAMESPACE}/leases"
        now = time.time()
        try:
            self.client.merge_patch(
                f"{path}/{name}",
                {
                    "spec": {
                        "holderIdentity": name,
                        "renewTime": node_objects.micro_time(now),
                        "leaseDurationSeconds": node_objects.LEASE_SECONDS,
                    }
                },
            )
        except ApiError as error:
            if error.code != 404:
                raise
            self.client.create(path, node_objects.build_lease(name, self._node_uids.get(name), now))

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.settings.heartbeat_seconds):
            if self.paused.is_set():
                continue
            for name in self.node_names:
                try:
                    self._renew_lease(name)
                    assert self.client is not None
                    self.client.merge_patch(
                        f"/api/v1/nodes/{name}/status", {"status": self._status(name)}
                    )
                except ApiError as error:
                    if error.code == 404:
                        with contextlib.suppress(Exception):
                            self._register_nodes()  # someone deleted the Node: register again
                    else:
                        log.warning("heartbeat of %s failed: %s", name, error)
                except Exception as error:  # the API server is away; the next beat retries
                    log.warning("heartbeat of %s failed: %s", name, error)

    # -- faults -------------------------------------------------------------------------------
    def pause(self) -> dict[str, Any]:
        """Stop scheduling, status updates and heartbeats (containers keep running)."""
        self.paused.set()
        return self.describe()

    def resume(self) -> dict[str, Any]:
        """Undo `pause`."""
        self.paused.clear()
        if self.scheduler is not None:
            self.scheduler.handle("RESUME", {})
        if self.kubelet is not None:
            self.kubelet.wake_all()
        return self.describe()

    def evict(self, namespace: str, name: str, resource: str = "memory") -> bool:
        """Evict a pod running on this agent's nodes, as under node pressure."""
        assert self.kubelet is not None
        return self.kubelet.evict(namespace, name, resource)

    def _faults_changed(self, kind: str, configmap: Obj) -> None:
        """Apply the fault ConfigMap (see the module docstring for its keys)."""
        if kind == "SYNC":
            return
        data = {} if kind == "DELETED" else (configmap.get("data") or {})
        if data.get("paused", "").lower() == "true":
            if not self.paused.is_set():
                self.pause()
        elif self.paused.is_set():
            self.resume()
        wanted = set(data.get("evict", "").replace(",", " ").split())
        for target in sorted(wanted - self._evicted_by_configmap):
            namespace, _, name = target.partition("/")
            if name and self.evict(namespace, name, data.get("evictResource", "memory")):
                log.info("evicted %s as the fault ConfigMap asks", target)
        self._evicted_by_configmap = wanted

    def describe(self) -> dict[str, Any]:
        """State for the admin endpoint."""
        return {
            "paused": self.paused.is_set(),
            "nodes": self.node_names,
            "port": self.port,
            "confinement": self.confinement.describe(),
            "privileged": self.confinement.privileged,
        }

    def register_fault_actions(self, faults: Any) -> None:
        """Offer `pause-agent`, `resume-agent` and `evict-pod` through an object with
        `register_action(name, callable)` (the API server's fault switchboard)."""
        faults.register_action("pause-agent", lambda _: self.pause())
        faults.register_action("resume-agent", lambda _: self.resume())
        faults.register_action(
            "evict-pod",
            lambda args: self.evict(
                args["namespace"], args["name"], args.get("resource", "memory")
            ),
        )

    # -- in-process log access ------------------------------------------------------------------
    def pod_log(
        self, namespace: str, name: str, container: str, params: Mapping[str, str]
    ) -> bytes | AsyncIterator[bytes] | None:
        """The container log for an API server running in this process: bytes, or an async
        iterator when following a running container; None if there is no log yet."""
        assert self.kubelet is not None
        target = self.kubelet.log_target(namespace, name, container)
        if target is None:
            return None
        options = container_logs.LogOptions.from_query(dict(params))
        path, finished = target
        if not options.follow or finished:
            return container_logs.render(container_logs.parse_records(path.read_bytes()), options)
        kubelet = self.kubelet

        def done() -> bool:
            current = kubelet.log_target(namespace, name, container)
            return current is None or current[1]

        # Ends when the container does, when the agent stops, or when the reader goes away.
        reader_gone = threading.Event()
        agent_stop = self._stop

        def finished() -> bool:
            return done() or reader_gone.is_set() or agent_stop.is_set()

        chunks = container_logs.follow(path, options, finished, reader_gone)

        async def stream() -> AsyncIterator[bytes]:
            try:
                while True:
                    chunk = await asyncio.to_thread(next, chunks, None)
                    if chunk is None:
                        return
                    yield chunk
            finally:
                reader_gone.set()

        return stream()

    def owns_graceful_deletion(self) -> bool:
        """Pods bound to this agent's nodes are removed by the agent (grace period 0)."""
        return True


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devcluster.node_agent",
        description="Kubelet and scheduler for devcluster nodes.",
    )
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--nodes", type=int, default=3)
    parser.add_argument("--name-prefix", default="node-")
    parser.add_argument("--port", type=int, default=0, help="log/admin endpoint port")
    parser.add_argument("--cpu", default="6", help="allocatable cpu per node")
    parser.add_argument("--memory", default="8Gi", help="allocatable memory per node")
    parser.add_argument("--pods", default="16", help="pods per node")
    parser.add_argument("--ephemeral-storage", default="20Gi")
    parser.add_argument("--pids-limit", type=int, default=256, help="pids limit per container")
    parser.add_argument("--state-root", default=None)
    parser.add_argument("--no-scheduler", action="store_true", help="run only the kubelet half")
    parser.add_argument(
        "--logs-need-token",
        action="store_true",
        help="serve container logs only to callers with the kubeconfig's token",
    )
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run until SIGTERM or SIGINT; prints one line with the endpoint port once ready."""
    args = _parse(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    settings = NodeAgentSettings(
        nodes=args.nodes,
        name_prefix=args.name_prefix,
        port=args.port,
        resources=node_objects.NodeResources(
            args.cpu, args.memory, args.pods, args.ephemeral_storage
        ),
        pids_limit=args.pids_limit,
        state_root=Path(args.state_root) if args.state_root else None,
        scheduler=not args.no_scheduler,
        logs_need_token=args.logs_need_token,
    )
    agent = NodeAgent(args.kubeconfig, settings)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        agent.start()
    except Exception as error:
        print(f"error: the node agent could not start: {error}", file=sys.stderr)
        agent.stop()
        return 1
    print(
        f'{{"event": "ready", "port": {agent.port}, "nodes": {len(agent.node_names)}}}', flush=True
    )
    stop.wait()
    agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
