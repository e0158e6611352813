"""The Kubernetes access layer against devcluster: create, read, cancel, watch, readiness."""

import threading
import time

import pytest
from webui_support import offline_api_client

from webui.run_names import new_run_name
from webui.runs_store import NotFound, Refused, RunsStore, Unavailable


@pytest.fixture
def store(cluster, runs_namespace) -> RunsStore:
    return RunsStore(cluster.api_client(), runs_namespace)


def test_create_then_get_returns_the_run(store):
    name = new_run_name()
    created = store.create(name, {"code": "print(1)", "timeoutSeconds": 5})
    assert created["metadata"]["name"] == name
    assert created["metadata"]["labels"] == {"app.kubernetes.io/created-by": "coderun-webui"}
    fetched = store.get(name)
    assert fetched["spec"] == {"code": "print(1)", "timeoutSeconds": 5}
    assert fetched["metadata"]["creationTimestamp"]


def test_cancel_sets_spec_cancel_by_merge_patch(store):
    name = new_run_name()
    store.create(name, {"code": "import time; time.sleep(60)"})
    cancelled = store.cancel(name)
    assert cancelled["spec"] == {"code": "import time; time.sleep(60)", "cancel": True}


def test_missing_runs_are_not_found(store):
    with pytest.raises(NotFound):
        store.get(new_run_name())
    with pytest.raises(NotFound):
        store.cancel(new_run_name())


def test_the_api_servers_refusal_keeps_its_message(store):
    with pytest.raises(Refused) as excinfo:
        store.create(new_run_name(), {"code": ""})
    assert excinfo.value.status == 422
    assert "spec.code" in excinfo.value.message


def test_readiness_uses_discovery(store):
    store.check_ready()


def test_an_unreachable_api_server_is_unavailable(runs_namespace):
    store = RunsStore(offline_api_client(), runs_namespace)
    for call in (
        lambda: store.get(new_run_name()),
        store.check_ready,
        lambda: store.create(new_run_name(), {"code": "pass"}),
    ):
        with pytest.raises(Unavailable) as excinfo:
            call()
        assert excinfo.value.message == "The cluster's API server cannot be reached."


def test_watch_sees_changes_after_a_version(store, operator):
    version = store.current_resource_version()
    assert version
    name = new_run_name()
    store.create(name, {"code": "pass"})
    operator.set_status(name, phase="Running")
    events = store.watch(version, timeout_seconds=5)
    seen = []
    for kind, run in events:
        seen.append((kind, run["metadata"]["name"], (run.get("status") or {}).get("phase")))
        if len(seen) == 2:
            events.close()
            break
    assert seen == [("ADDED", name, None), ("MODIFIED", name, "Running")]


def test_a_watch_can_be_closed_from_another_thread(store):
    events = store.watch(store.current_resource_version(), timeout_seconds=30)
    outcome: list[str] = []

    def consume():
        try:
            for _ in events:
                pass
            outcome.append("ended")
        except Exception as error:
            outcome.append(repr(error))

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    time.sleep(0.2)
    events.close()
    thread.join(5)
    assert not thread.is_alive()
    assert outcome == ["ended"]


def test_a_missing_namespace_makes_creation_unavailable(cluster):
    store = RunsStore(cluster.api_client(), "no-such-namespace")
    with pytest.raises(Unavailable) as excinfo:
        store.create(new_run_name(), {"code": "pass"})
    assert "no-such-namespace" in excinfo.value.message


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (403, Refused),
        (422, Refused),
        (409, Refused),
        (404, NotFound),
        (500, Unavailable),
        (503, Unavailable),
        (429, Unavailable),
        (401, Unavailable),
    ],
)
def test_api_errors_become_a_few_kinds(status, kind):
    from kubernetes.client.exceptions import ApiException

    from webui.runs_store import _translate

    error = ApiException(status=status, reason="Reason")
    error.body = '{"kind": "Status", "message": "the server says why"}'
    translated = _translate(error, "The run")
    assert type(translated) is kind
    if kind is Refused:
        assert (translated.status, translated.message) == (status, "the server says why")
