"""Carries out the reconciler's decisions for each run, one run at a time.

The controller keeps the latest CodeRuns it was told about (finished ones without their
snippet and output) and asks for their pods through a lookup the kopf layer provides (an
index fed by the pod watch). It never keeps verdicts of its own: on any failure it simply
looks at the run again later, with backoff, and decides anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from coderun_operator.kube import KubeError, RunsApi
from coderun_operator.pod_view import view_pod
from coderun_operator.reconciler import (
    STOP_DEADLINE_SECONDS,
    CreatePod,
    Decision,
    DeletePod,
    DeleteRun,
    FinishFromPod,
    StopPod,
    WriteStatus,
    decide,
    is_terminal,
    run_to_keep,
)
from coderun_operator.run_log import max_log_bytes, parse_run_log
from coderun_operator.run_pod import CONTAINER_NAME, RUN_UID_LABEL
from coderun_operator.run_status import (
    TERMINAL_PHASES,
    finished_status,
    parse_time,
    pod_refused_status,
    queued_status,
    timestamp,
)
from coderun_operator.settings import OperatorSettings

log = logging.getLogger("coderun.operator")

RUNS_FINISHED = Counter(
    "coderun_runs_finished_total", "Runs that reached a final phase.", ["phase", "reason"]
)
RUNS_ACTIVE = Gauge("coderun_runs_active", "Runs known to the operator that are not finished.")
RUN_DURATION = Histogram(
    "coderun_run_duration_seconds",
    "Wall-clock time of the snippets.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
RUN_START_LATENCY = Histogram(
    "coderun_run_start_latency_seconds",
    "Time from a CodeRun's creation to its container starting.",
    buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300),
)
# Retries after API failures: 1 s, 2 s, 4 s, ... at most 30 s.
_BACKOFF_MAX_SECONDS = 30.0
# Verdicts worth a Warning event: the run could not run as asked, for a reason outside the code.
_WARNING_REASONS = frozenset(
    {"Rejected", "Unschedulable", "ImagePullFailed", "ConfigError", "Lost"}
)
# How long a pod this process created stands in for the watch's view of it.
_WATCH_LAG_SECONDS = 30.0
# A log read may add a little beyond the runner's own bound (e.g. a warning on its stderr).
_LOG_SLACK_BYTES = 64 * 1024

PodLookup = Callable[[str], Mapping[str, Any] | None]


def utc_now() -> datetime:
    """The current time, timezone-aware."""
    return datetime.now(UTC)


class Controller:
    """Reconciles CodeRuns; safe to call from many kopf handlers concurrently."""

    def __init__(
        self,
        api: RunsApi,
        settings: OperatorSettings,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.api = api
        self.settings = settings
        self.clock = clock
        self.runs: dict[str, dict[str, Any]] = {}
        self.pod_lookup: PodLookup = lambda uid: None
        self._locks: dict[str, asyncio.Lock] = {}
        self._wakes: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._wake_event = asyncio.Event()
        # What this process just did that the pod watch may not show yet: a pod it created
        # (with the time it did) and pods it deleted, by run uid. Without them a reconcile
        # triggered in between would create or delete a second time.
        self._created: dict[str, tuple[float, dict[str, Any]]] = {}
        self._deleted: dict[str, str] = {}

    # -- what the watches tell us -------------------------------------------------------

    def observe_run(self, event_type: str | None, body: Mapping[str, Any]) -> str:
        """Remember the latest version of a run (or forget it); returns its uid."""
        uid = body["metadata"]["uid"]
        if event_type == "DELETED":
            for table in (self.runs, self._wakes, self._failures, self._created, self._deleted):
                table.pop(uid, None)
        else:
            self._keep_newer(uid, body)
        RUNS_ACTIVE.set(sum(1 for run in self.runs.values() if not is_terminal(run)))
        return uid

    def _keep_newer(self, uid: str, run: Mapping[str, Any]) -> None:
        # A watch event may be older than the object a write just returned to us.
        current = self.runs.get(uid)
        if current is not None and _resource_version(current) > _resource_version(run):
            return
        self.runs[uid] = run_to_keep(run)

    @staticmethod
    def run_uid_of_pod(body: Mapping[str, Any]) -> str | None:
        """The uid of the run a pod belongs to, from its label."""
        return ((body.get("metadata") or {}).get("labels") or {}).get(RUN_UID_LABEL)

    def pod_of(self, uid: str) -> Mapping[str, Any] | None:
        """The run's pod: the watch's view, or the one just created if the watch lags."""
        pod = self.pod_lookup(uid)
        if pod is not None:
            self._created.pop(uid, None)
            return pod
        created = self._created.get(uid)
        if created is not None and time.monotonic() - created[0] < _WATCH_LAG_SECONDS:
            return created[1]
        self._created.pop(uid, None)
        return None

    # -- reconciling ----------------------------------------------------------------------

    async def reconcile(self, uid: str) -> None:
        """Bring one run closer to where it should be; never raises."""
        lock = self._locks.setdefault(uid, asyncio.Lock())
        async with lock:
            run = self.runs.get(uid)
            if run is None:
                self._locks.pop(uid, None)
                return
            try:
                decision = decide(run, self.pod_of(uid), self.clock(), self.settings)
                await self._carry_out(uid, decision)
            except KubeError as error:
                self._after_failure(uid, error)
            except Exception:
                log.exception("Unexpected error while reconciling run %s", _name(run))
                self._after_failure(uid, None)
            else:
                self._failures.pop(uid, None)
                self._schedule(uid, decision.wake_after_seconds)

    async def _carry_out(self, uid: str, decision: Decision) -> None:
        for action in decision.actions:
            if isinstance(action, CreatePod):
                await self._create_pod(uid, action)
            elif isinstance(action, WriteStatus):
                await self._write_status(uid, action.status)
            elif isinstance(action, FinishFromPod):
                await self._finish(uid, action)
            elif isinstance(action, StopPod):
                await asyncio.to_thread(self.api.stop_pod, action.pod_name, STOP_DEADLINE_SECONDS)
            elif isinstance(action, DeletePod):
                await self._delete_pod(uid, action.pod_name)
            elif isinstance(action, DeleteRun):
                run = self.runs[uid]
                await asyncio.to_thread(self.api.delete_run, _name(run), uid)

    async def _create_pod(self, uid: str, action: CreatePod) -> None:
        try:
            created = await asyncio.to_thread(self.api.create_pod, action.manifest)
            self._created[uid] = (time.monotonic(), created)
        except KubeError as error:
            if error.quota_exceeded:
                await self._queue(uid, error.message)
                raise _QueuedError(error.message) from error
            if error.refused:
                # Trying again would be refused again: the run ends here, saying why.
                await self._write_status(uid, pod_refused_status(error.message, self.clock()))
                return
            if not error.already_exists:
                raise
            name = action.manifest["metadata"]["name"]
            existing = await asyncio.to_thread(self.api.read_pod, name)
            if self.run_uid_of_pod(existing) != uid:
                raise KubeError(
                    "create_pod", 409, "AlreadyExists", f"pod {name} belongs to another run"
                ) from error
            self._created[uid] = (time.monotonic(), existing)
            log.info("Adopted existing pod %s for run %s", name, _name(self.runs[uid]))

    async def _queue(self, uid: str, why: str) -> None:
        """Say the run waits for capacity (once per distinct reason); the caller retries."""
        run = self.runs[uid]
        status = queued_status(why, self.clock())
        current = run.get("status") or {}
        if (current.get("reason"), current.get("message")) != (status["reason"], status["message"]):
            await self._write_status(uid, status)

    async def _write_status(self, uid: str, status: dict[str, Any]) -> None:
        run = self.runs[uid]
        metadata = run["metadata"]
        full = {**status, "observedGeneration": metadata.get("generation", 1)}
        try:
            updated = await asyncio.to_thread(
                self.api.write_run_status,
                metadata["name"],
                metadata["resourceVersion"],
                run.get("status") or {},
                full,
            )
        except KubeError as error:
            if error.conflict:
                # The run changed under us (e.g. cancelled): read it and decide again.
                fresh = await asyncio.to_thread(self.api.read_run, metadata["name"])
                self._keep_newer(uid, fresh)
            raise
        self._keep_newer(uid, updated)
        if full.get("phase") in TERMINAL_PHASES:
            _record_finished(updated)
            if full.get("reason") in _WARNING_REASONS:
                await self._warn(updated, full["reason"], full.get("message", ""))

    async def _warn(self, run: dict[str, Any], reason: str, message: str) -> None:
        """Best effort: an Event that cannot be posted must not hold up the run."""
        try:
            await asyncio.to_thread(
                self.api.post_warning, run, reason, message, timestamp(self.clock())
            )
        except KubeError as error:
            log.warning("Could not record an event for %s: %s", _name(run), error)

    async def _finish(self, uid: str, action: FinishFromPod) -> None:
        limits = self.settings.limits
        limit = max_log_bytes(
            limits.stdout_limit_bytes, limits.stderr_limit_bytes, action.context.timeout_seconds
        )
        pod = self.pod_of(uid)
        try:
            raw = await asyncio.to_thread(
                self.api.read_pod_log, action.pod_name, CONTAINER_NAME, limit + _LOG_SLACK_BYTES
            )
            run_log = parse_run_log(raw)
        except KubeError as error:
            if not error.not_found and error.status != 400:
                raise
            # The log is gone (pod deleted, node lost): the verdict comes from the pod alone.
            run_log = None
        if run_log is not None and run_log.problems:
            log.info("Log of %s: %s", action.pod_name, "; ".join(run_log.problems))
        view = view_pod(pod) if pod is not None else None
        status = finished_status(
            view, run_log, action.context, self.clock(), cancelled=action.cancelled
        )
        await self._write_status(uid, status)
        if action.delete_pod:
            await self._delete_pod(uid, action.pod_name)

    async def _delete_pod(self, uid: str, name: str) -> None:
        pod = self.pod_of(uid)
        pod_uid = (pod or {}).get("metadata", {}).get("uid")
        if pod_uid is not None and self._deleted.get(uid) == pod_uid:
            return  # deleted already; the watch has not caught up
        await asyncio.to_thread(self.api.delete_pod, name, pod_uid)
        if pod_uid is not None:
            self._deleted[uid] = pod_uid

    # -- when to look again ----------------------------------------------------------------

    def _backoff(self, uid: str) -> float:
        attempts = self._failures.get(uid, 1)
        return min(_BACKOFF_MAX_SECONDS, 2.0 ** max(0, attempts - 1))

    def _after_failure(self, uid: str, error: KubeError | None) -> None:
        self._failures[uid] = self._failures.get(uid, 0) + 1
        delay = 0.0 if error is not None and error.conflict else self._backoff(uid)
        if isinstance(error, _QueuedError):
            log.info("Run %s is queued for capacity; trying again in %.0f s", uid, delay)
        elif error is not None:
            log.warning("Run %s: %s; trying again in %.0f s", uid, error, delay)
        self._schedule(uid, delay)

    def _schedule(self, uid: str, delay: float | None) -> None:
        if delay is None:
            return
        due = time.monotonic() + delay
        if uid not in self._wakes or due < self._wakes[uid]:
            self._wakes[uid] = due
            self._wake_event.set()

    async def run_wakeups(self) -> None:
        """Forever: reconcile runs whose wake-up time has come (pending limits, TTLs, retries)."""
        while True:
            now = time.monotonic()
            due = [uid for uid, at in self._wakes.items() if at <= now]
            for uid in due:
                self._wakes.pop(uid, None)
            for uid in due:
                await self.reconcile(uid)
            next_at = min(self._wakes.values(), default=now + 60)
            self._wake_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._wake_event.wait(), max(0.05, next_at - time.monotonic())
                )


class _QueuedError(KubeError):
    """The pod could not be created for lack of capacity; the run stays queued and is retried."""

    def __init__(self, why: str) -> None:
        super().__init__("create_pod", 403, "Queued", why)


def _resource_version(obj: Mapping[str, Any]) -> int:
    try:
        return int(obj["metadata"]["resourceVersion"])
    except (KeyError, TypeError, ValueError):
        return -1


def _name(run: Mapping[str, Any]) -> str:
    return str(run.get("metadata", {}).get("name"))


def _record_finished(run: Mapping[str, Any]) -> None:
    status = run.get("status") or {}
    RUNS_FINISHED.labels(status.get("phase", ""), status.get("reason", "")).inc()
    if isinstance(status.get("durationMs"), int):
        RUN_DURATION.observe(status["durationMs"] / 1000)
    created = parse_time(run.get("metadata", {}).get("creationTimestamp"))
    started = parse_time(status.get("containerStartedTime"))
    if created and started:
        RUN_START_LATENCY.observe(max(0.0, (started - created).total_seconds()))
