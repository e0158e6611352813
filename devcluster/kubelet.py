"""The kubelet half of the node agent: runs the pods bound to this agent's nodes.

One `PodWorker` thread per pod drives it from creation to deletion: resolve the image, refuse
bad configurations, start each container confined (`containers`), report status through
`pods/status` (`pod_status`), enforce `activeDeadlineSeconds`, terminate gracefully when the pod
gets a deletionTimestamp (SIGTERM, SIGKILL after the grace period) and then confirm the deletion
with `gracePeriodSeconds=0`, as the real kubelet does. Nothing of a pod outlives it: every
container's whole cgroup is killed and removed when the container ends.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import secrets
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devcluster import network_isolation, pod_config, pod_status
from devcluster.containers import (
    Confinement,
    ContainerStartError,
    ExitInfo,
    RunningContainer,
)
from devcluster.images import ImagePullError, PythonImages, image_environment
from devcluster.kube_client import ApiError, KubeClient
from devcluster.pod_events import EventRecorder
from devcluster.pod_status import RUNNING, TERMINATED, WAITING, ContainerView, PodView
from devcluster.pod_volumes import PodDirectories

log = logging.getLogger(__name__)
Obj = dict[str, Any]


@dataclass(frozen=True)
class KubeletSettings:
    """Node-wide kubelet settings."""

    state_dir: Path
    images_dir: Path  # interpreter links; must stay visible inside containers (not in /tmp)
    host_ip: str = "127.0.0.1"
    pids_limit: int = 256  # per container, like GKE's podPidsLimit
    node_memory_bytes: int = 8 * 1024**3
    node_allocatable: tuple[tuple[str, str], ...] = ()
    image_pull_backoff: float = 10.0  # first back-off; doubles up to 300 s as on a kubelet
    config_retry: float = 2.0  # retry a CreateContainerConfigError (a Secret may appear)
    default_grace_seconds: int = 30


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    moment = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ")
    return moment.replace(tzinfo=datetime.UTC).timestamp()


def _pod_path(pod: Obj) -> str:
    meta = pod["metadata"]
    return f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"


class PodWorker:
    """Drives one pod on this node; all of its state changes happen in its own thread."""

    def __init__(self, kubelet: Kubelet, pod: Obj) -> None:
        self.kubelet = kubelet
        self.pod = pod
        self.uid = pod["metadata"]["uid"]
        self.directories = PodDirectories(kubelet.settings.state_dir, pod)
        self.changed = threading.Event()
        self.removed = False  # the pod object is gone from the API
        self.evicted: str | None = None
        self.containers: dict[str, RunningContainer] = {}
        self.view: PodView | None = None
        self._last_patch: Obj | None = None
        self._terminating_since: float | None = None
        self._kill_at: float | None = None
        self._next_attempt = 0.0
        self._pull_backoff: dict[str, float] = {}
        self._volumes: dict[str, pod_config.VolumeSource] | None = None
        self._cleaned = False
        self._adopted = False  # finished before this agent started: its status stands
        self.thread = threading.Thread(
            target=self._run, daemon=True, name=f"pod-{pod['metadata']['name']}"
        )

    def _event(self, kind: str, reason: str, message: str) -> None:
        events = self.kubelet.events
        if events is not None:
            events.record(self.pod, kind, reason, message, self.pod["spec"].get("nodeName"))

    # -- inputs from other threads ------------------------------------------------------------
    def update(self, pod: Obj) -> None:
        """A newer version of the pod object."""
        self.pod = pod
        self.changed.set()

    def mark_removed(self) -> None:
        """The pod object was deleted (possibly forcibly): stop everything now."""
        self.removed = True
        self.changed.set()

    def evict(self, message: str) -> bool:
        """Node-pressure eviction: kill at once, fail the pod with reason Evicted; False if the
        pod has already finished."""
        view = self.view
        if view is not None and all(
            c.state == TERMINATED for c in [*view.init_containers, *view.containers]
        ):
            return False
        self.evicted = message
        self.changed.set()
        return True

    def log_target(self, container: str) -> tuple[Path, bool] | None:
        """(log file, whether the container has finished) if the container has a log."""
        path = self.directories.log_path(container)
        if not path.exists():
            return None
        running = self.containers.get(container)
        return path, running is None or running.finished

    # -- the loop -----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._setup()
            while not self._step():
                self.changed.wait(self._timeout())
                self.changed.clear()
        except Exception:
            log.exception("pod worker for %s failed", self.pod["metadata"]["name"])
            self._kill_everything()
            with contextlib.suppress(Exception):
                for running in list(self.containers.values()):
                    running.wait(10)
                self._collect_exits()
        finally:
            self._cleanup_volumes()
            self.kubelet.worker_done(self)

    def _setup(self) -> None:
        status = self.pod.get("status") or {}
        start = _parse_time(status.get("startTime")) or time.time()
        init = [
            ContainerView(c["name"], c.get("image", ""))
            for c in self.pod["spec"].get("initContainers") or []
        ]
        containers = [
            ContainerView(
                c["name"],
                c.get("image", ""),
                reason="PodInitializing" if init else "ContainerCreating",
            )
            for c in self.pod["spec"].get("containers") or []
        ]
        self.view = PodView(
            self.kubelet.settings.host_ip,
            self.kubelet.settings.host_ip,
            start,
            containers,
            init_containers=init,
        )
        if status.get("phase") in ("Succeeded", "Failed"):
            self._adopt_final_status(status)
            return
        if any(
            "running" in (s.get("state") or {}) or "terminated" in (s.get("state") or {})
            for s in status.get("containerStatuses") or []
        ):
            # Started by an earlier run of this agent, whose processes died with it.
            for view in self._views():
                view.state, view.reason, view.exit_code = TERMINATED, "ContainerStatusUnknown", 137
                view.message = "The container could not be located when the pod was terminated"
                view.finished_at = time.time()

    def _adopt_final_status(self, status: Obj) -> None:
        assert self.view is not None
        self.view.reason = status.get("reason")
        self.view.message = status.get("message")
        finished = {
            s["name"]: s
            for s in [
                *(status.get("initContainerStatuses") or []),
                *(status.get("containerStatuses") or []),
            ]
        }
        for view in self._views():
            terminated = (finished.get(view.name, {}).get("state") or {}).get("terminated") or {}
            view.state = TERMINATED
            view.exit_code = int(
                terminated.get("exitCode", 0 if status["phase"] == "Succeeded" else 1)
            )
            view.reason = terminated.get("reason") or "Completed"
        self._adopted = True

    def _timeout(self) -> float:
        now = time.time()
        moments = [self._next_attempt, self._kill_at or 0.0, self._deadline() or 0.0]
        future = [m - now for m in moments if m > now]
        return max(0.05, min([*future, 5.0]))

    def _deadline(self) -> float | None:
        seconds = self.pod["spec"].get("activeDeadlineSeconds")
        if seconds is None or self.view is None:
            return None
        return self.view.start_time + int(seconds)

    def _step(self) -> bool:
        """One reconciliation; True once the worker is finished with the pod."""
        view = self.view
        assert view is not None
        now = time.time()
        if self.removed:
            self._kill_everything()
            for running in list(self.containers.values()):
                running.wait(10)  # killed: gone in moments, and then its volumes can go
            self._collect_exits()
            return True
        meta = self.pod["metadata"]
        if self.kubelet.paused.is_set():
            return False
        if self.evicted and view.reason != "Evicted":
            view.reason, view.message = "Evicted", self.evicted
            view.disruption = self.evicted
            self._event("Warning", "Evicted", self.evicted)
            self._kill_everything()
        deadline = self._deadline()
        if (
            deadline is not None
            and now >= deadline
            and view.reason is None
            and not self._all_done()
        ):
            view.reason, view.message = "DeadlineExceeded", pod_status.DEADLINE_MESSAGE
            self._event("Normal", "DeadlineExceeded", pod_status.DEADLINE_MESSAGE)
            self._terminate(self._grace(None))
        if meta.get("deletionTimestamp") and self._terminating_since is None:
            self._terminate(self._grace(meta.get("deletionGracePeriodSeconds")))
        if self._kill_at is not None and now >= self._kill_at:
            self._kill_everything()
        self._collect_exits()
        if view.reason is None and not meta.get("deletionTimestamp"):
            self._start_waiting_containers(now)
        self._post_status()
        if meta.get("deletionTimestamp") and not self._any_running():
            # Everything that ran has stopped (or never started): the node lets the pod go.
            self._cleanup_volumes()
            return self._confirm_deletion()
        if self._all_done() or (view.reason and not self._any_running()):
            self._cleanup_volumes()
            # Finished and reported: the thread can go; the kubelet keeps the logs and confirms
            # the deletion when it comes.
            return self._post_status()
        return False

    # -- containers -----------------------------------------------------------------------------
    def _views(self) -> list[ContainerView]:
        assert self.view is not None
        return [*self.view.init_containers, *self.view.containers]

    def _all_done(self) -> bool:
        assert self.view is not None
        if pod_status.init_failed(self.view):
            return not self._any_running()  # the pod failed; its main containers never start
        return all(c.state == TERMINATED for c in self._views())

    def _any_running(self) -> bool:
        # From the recorded states, not the processes: a container that has just ended but
        # whose exit this worker has not collected yet still counts, so its end gets reported.
        return any(v.state == RUNNING for v in self._views())

    def _grace(self, seconds: Any) -> float:
        if seconds is None:
            seconds = self.pod["spec"].get(
                "terminationGracePeriodSeconds", self.kubelet.settings.default_grace_seconds
            )
        return max(0.0, float(seconds))

    def _terminate(self, grace: float) -> None:
        self._terminating_since = time.time()
        self._kill_at = time.time() + grace
        for name, container in self.containers.items():
            if not container.finished:
                self._event("Normal", "Killing", f"Stopping container {name}")
                container.signal(signal.SIGTERM)
        if grace <= 0:
            self._kill_everything()

    def _kill_everything(self) -> None:
        for container in list(self.containers.values()):
            container.kill()

    def _collect_exits(self) -> None:
        for view in self._views():
            running = self.containers.get(view.name)
            if running is None or view.state == TERMINATED:
                continue
            info = running.wait(0) if running.shim is not None else None
            if info is None:
                continue
            self._record_exit(view, info)

    def _record_exit(self, view: ContainerView, info: ExitInfo) -> None:
        view.state = TERMINATED
        view.exit_code = info.exit_code
        view.signal = info.signal
        view.finished_at = info.finished_at
        view.started_at = info.started_at or info.finished_at
        if info.start_error:
            view.reason, view.message = "StartError", info.start_error
        else:
            view.reason = pod_status.terminated_reason(info.exit_code, info.oom_killed)
            view.message = None

    def _start_waiting_containers(self, now: float) -> None:
        assert self.view is not None
        if now < self._next_attempt:
            return
        if pod_status.init_failed(self.view):
            return
        init_pending = [
            v for v in self.view.init_containers if not (v.state == TERMINATED and v.exit_code == 0)
        ]
        if init_pending:
            # Init containers run one at a time, in order, before any other container.
            waiting = [init_pending[0]] if init_pending[0].state == WAITING else []
        else:
            waiting = [v for v in self.view.containers if v.state == WAITING]
        if not waiting:
            return
        spec = self.pod["spec"]
        specs = {
            c["name"]: c
            for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
        }
        for view in waiting:
            spec = specs[view.name]
            try:
                self._start_container(view, spec)
            except pod_config.ContainerConfigError as error:
                if view.message != error.message:
                    self._event("Warning", "Failed", f"Error: {error.message}")
                view.reason, view.message = error.reason, error.message
                self._next_attempt = now + self.kubelet.settings.config_retry
            except ImagePullError as error:
                self._pull_failed(view, str(error), now)
            except (ContainerStartError, OSError, ApiError, ValueError) as error:
                view.reason, view.message = "CreateContainerError", str(error)
                self._next_attempt = now + self.kubelet.settings.config_retry

    def _pull_failed(self, view: ContainerView, message: str, now: float) -> None:
        backoff = self._pull_backoff.get(view.name)
        if view.reason == "ErrImagePull" and backoff is not None:
            # The failed pull was reported; now the kubelet backs off before trying again.
            view.reason, view.message = "ImagePullBackOff", f'Back-off pulling image "{view.image}"'
            self._event("Normal", "BackOff", view.message)
            self._next_attempt = now + backoff
            self._pull_backoff[view.name] = min(backoff * 2, 300.0)
            return
        view.reason, view.message = "ErrImagePull", message
        self._event("Warning", "Failed", f'Failed to pull image "{view.image}": {message}')
        self._event("Warning", "Failed", "Error: ErrImagePull")
        self._pull_backoff.setdefault(view.name, self.kubelet.settings.image_pull_backoff)
        self._next_attempt = now + 0.5

    def _start_container(self, view: ContainerView, spec: Obj) -> None:
        kubelet = self.kubelet
        settings = kubelet.settings
        uid, gid, _ = pod_config.identity(self.pod, spec)
        bin_dir, interpreter = kubelet.images.resolve(spec.get("image", ""), uid, gid)
        if view.reason in (
            "ContainerCreating",
            "PodInitializing",
            "ErrImagePull",
            "ImagePullBackOff",
        ):
            self._event(
                "Normal", "Pulled", f'Container image "{view.image}" already present on machine'
            )
        if self._volumes is None:
            self._volumes = self.directories.prepare_volumes(
                self.pod, kubelet.confinement.privileged, settings.node_memory_bytes
            )
        config = pod_config.build(
            self.pod,
            spec,
            image_env=image_environment(spec.get("image", ""), bin_dir),
            host_ip=settings.host_ip,
            node_allocatable=dict(settings.node_allocatable),
            node_memory=settings.node_memory_bytes,
            pids_max=settings.pids_limit,
            volumes=self._volumes,
            isolate_network=kubelet.egress_denied(self.pod),
            lookup=kubelet.lookup,
        )
        for mount in config.mounts:
            if bin_dir == Path(mount["target"]) or Path(mount["target"]) in bin_dir.parents:
                raise pod_config.ContainerConfigError(
                    f'the volume mounted at "{mount["target"]}" would hide this node\'s Python '
                    f"interpreter directory {bin_dir}",
                    "CreateContainerError",
                )
            if not os.path.isdir(mount["target"]):
                raise pod_config.ContainerConfigError(
                    f'mountPath "{mount["target"]}" does not exist on this node (devcluster '
                    "containers share the node's root filesystem)",
                    "CreateContainerError",
                )
        container_id = secrets.token_hex(32)
        running = RunningContainer(
            config,
            kubelet.cgroup_name(self.uid, view.name),
            self.directories.log_path(view.name),
            kubelet.confinement,
        )
        running.start()
        self.containers[view.name] = running
        view.container_id = f"devcluster://{container_id}"
        view.image_id = f"devcluster://{interpreter}"
        self._event("Normal", "Created", f"Created container: {view.name}")
        if running.finished:  # the command could not be executed
            info = running.wait(0)
            assert info is not None
            self._record_exit(view, info)
            self._event("Warning", "Failed", f"Error: {info.start_error}")
            return
        self._event("Normal", "Started", f"Started container {view.name}")
        view.state, view.reason, view.message = RUNNING, None, None
        view.started_at = running.started_at
        threading.Thread(
            target=self._await_exit,
            args=(running,),
            daemon=True,
            name=f"wait-{view.name}-{self.uid[:8]}",
        ).start()

    def _await_exit(self, running: RunningContainer) -> None:
        running.wait()
        self.changed.set()

    # -- API ----------------------------------------------------------------------------------
    def _post_status(self) -> bool:
        """Send the status if it changed; True when the API server has the current one."""
        assert self.view is not None
        if self._adopted:
            return True
        current = self.kubelet.current_pod(self.pod)
        if current is None or current["metadata"].get("uid") != self.uid:
            return False
        patch = pod_status.status_patch(current, self.view, time.time())
        if patch == self._last_patch:
            return True
        try:
            self.kubelet.client.merge_patch(_pod_path(self.pod) + "/status", patch)
            self._last_patch = patch
            return True
        except ApiError as error:
            if error.code == 404:
                self.removed = True
            else:
                log.warning("status of pod %s not updated: %s", self.pod["metadata"]["name"], error)
        except Exception as error:  # the API server is away; the next step retries
            log.warning("status of pod %s not updated: %s", self.pod["metadata"]["name"], error)
        return False

    def _confirm_deletion(self) -> bool:
        body = {
            "apiVersion": "v1",
            "kind": "DeleteOptions",
            "gracePeriodSeconds": 0,
            "preconditions": {"uid": self.uid},
        }
        try:
            self.kubelet.client.delete(_pod_path(self.pod), body)
        except ApiError as error:
            if error.code not in (404, 409):
                log.warning(
                    "could not confirm deletion of %s: %s", self.pod["metadata"]["name"], error
                )
                self._next_attempt = time.time() + 1
                return False
        except Exception as error:
            log.warning("could not confirm deletion of %s: %s", self.pod["metadata"]["name"], error)
            return False
        return True

    def _cleanup_volumes(self) -> None:
        if self._cleaned or self._any_running():
            return
        self._cleaned = True
        with contextlib.suppress(OSError):
            self.directories.remove_volumes()


class Kubelet:
    """Runs the pods bound to a set of node names."""

    def __init__(
        self,
        client: KubeClient,
        node_names: list[str],
        settings: KubeletSettings,
        confinement: Confinement,
        agent_id: str,
        *,
        paused: threading.Event | None = None,
    ) -> None:
        self.client = client
        self.node_names = set(node_names)
        self.settings = settings
        self.confinement = confinement
        self.agent_id = agent_id
        self.images = PythonImages(settings.images_dir)
        for private in (settings.state_dir / "pods", settings.state_dir / "logs"):
            # Pod users can traverse the state directory (for the interpreter links) but must
            # not list other pods' logs or volumes.
            private.mkdir(parents=True, exist_ok=True)
            private.chmod(0o700)
        self.events: EventRecorder | None = None  # set by the agent
        self.paused = paused or threading.Event()  # set: no container starts, no status
        self.pods_informer: Any = None  # set by the agent: source of current pod objects
        self._workers: dict[str, PodWorker] = {}
        self._finished_logs: dict[str, PodDirectories] = {}
        self._lock = threading.Lock()
        self._stopping = False
        self._policies: dict[str, tuple[float, list[Obj]]] = {}

    # -- events ---------------------------------------------------------------------------------
    def handle_pod(self, kind: str, pod: Obj) -> None:
        """Informer handler for pods."""
        if kind == "SYNC" or self._stopping:
            return
        if (pod.get("spec") or {}).get("nodeName") not in self.node_names:
            return
        uid = pod["metadata"]["uid"]
        with self._lock:
            worker = self._workers.get(uid)
            if kind == "DELETED":
                if worker is not None:
                    worker.mark_removed()
                finished = self._finished_logs.pop(uid, None)
                if finished is not None:
                    finished.remove_logs()
                return
            if worker is not None:
                worker.update(pod)
                return
            if uid in self._finished_logs:
                if pod["metadata"].get("deletionTimestamp"):
                    # Finished before; the object still needs its deletion confirmed.
                    self._confirm_finished(pod)
                return
            worker = PodWorker(self, pod)
            self._workers[uid] = worker
        worker.thread.start()

    def _confirm_finished(self, pod: Obj) -> None:
        def confirm() -> None:
            with contextlib.suppress(Exception):
                self.client.delete(
                    _pod_path(pod),
                    {
                        "apiVersion": "v1",
                        "kind": "DeleteOptions",
                        "gracePeriodSeconds": 0,
                        "preconditions": {"uid": pod["metadata"]["uid"]},
                    },
                )

        threading.Thread(target=confirm, daemon=True).start()

    def worker_done(self, worker: PodWorker) -> None:
        """Called by a worker as it exits."""
        with self._lock:
            self._workers.pop(worker.uid, None)
            if worker.removed:
                worker.directories.remove_logs()
                return
            self._finished_logs[worker.uid] = worker.directories
            latest = self.current_pod(worker.pod) or worker.pod
            if (
                latest["metadata"].get("uid") == worker.uid
                and latest["metadata"].get("deletionTimestamp")
                and not self._stopping
            ):
                # The deletion arrived while the worker was finishing: confirm it here.
                self._confirm_finished(latest)

    def current_pod(self, pod: Obj) -> Obj | None:
        """The freshest copy of the pod (from the informer), or the given one."""
        if self.pods_informer is None:
            return pod
        meta = pod["metadata"]
        return self.pods_informer.get(meta["namespace"], meta["name"])

    # -- services for workers -----------------------------------------------------------------
    def cgroup_name(self, pod_uid: str, container: str) -> str:
        """Cgroup names carry the agent's id, so a later agent can find leftovers."""
        return f"{self.agent_id}-{pod_uid}-{container}"

    def lookup(self, kind: str, namespace: str, name: str) -> Obj | None:
        """A ConfigMap or Secret for env references; None if it does not exist."""
        try:
            return self.client.get(f"/api/v1/namespaces/{namespace}/{kind}/{name}")
        except ApiError as error:
            if error.code == 404:
                return None
            raise

    def egress_denied(self, pod: Obj) -> bool:
        """Whether the pod's NetworkPolicies deny all its egress (then: empty netns)."""
        namespace = pod["metadata"]["namespace"]
        cached = self._policies.get(namespace)
        if cached is None or time.monotonic() - cached[0] > 1.0:
            listed = self.client.get(
                f"/apis/networking.k8s.io/v1/namespaces/{namespace}/networkpolicies"
            )
            cached = (time.monotonic(), listed.get("items") or [])
            self._policies[namespace] = cached
        return network_isolation.egress_denied(pod, cached[1])

    # -- faults and logs ------------------------------------------------------------------------
    def evict(self, namespace: str, name: str, resource: str = "memory") -> bool:
        """Evict a running pod as under node pressure; False if no such pod runs here."""
        message = (
            f"The node was low on resource: {resource}. Threshold quantity: 100Mi, available: 0Ki. "
        )
        with self._lock:
            for worker in self._workers.values():
                meta = worker.pod["metadata"]
                if meta["namespace"] == namespace and meta["name"] == name:
                    return worker.evict(message)
        return False

    def log_target(self, namespace: str, name: str, container: str) -> tuple[Path, bool] | None:
        """(log path, finished) of a container of a pod on this node."""
        with self._lock:
            workers = list(self._workers.values())
            finished = list(self._finished_logs.values())
        for worker in workers:
            meta = worker.pod["metadata"]
            if meta["namespace"] == namespace and meta["name"] == name:
                return worker.log_target(container)
        prefix = f"{namespace}_{name}_"
        for directories in reversed(finished):  # the newest pod of that name
            if directories.logs.name.startswith(prefix):
                path = directories.log_path(container)
                return (path, True) if path.exists() else None
        return None

    def wake_all(self) -> None:
        """Let every pod worker look at its pod again now (after a pause)."""
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.changed.set()

    def stop(self) -> None:
        """Kill every pod's processes (nothing may outlive the agent) and wait for workers."""
        self._stopping = True
        with self._lock:
            workers = list(self._workers.values())
        for worker in workers:
            worker.mark_removed()
        for worker in workers:
            worker.thread.join(timeout=15)
