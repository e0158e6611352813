"""kopf handlers: thin glue between the watches and the controller.

Only level-triggered handlers are used (``on.event`` and an index), never kopf's change
handlers. So kopf keeps no progress or diff-base state in the objects: no status writes of
its own, no annotation copying the snippet, no finalizers. Everything the operator does
follows from the current CodeRun and pod, which is what makes restarts safe.

Run with ``python -m coderun_operator`` (which loads the settings and starts kopf for the
runs namespace) or ``kopf run -m coderun_operator.handlers --namespace <runs namespace>``.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

import kopf
from kubernetes.client import ApiClient
from prometheus_client import start_http_server

from coderun_operator import api_bounds
from coderun_operator.api_access import load_configuration
from coderun_operator.controller import Controller
from coderun_operator.kube import RunsApi
from coderun_operator.run_pod import APP_LABEL, APP_NAME, MANAGED_BY, MANAGED_BY_LABEL
from coderun_operator.settings import OperatorSettings, load_operator_settings

RUN_POD_LABELS = {APP_LABEL: APP_NAME, MANAGED_BY_LABEL: MANAGED_BY}
# A watch request asks the server to end it after this long; kopf then reconnects. A client
# timeout just above it turns a silently stalled connection into a reconnect, never a hang.
WATCH_SERVER_TIMEOUT_SECONDS = 60
WATCH_CLIENT_TIMEOUT_SECONDS = 75
LIST_CHUNK_SIZE = 100
CRD_RETRY_SECONDS = 5


def _kubernetes_client() -> ApiClient:
    return ApiClient(load_configuration())


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Own every kopf setting in one place, then start the controller."""
    ours: OperatorSettings = memo.get("settings") or load_operator_settings(os.environ)
    settings.peering.standalone = ours.peering_name is None
    if ours.peering_name is not None:
        settings.peering.name = ours.peering_name
        settings.peering.mandatory = True
        settings.peering.clusterwide = False
    settings.watching.server_timeout = WATCH_SERVER_TIMEOUT_SECONDS
    settings.watching.client_timeout = WATCH_CLIENT_TIMEOUT_SECONDS
    settings.watching.connect_timeout = 10
    # List existing runs page by page: a full runs namespace is thousands of objects, each
    # up to a few hundred kilobytes.
    settings.watching.chunk_size = LIST_CHUNK_SIZE
    settings.networking.request_timeout = 30
    settings.networking.connect_timeout = 10
    # Kubernetes Events only for problems: one per handler success would double the writes.
    settings.posting.level = logging.WARNING
    # Never used by level-triggered handlers; set so that any future change handler keeps its
    # bookkeeping in annotations without the spec (a large snippet would not fit) and out of
    # status (the schema would prune it).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="coderun.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix="coderun.dev",
        key="last-handled",
        ignored_fields=["spec.code", "spec.stdin", "status"],
    )
    settings.execution.max_workers = 16
    # Serve the runs namespace and the resources present at start-up only: watching all
    # namespaces and CRDs would need cluster-wide permissions the operator does not hold.
    settings.scanning.disabled = True
    if "api_client" not in memo:  # kept across the retries below
        memo["api_client"] = await asyncio.to_thread(_kubernetes_client)
    api = RunsApi(memo["api_client"], ours.runs_namespace)
    # kopf resolves the resources it watches once, right after start-up (scanning is off):
    # started before the CRD is served, it would never watch CodeRuns. Wait for it instead;
    # meanwhile the liveness endpoint stays down, so a CRD that never comes shows as restarts.
    problem = await asyncio.to_thread(api.coderun_api_problem)
    if problem is not None:
        raise kopf.TemporaryError(f"Cannot start yet: {problem}.", delay=CRD_RETRY_SECONDS)
    controller = Controller(api, ours)
    memo["controller"] = controller
    memo["wakeups"] = asyncio.create_task(controller.run_wakeups())
    start_http_server(ours.metrics_port)


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    """Stop the wake-up loop."""
    task = memo.get("wakeups")
    if task is not None:
        task.cancel()


@kopf.index("", "v1", "pods", labels=RUN_POD_LABELS)
def run_pods(body: kopf.Body, labels: kopf.Labels, **_: Any) -> dict[str, dict]:
    """Run pods by run uid. kopf calls handlers only once every index is filled, so a
    restarted operator sees existing pods before it decides anything about their runs."""
    uid = labels.get("coderun.dev/run-uid")
    return {uid: dict(body)} if uid else {}


def _pod_lookup(index: kopf.Index) -> Any:
    def lookup(uid: str) -> dict | None:
        pods = list(index.get(uid, []))
        # Two pods for one run never exist (fixed name); the newest wins if they ever did.
        return max(pods, key=lambda p: p["metadata"].get("creationTimestamp", "")) if pods else None

    return lookup


@kopf.on.event(api_bounds.API_GROUP, api_bounds.API_VERSION, api_bounds.PLURAL)
async def coderun_event(
    event: kopf.RawEvent, memo: kopf.Memo, run_pods: kopf.Index, **_: Any
) -> None:
    """Any change of a CodeRun (or the initial listing): reconcile it."""
    controller: Controller = memo["controller"]
    controller.pod_lookup = _pod_lookup(run_pods)
    uid = controller.observe_run(event["type"], event["object"])
    await controller.reconcile(uid)


@kopf.on.event("", "v1", "pods", labels=RUN_POD_LABELS)
async def run_pod_event(
    event: kopf.RawEvent, memo: kopf.Memo, run_pods: kopf.Index, **_: Any
) -> None:
    """Any change of a run pod: reconcile its run."""
    controller: Controller = memo["controller"]
    controller.pod_lookup = _pod_lookup(run_pods)
    uid = Controller.run_uid_of_pod(event["object"])
    if uid:
        await controller.reconcile(uid)


@kopf.on.probe(id="runs")
def runs_probe(memo: kopf.Memo, **_: Any) -> dict[str, int]:
    """Liveness detail: how many runs the operator is tracking."""
    controller: Controller | None = memo.get("controller")
    return {"tracked": len(controller.runs) if controller else 0}
