"""The operator's decisions, from (run, pod, clock) to actions: level-triggered and idempotent."""

from datetime import UTC, datetime, timedelta

from coderun_operator.controller import Controller
from coderun_operator.reconciler import (
    CreatePod,
    DeletePod,
    DeleteRun,
    FinishFromPod,
    StopPod,
    WriteStatus,
    decide,
    run_to_keep,
)
from coderun_operator.settings import load_operator_settings

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
SETTINGS = load_operator_settings({"CODERUN_PENDING_LIMIT_SECONDS": "60"})


def run(status=None, **spec):
    obj = {
        "metadata": {"name": "r1", "namespace": "coderun-runs", "uid": "u-1", "generation": 1},
        "spec": {"code": "print(1)", **spec},
    }
    if status is not None:
        obj["status"] = status
    return obj


def pod(phase="Pending", state=None, conditions=(), deleting=False):
    metadata = {"name": "crun-r1", "creationTimestamp": "2026-12-03T11:59:59Z"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-03T12:00:00Z"
    status = {"phase": phase, "conditions": list(conditions)}
    if state:
        status["containerStatuses"] = [{"name": "run", "state": state}]
    return {"metadata": metadata, "spec": {"nodeName": "node-1"}, "status": status}


def kinds(decision):
    return [type(action) for action in decision.actions]


def test_a_new_run_gets_its_pod():
    decision = decide(run(), None, NOW, SETTINGS)
    assert kinds(decision) == [CreatePod]
    assert decision.actions[0].manifest["metadata"]["name"] == "crun-r1"


def test_a_spec_outside_policy_is_rejected_without_a_pod():
    decision = decide(run(timeoutSeconds=9999), None, NOW, SETTINGS)
    assert kinds(decision) == [WriteStatus]
    assert decision.actions[0].status["reason"] == "Rejected"


def test_routine_starting_costs_no_write():
    creating = pod(state={"waiting": {"reason": "ContainerCreating"}})
    assert decide(run(), creating, NOW, SETTINGS).actions == ()


def test_running_is_written_once():
    running = pod("Running", state={"running": {"startedAt": "2026-12-03T12:00:00Z"}})
    first = decide(run(), running, NOW, SETTINGS)
    assert kinds(first) == [WriteStatus]
    written = first.actions[0].status
    assert written["phase"] == "Running"
    again = decide(run(status=written), running, NOW + timedelta(seconds=1), SETTINGS)
    assert again.actions == ()


def test_a_finished_pod_is_read_once_and_finished():
    done = pod("Succeeded", state={"terminated": {"exitCode": 0, "reason": "Completed"}})
    decision = decide(run(status={"phase": "Running", "podName": "crun-r1"}), done, NOW, SETTINGS)
    (finish,) = decision.actions
    assert isinstance(finish, FinishFromPod)
    assert (finish.pod_name, finish.delete_pod, finish.cancelled) == ("crun-r1", True, False)
    assert finish.context.timeout_seconds == 10


def test_queued_then_unschedulable_after_the_pending_limit():
    since = (NOW - timedelta(seconds=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
    unschedulable = [
        {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/3 nodes are available.",
            "lastTransitionTime": since,
        }
    ]
    waiting = pod(conditions=unschedulable)
    decision = decide(run(), waiting, NOW, SETTINGS)
    assert kinds(decision) == [WriteStatus]
    assert decision.actions[0].status["reason"] == "Queued"
    assert decision.wake_after_seconds is not None
    queued = decision.actions[0].status
    assert decide(run(status=queued), waiting, NOW, SETTINGS).actions == ()
    late = NOW + timedelta(seconds=60)
    decision = decide(run(status=queued), waiting, late, SETTINGS)
    assert kinds(decision) == [WriteStatus, DeletePod]
    assert decision.actions[0].status["reason"] == "Unschedulable"


def test_cancel_stops_a_running_pod_but_keeps_it_to_read_its_output():
    running = pod("Running", state={"running": {"startedAt": "2026-12-03T12:00:00Z"}})
    cancelled = run(status={"phase": "Running"}, cancel=True)
    decision = decide(cancelled, running, NOW, SETTINGS)
    assert kinds(decision) == [StopPod]
    running["spec"]["activeDeadlineSeconds"] = 1
    assert decide(cancelled, running, NOW, SETTINGS).actions == ()  # stopping already
    stopped = pod("Failed", state={"terminated": {"exitCode": 0, "reason": "Completed"}})
    (finish,) = decide(cancelled, stopped, NOW, SETTINGS).actions
    assert isinstance(finish, FinishFromPod) and finish.cancelled


def test_cancel_before_the_snippet_runs_deletes_the_pod_and_says_so():
    creating = pod(state={"waiting": {"reason": "ContainerCreating"}})
    decision = decide(run(cancel=True), creating, NOW, SETTINGS)
    assert kinds(decision) == [WriteStatus, DeletePod]
    assert decision.actions[0].status["reason"] == "Cancelled"
    assert kinds(decide(run(cancel=True), None, NOW, SETTINGS)) == [WriteStatus]


def test_a_vanished_pod_is_lost_not_recreated():
    decision = decide(run(status={"phase": "Running", "podName": "crun-r1"}), None, NOW, SETTINGS)
    assert kinds(decision) == [WriteStatus]
    assert decision.actions[0].status["reason"] == "Lost"


def test_finished_runs_clean_up_and_expire():
    done = {"phase": "Succeeded", "completionTime": "2026-12-03T11:00:00.000Z"}
    leftover = pod("Succeeded")
    decision = decide(run(status=done, ttlSecondsAfterFinished=7200), leftover, NOW, SETTINGS)
    assert kinds(decision) == [DeletePod]
    assert decision.wake_after_seconds == 3600
    expired = decide(run(status=done, ttlSecondsAfterFinished=60), None, NOW, SETTINGS)
    assert kinds(expired) == [DeleteRun]


def test_a_pod_being_deleted_by_someone_else_is_waited_for():
    running = pod(
        "Running", state={"running": {"startedAt": "2026-12-03T12:00:00Z"}}, deleting=True
    )
    assert decide(run(status={"phase": "Running"}), running, NOW, SETTINGS).actions == ()


def test_a_finished_run_is_kept_without_snippet_input_and_output():
    done = {
        "phase": "Succeeded",
        "completionTime": "2026-12-03T11:00:00.000Z",
        "stdout": "x" * 100_000,
        "stderr": "y",
        "exitCode": 0,
    }
    full = run(status=done, stdin="z" * 50_000, ttlSecondsAfterFinished=60)
    kept = run_to_keep(full)
    assert kept["spec"] == {"ttlSecondsAfterFinished": 60}
    assert kept["status"] == {k: v for k, v in done.items() if k not in ("stdout", "stderr")}
    assert kept["metadata"] == full["metadata"]
    assert full["spec"]["code"] == "print(1)" and full["status"]["stdout"]  # the input is intact
    # The slim copy decides exactly as the full run does.
    for at in (NOW, NOW - timedelta(minutes=59, seconds=30)):
        assert decide(kept, None, at, SETTINGS) == decide(full, None, at, SETTINGS)


def test_a_run_still_going_is_kept_whole():
    going = run(status={"phase": "Running", "podName": "crun-r1"}, stdin="abc")
    assert run_to_keep(going) == going
    assert run_to_keep(run()) == run()


def test_the_controller_keeps_finished_runs_slim_and_others_whole():
    controller = Controller(api=None, settings=SETTINGS)  # observing makes no API call
    done = {"phase": "Failed", "reason": "Error", "stdout": "o" * 1000, "stderr": "e" * 1000}
    finished = run(status=done)
    finished["metadata"].update(uid="u-done", resourceVersion="7")
    going = run(status={"phase": "Running"})
    going["metadata"].update(uid="u-going", resourceVersion="8")
    controller.observe_run("MODIFIED", finished)
    controller.observe_run("ADDED", going)
    assert controller.runs["u-done"] == run_to_keep(finished)
    assert "code" not in controller.runs["u-done"]["spec"]
    assert "stdout" not in controller.runs["u-done"]["status"]
    assert controller.runs["u-going"] == going
