"""One shared watch of CodeRuns per process, and the requests waiting on it.

A background thread watches every CodeRun in the runs namespace (resuming from the last
resourceVersion, listing again when the server says 410 Gone) and hands each change to the
requests waiting for that run's name. A waiting request sleeps on a condition variable, so
thousands of open pages cost no API calls, and never sleeps longer than its own deadline.
While the watch is down, waiting requests fall back to reading their run every few seconds.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from webui.runs_store import Gone, NotFound, RunEvents, RunsStore, StoreError, Unavailable

log = logging.getLogger(__name__)

Run = dict[str, Any]

# The API server ends each watch after this long; the thread then resumes from where it was.
WATCH_SECONDS = 240
# How often a waiting request reads its run itself while the shared watch is down.
POLL_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 30.0


@dataclass
class _Slot:
    """What the waiters for one run name share."""

    condition: threading.Condition
    waiters: int = 0
    generation: int = 0
    latest: Run | None = None
    deleted: bool = False
    resyncs: int = 0  # bumped when events may have been missed; waiters then read again


def _resource_version(run: Run) -> int | None:
    value = (run.get("metadata") or {}).get("resourceVersion")
    # Versions are opaque to clients, but the API server's are integers in practice; when
    # they are not, every event is treated as newer.
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _is_older(candidate: Run, current: Run) -> bool:
    new, old = _resource_version(candidate), _resource_version(current)
    return new is not None and old is not None and new < old


@dataclass
class _Watcher:
    """The background thread's state."""

    thread: threading.Thread | None = None
    pid: int = 0
    stop: threading.Event = field(default_factory=threading.Event)
    events: RunEvents | None = None


class RunWatch:
    """The shared watch of one process; `wait` is what request handlers call."""

    def __init__(self, store: RunsStore, max_waiters: int) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        self._healthy = False
        self._watcher = _Watcher()
        # Waiting requests each hold a server thread; keep some threads for everything else.
        self._waiter_permits = threading.BoundedSemaphore(max(1, max_waiters))

    # -- the background thread ----------------------------------------------------------

    @property
    def healthy(self) -> bool:
        """True while the shared watch is connected."""
        return self._healthy

    def ensure_started(self) -> None:
        """Starts the watch thread in this process if it is not running.

        Started on first use rather than at import, so each gunicorn worker (a forked
        process) gets its own thread.
        """
        watcher = self._watcher
        if watcher.thread is not None and watcher.thread.is_alive() and watcher.pid == os.getpid():
            return
        with self._lock:
            watcher = self._watcher
            alive = watcher.thread is not None and watcher.thread.is_alive()
            if alive and watcher.pid == os.getpid():
                return
            watcher = self._watcher = _Watcher(pid=os.getpid())
            watcher.thread = threading.Thread(
                target=self._run, args=(watcher,), name="coderun-watch", daemon=True
            )
            watcher.thread.start()

    def stop(self) -> None:
        """Stops the watch thread (for tests and shutdown)."""
        watcher = self._watcher
        watcher.stop.set()
        if watcher.events is not None:
            watcher.events.close()
        if watcher.thread is not None and watcher.thread is not threading.current_thread():
            watcher.thread.join(timeout=5)

    def _run(self, watcher: _Watcher) -> None:
        version = ""
        backoff = 1.0
        while not watcher.stop.is_set():
            try:
                if not version:
                    version = self.store.current_resource_version()
                    # Changes may have been missed: every waiter reads its run again.
                    self.resync()
                started = time.monotonic()
                watcher.events = self.store.watch(version, WATCH_SECONDS)
                self._healthy = True
                backoff = 1.0
                for kind, run in watcher.events:
                    if watcher.stop.is_set():
                        break
                    version = str((run.get("metadata") or {}).get("resourceVersion") or version)
                    if kind in ("ADDED", "MODIFIED", "DELETED"):
                        self.publish(kind, run)
                if time.monotonic() - started < 1:
                    # A server that ends watches at once must not make this loop spin.
                    watcher.stop.wait(1)
            except Gone:
                log.info("CodeRun watch expired; listing again")
                version = ""
            except StoreError as error:
                self._healthy = False
                if watcher.stop.is_set():
                    break
                log.warning("CodeRun watch failed (%s); retrying in %.0f s", error, backoff)
                watcher.stop.wait(backoff)
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
            except Exception:
                self._healthy = False
                log.exception("CodeRun watch broke; retrying in %.0f s", backoff)
                watcher.stop.wait(backoff)
                backoff = min(MAX_BACKOFF_SECONDS, backoff * 2)
            finally:
                watcher.events = None
        self._healthy = False

    # -- events in ------------------------------------------------------------------------

    def publish(self, kind: str, run: Run) -> None:
        """Hands one watch event to the requests waiting for that run, if any."""
        name = (run.get("metadata") or {}).get("name")
        with self._lock:
            slot = self._slots.get(name) if isinstance(name, str) else None
            if slot is None:
                return
            slot.generation += 1
            slot.latest = run
            slot.deleted = kind == "DELETED"
            slot.condition.notify_all()

    def resync(self) -> None:
        """Tells every waiting request to read its run again (events may have been missed)."""
        with self._lock:
            for slot in self._slots.values():
                slot.generation += 1
                slot.resyncs += 1
                slot.condition.notify_all()

    # -- waiting ------------------------------------------------------------------------------

    def _register(self, name: str) -> tuple[_Slot, int, int]:
        with self._lock:
            slot = self._slots.get(name)
            if slot is None:
                slot = self._slots[name] = _Slot(threading.Condition(self._lock))
            slot.waiters += 1
            return slot, slot.generation, slot.resyncs

    def _unregister(self, name: str, slot: _Slot) -> None:
        with self._lock:
            slot.waiters -= 1
            if slot.waiters == 0:
                del self._slots[name]

    def wait(self, name: str, done: Callable[[Run], bool], timeout: float) -> Run:
        """The run ``name`` as soon as ``done(run)`` holds, or as it is when ``timeout`` ends.

        Raises `NotFound` when the run does not exist or is deleted while waiting, and
        `Unavailable` when it cannot be read at all. When too many requests are waiting
        already, answers at once so the server keeps threads for other pages.
        """
        if timeout <= 0 or not self._waiter_permits.acquire(blocking=False):
            return self.store.get(name)
        try:
            self.ensure_started()
            slot, seen, resyncs = self._register(name)
            try:
                # Registered before reading, so no change between the read and the wait is lost.
                deadline = time.monotonic() + timeout
                return self._wait_registered(name, slot, (seen, resyncs), done, deadline)
            finally:
                self._unregister(name, slot)
        finally:
            self._waiter_permits.release()

    def _wait_registered(
        self,
        name: str,
        slot: _Slot,
        seen_at_start: tuple[int, int],
        done: Callable[[Run], bool],
        deadline: float,
    ) -> Run:
        seen, resyncs_seen = seen_at_start
        run = self.store.get(name)
        while not done(run):
            with self._lock:
                while slot.generation == seen:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return run
                    if not self._healthy:
                        remaining = min(remaining, POLL_SECONDS)
                    if not slot.condition.wait(remaining) and not self._healthy:
                        break  # poll: the watch is down
                changed = slot.generation != seen
                seen = slot.generation
                latest, deleted = slot.latest, slot.deleted
                resync = slot.resyncs != resyncs_seen
                resyncs_seen = slot.resyncs
            if changed and deleted:
                raise NotFound("The run does not exist; it may have expired or been deleted.")
            if changed and not resync and latest is not None:
                if not _is_older(latest, run):
                    run = latest
                continue
            try:
                run = self.store.get(name)
            except Unavailable:
                # Keep what we have; the caller answers with it and the client asks again.
                if time.monotonic() >= deadline:
                    return run
        return run
