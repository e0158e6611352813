"""The shared watch wakes waiting requests promptly and never keeps them past their wait."""

import threading
import time

import pytest

from webui.run_names import new_run_name
from webui.run_view import is_terminal
from webui.run_watch import RunWatch
from webui.runs_store import Gone, NotFound, RunsStore, Unavailable


@pytest.fixture
def watch(cluster, runs_namespace):
    shared = RunWatch(RunsStore(cluster.api_client(), runs_namespace), max_waiters=16)
    yield shared
    shared.stop()


def _watch_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "coderun-watch"]


def test_a_waiting_request_wakes_when_the_run_ends(watch, operator):
    name = new_run_name()
    watch.store.create(name, {"code": "pass"})
    operator.later(0.5, lambda: operator.set_status(name, phase="Succeeded", exitCode=0))
    started = time.monotonic()
    run = watch.wait(name, is_terminal, timeout=10)
    waited = time.monotonic() - started
    assert run["status"]["phase"] == "Succeeded"
    assert 0.4 < waited < 3


def test_many_waiters_share_one_watch(watch, operator):
    names = [new_run_name() for _ in range(5)]
    for name in names:
        watch.store.create(name, {"code": "pass"})
    results: list[tuple[str, str]] = []

    def wait_for(name: str) -> None:
        run = watch.wait(name, is_terminal, timeout=10)
        results.append((name, (run.get("status") or {}).get("phase", "")))

    threads = [threading.Thread(target=wait_for, args=(name,)) for name in names * 2]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    assert len(_watch_threads()) == 1
    for name in names:
        operator.set_status(name, phase="Failed", reason="Error", exitCode=1)
    for thread in threads:
        thread.join(5)
    assert sorted(results) == sorted((name, "Failed") for name in names * 2)


def test_a_wait_ends_at_its_deadline_with_the_current_state(watch):
    name = new_run_name()
    watch.store.create(name, {"code": "pass"})
    started = time.monotonic()
    run = watch.wait(name, is_terminal, timeout=1)
    assert 0.9 < time.monotonic() - started < 3.5
    assert run["metadata"]["name"] == name and not is_terminal(run)


def test_a_run_deleted_while_waiting_is_not_found(watch, operator):
    name = new_run_name()
    watch.store.create(name, {"code": "pass"})
    operator.later(0.5, lambda: operator.delete(name))
    with pytest.raises(NotFound):
        watch.wait(name, is_terminal, timeout=10)


def test_a_terminal_run_answers_at_once(watch, operator):
    name = new_run_name()
    watch.store.create(name, {"code": "pass"})
    operator.set_status(name, phase="Succeeded")
    started = time.monotonic()
    watch.wait(name, is_terminal, timeout=10)
    assert time.monotonic() - started < 2.5


class _SlowStore:
    """A store whose run never changes and whose watch never connects."""

    namespace = "nowhere"

    def __init__(self) -> None:
        self.gets = 0

    def get(self, name):
        self.gets += 1
        return {"metadata": {"name": name, "resourceVersion": "1"}, "status": {}}

    def current_resource_version(self):
        raise Unavailable("down")


def test_without_the_watch_waiters_poll_and_still_end_on_time(monkeypatch):
    monkeypatch.setattr("webui.run_watch.POLL_SECONDS", 0.2)
    store = _SlowStore()
    watch = RunWatch(store, max_waiters=2)  # type: ignore[arg-type]
    try:
        started = time.monotonic()
        watch.wait("run-x", is_terminal, timeout=1)
        assert 0.9 < time.monotonic() - started < 3
        assert store.gets >= 4
    finally:
        watch.stop()


def test_over_the_waiter_limit_requests_answer_at_once():
    store = _SlowStore()
    watch = RunWatch(store, max_waiters=1)  # type: ignore[arg-type]
    try:
        blocker = threading.Thread(target=lambda: watch.wait("run-a", is_terminal, timeout=2))
        blocker.start()
        time.sleep(0.2)
        started = time.monotonic()
        watch.wait("run-b", is_terminal, timeout=2)
        assert time.monotonic() - started < 1.5
        blocker.join()
    finally:
        watch.stop()


class _ExpiringStore:
    """A store whose first watch is too old (410 Gone), so the watch must list again."""

    namespace = "fake"

    def __init__(self) -> None:
        self.versions_listed = 0
        self.watches: list[str] = []
        self.phase = "Pending"
        self.release = threading.Event()

    def get(self, name):
        return {"metadata": {"name": name, "resourceVersion": "1"}, "status": {"phase": self.phase}}

    def current_resource_version(self):
        self.versions_listed += 1
        if self.versions_listed == 2:
            # The run ended while the watch was away: no event will say so.
            self.phase = "Succeeded"
        return str(self.versions_listed * 100)

    def watch(self, version, timeout_seconds):
        self.watches.append(version)
        if len(self.watches) == 1:
            time.sleep(0.3)  # the waiter has read its (pending) run and sleeps by now
            raise Gone("too old")
        self.release.wait(15)
        return iter(())


def test_a_410_makes_the_watch_list_again_and_waiters_read_again(monkeypatch):
    monkeypatch.setattr("webui.run_watch.POLL_SECONDS", 10.0)
    store = _ExpiringStore()
    watch = RunWatch(store, max_waiters=2)  # type: ignore[arg-type]
    try:
        started = time.monotonic()
        run = watch.wait("run-x", is_terminal, timeout=12)
        assert run["status"]["phase"] == "Succeeded"
        # Long before the 10 s poll: the re-list told the waiter to read its run again.
        assert time.monotonic() - started < 5
        assert store.watches[:2] == ["100", "200"]
    finally:
        store.release.set()
        watch.stop()
