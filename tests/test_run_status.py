"""Status mapping: every reason of the contract, from result records and pod state."""

from datetime import UTC, datetime, timedelta

import pytest

from coderun_operator.pod_view import view_pod
from coderun_operator.run_log import RunLog, RunResult
from coderun_operator.run_spec import Rejection
from coderun_operator.run_status import (
    RunContext,
    finished_status,
    human_duration,
    lost_status,
    pod_refused_status,
    progress_status,
    queued_status,
    rejected_status,
)

NOW = datetime(2026, 12, 3, 12, 0, 0, tzinfo=UTC)
CONTEXT = RunContext(
    timeout_seconds=5,
    memory="256Mi",
    image="python:3.12-slim",
    pending_limit_seconds=60,
    deadline_seconds=305,
)


def result(**changes) -> RunResult:
    fields = dict(
        exit_code=0,
        signal=None,
        timed_out=False,
        oom_killed=False,
        stopped_by_signal=None,
        duration_ms=1250,
        cpu_ms=40,
        peak_memory_bytes=9_000_000,
        cgroup_peak_memory_bytes=None,
        stdout_bytes=2,
        stderr_bytes=0,
        stdout_truncated=False,
        stderr_truncated=False,
        started_at="2026-12-03T11:59:58.000Z",
        finished_at="2026-12-03T11:59:59.250Z",
        error=None,
    )
    fields.update(changes)
    return RunResult(**fields)


def log(res: RunResult | None, stdout="1\n", stderr="", **changes) -> RunLog:
    fields = dict(
        stdout=stdout,
        stderr=stderr,
        stdout_bytes=len(stdout.encode()),
        stderr_bytes=len(stderr.encode()),
        stdout_truncated=False,
        stderr_truncated=False,
        result=res,
        started=True,
        problems=(),
    )
    fields.update(changes)
    return RunLog(**fields)


def pod(
    phase="Succeeded",
    *,
    state=None,
    reason=None,
    message=None,
    scheduled=True,
    unschedulable_since=None,
    node="node-1",
    deleting=False,
) -> dict:
    conditions = []
    if scheduled:
        conditions.append(
            {"type": "PodScheduled", "status": "True", "lastTransitionTime": "2026-12-03T11:59:57Z"}
        )
    if unschedulable_since:
        conditions = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/3 nodes are available: 3 Insufficient memory.",
                "lastTransitionTime": unschedulable_since,
            }
        ]
    status = {"phase": phase, "conditions": conditions}
    if reason:
        status["reason"] = reason
    if message:
        status["message"] = message
    if state:
        status["containerStatuses"] = [{"name": "run", "state": state}]
    metadata = {"name": "crun-x", "creationTimestamp": "2026-12-03T11:59:56Z"}
    if deleting:
        metadata["deletionTimestamp"] = "2026-12-03T12:00:00Z"
    return {
        "metadata": metadata,
        "spec": {"nodeName": node if scheduled else None},
        "status": status,
    }


TERMINATED_OK = {
    "terminated": {
        "exitCode": 0,
        "reason": "Completed",
        "startedAt": "2026-12-03T11:59:57Z",
        "finishedAt": "2026-12-03T11:59:59Z",
    }
}


def finished(pod_obj, run_log, cancelled=False):
    view = view_pod(pod_obj) if pod_obj is not None else None
    return finished_status(view, run_log, CONTEXT, NOW, cancelled=cancelled)


def test_completed():
    status = finished(pod(state=TERMINATED_OK), log(result()))
    assert (status["phase"], status["reason"], status["exitCode"]) == ("Succeeded", "Completed", 0)
    assert status["stdout"] == "1\n" and status["stderr"] == ""
    assert status["durationMs"] == 1250 and status["duration"] == "1.25s"
    assert status["podName"] == "crun-x" and status["nodeName"] == "node-1"
    assert status["startTime"] == "2026-12-03T11:59:58.000Z"
    assert status["scheduledTime"] == "2026-12-03T11:59:57Z"
    assert status["completionTime"] == "2026-12-03T12:00:00.000Z"
    assert status["conditions"][0]["type"] == "Succeeded"
    assert status["conditions"][0]["status"] == "True"
    assert "signal" not in status


@pytest.mark.parametrize(
    ("res", "reason", "exit_code", "words"),
    [
        (result(exit_code=3), "Error", 3, "exited with code 3"),
        (result(exit_code=137, signal=9, timed_out=True), "Timeout", 137, "time limit of 5 s"),
        (result(exit_code=137, signal=9, oom_killed=True), "OOMKilled", 137, "limit of 256Mi"),
        (result(exit_code=139, signal=11), "Killed", 139, "SIGSEGV (11)"),
        (result(exit_code=None, error="cannot write /tmp"), "Error", None, "cannot write /tmp"),
        (result(exit_code=143, signal=15, stopped_by_signal=15), "Lost", 143, "stopped by"),
    ],
)
def test_failures_from_the_result_record(res, reason, exit_code, words):
    status = finished(pod("Failed", state=TERMINATED_OK), log(res))
    assert (status["phase"], status["reason"]) == ("Failed", reason)
    assert status.get("exitCode") == exit_code
    assert words in status["message"]
    assert status["conditions"][0]["status"] == "False"


def test_signal_is_reported_with_its_number():
    status = finished(pod("Failed", state=TERMINATED_OK), log(result(exit_code=137, signal=9)))
    assert (status["reason"], status["signal"]) == ("Killed", 9)


def test_cancel_wins_when_the_runner_was_stopped():
    res = result(exit_code=143, signal=15, stopped_by_signal=15)
    status = finished(pod("Failed", state=TERMINATED_OK), log(res), cancelled=True)
    assert status["reason"] == "Cancelled"


def test_a_finished_run_is_not_turned_into_cancelled():
    status = finished(pod(state=TERMINATED_OK), log(result()), cancelled=True)
    assert status["reason"] == "Completed"


def test_whole_container_oom_without_result_keeps_the_output_so_far():
    state = {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}
    status = finished(pod("Failed", state=state), log(None, stdout="start\n"))
    assert (status["reason"], status["exitCode"], status["signal"]) == ("OOMKilled", 137, 9)
    assert status["stdout"] == "start\n"


def test_pod_deadline_without_result_is_a_timeout():
    status = finished(pod("Failed", reason="DeadlineExceeded"), log(None, stdout="before\n"))
    assert status["reason"] == "Timeout" and "305 s" in status["message"]
    assert status["stdout"] == "before\n"


def test_eviction_is_lost_with_the_kubelet_words():
    status = finished(pod("Failed", reason="Evicted", message="The node was low on memory."), None)
    assert status["reason"] == "Lost" and "low on memory" in status["message"]


def test_runner_crash_without_result_is_an_error():
    state = {"terminated": {"exitCode": 2, "reason": "Error"}}
    status = finished(pod("Failed", state=state), log(None, stdout=""))
    assert (status["reason"], status["exitCode"]) == ("Error", 2)


def test_vanished_pod_is_lost():
    assert finished(None, None)["reason"] == "Lost"
    status = lost_status("it was deleted", NOW)
    assert status["phase"] == "Failed" and "it was deleted" in status["message"]


def test_truncation_is_explained():
    run_log = log(
        result(stdout_bytes=500_000, stdout_truncated=True),
        stdout="y" * 65536,
        stdout_bytes=500_000,
        stdout_truncated=True,
    )
    status = finished(pod(state=TERMINATED_OK), run_log)
    assert status["stdoutTruncated"] is True and status["stdoutBytes"] == 500_000
    assert "stdout was cut after 65536 of 500000 bytes" in status["message"]


def test_rejected_and_queued():
    status = rejected_status(Rejection(("runtime 'ruby' is not offered here.",)), NOW)
    assert (status["phase"], status["reason"]) == ("Failed", "Rejected")
    assert "ruby" in status["message"]
    queued = queued_status("exceeded quota: pods=10", NOW)
    assert (queued["phase"], queued["reason"]) == ("Pending", "Queued")
    assert "completionTime" not in queued
    assert queued["conditions"][0]["status"] == "Unknown"


def test_a_refused_pod_ends_the_run_with_the_api_servers_words():
    detail = (
        'pods "crun-x" is forbidden: maximum memory usage per Container is 64Mi, but limit is 128Mi'
    )
    status = pod_refused_status(detail, NOW)
    assert (status["phase"], status["reason"]) == ("Failed", "ConfigError")
    assert (
        "maximum memory usage per Container is 64Mi, but limit is 128Mi. An admin"
        in (status["message"])
    )
    assert status["completionTime"] and status["conditions"][0]["status"] == "False"
    assert len(pod_refused_status("x" * 10_000, NOW)["message"]) == 4096


def test_running_only_when_the_container_runs():
    creating = pod("Pending", state={"waiting": {"reason": "ContainerCreating"}})
    status = progress_status(view_pod(creating), CONTEXT, NOW)
    assert (status["phase"], status["reason"]) == ("Pending", "Starting")
    running = pod("Running", state={"running": {"startedAt": "2026-12-03T11:59:58Z"}})
    status = progress_status(view_pod(running), CONTEXT, NOW)
    assert (status["phase"], status["containerStartedTime"]) == ("Running", "2026-12-03T11:59:58Z")


def test_unschedulable_is_queued_until_the_pending_limit_then_fails():
    recent = (NOW - timedelta(seconds=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    waiting = pod("Pending", scheduled=False, unschedulable_since=recent)
    status = progress_status(view_pod(waiting), CONTEXT, NOW)
    assert (status["phase"], status["reason"]) == ("Pending", "Queued")
    assert "Insufficient memory" in status["message"]
    assert "exitCode" not in status and "stdout" not in status
    old = (NOW - timedelta(seconds=61)).strftime("%Y-%m-%dT%H:%M:%SZ")
    expired = pod("Pending", scheduled=False, unschedulable_since=old)
    status = progress_status(view_pod(expired), CONTEXT, NOW)
    assert (status["phase"], status["reason"]) == ("Failed", "Unschedulable")
    assert "60 s" in status["message"]


@pytest.mark.parametrize(
    ("waiting", "phase", "reason"),
    [
        ({"reason": "ErrImagePull", "message": "pull failed"}, "Pending", "Starting"),
        (
            {"reason": "ImagePullBackOff", "message": "Back-off pulling image"},
            "Failed",
            "ImagePullFailed",
        ),
        ({"reason": "InvalidImageName", "message": "bad name"}, "Failed", "ImagePullFailed"),
        (
            {
                "reason": "CreateContainerConfigError",
                "message": "container has runAsNonRoot and image will run as root",
            },
            "Failed",
            "ConfigError",
        ),
    ],
)
def test_kubelet_waiting_reasons(waiting, phase, reason):
    status = progress_status(view_pod(pod("Pending", state={"waiting": waiting})), CONTEXT, NOW)
    assert (status["phase"], status["reason"]) == (phase, reason)
    assert waiting["message"] in status["message"]


@pytest.mark.parametrize(("ms", "text"), [(41, "41ms"), (1250, "1.25s"), (123_000, "2m03s")])
def test_human_duration(ms, text):
    assert human_duration(ms) == text


def test_every_status_validates_against_the_crd():
    import json
    from pathlib import Path

    import jsonschema
    import yaml

    crd = yaml.safe_load((Path(__file__).parent.parent / "crds" / "coderun.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    validator = jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())
    samples = [
        finished(pod(state=TERMINATED_OK), log(result())),
        finished(pod("Failed", reason="DeadlineExceeded"), log(None)),
        finished(None, None),
        queued_status("x", NOW),
        pod_refused_status("forbidden", NOW),
        progress_status(
            view_pod(pod("Running", state={"running": {"startedAt": "2026-12-03T11:59:58Z"}})),
            CONTEXT,
            NOW,
        ),
    ]
    for sample in samples:
        assert list(validator.iter_errors(json.loads(json.dumps(sample)))) == [], sample


def test_a_pod_deleted_under_the_run_is_lost_even_if_the_runner_exited_cleanly():
    deleted = pod(
        "Failed", state={"terminated": {"exitCode": 0, "reason": "Completed"}}, deleting=True
    )
    status = finished(deleted, None)
    assert (status["reason"], status["phase"]) == ("Lost", "Failed")
    assert "deleted" in status["message"]


def test_a_pod_no_scheduler_answers_for_is_unschedulable_after_the_pending_limit():
    silent = pod("Pending", scheduled=False)
    silent["metadata"]["creationTimestamp"] = (NOW - timedelta(seconds=59)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert progress_status(view_pod(silent), CONTEXT, NOW)["phase"] == "Pending"
    silent["metadata"]["creationTimestamp"] = (NOW - timedelta(seconds=61)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    status = progress_status(view_pod(silent), CONTEXT, NOW)
    assert (status["phase"], status["reason"]) == ("Failed", "Unschedulable")


def test_a_pod_on_a_node_that_went_silent_is_lost():
    running = pod("Running", state={"running": {"startedAt": "2026-12-03T11:00:00Z"}})
    running["metadata"]["creationTimestamp"] = (NOW - timedelta(seconds=305 + 59)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    assert progress_status(view_pod(running), CONTEXT, NOW)["phase"] == "Running"
    running["metadata"]["creationTimestamp"] = (NOW - timedelta(seconds=305 + 61)).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )
    status = progress_status(view_pod(running), CONTEXT, NOW)
    assert (status["phase"], status["reason"]) == ("Failed", "Lost")
    assert "stopped reporting" in status["message"]


def test_an_oom_kill_the_node_saw_counts_when_the_runner_missed_it():
    state = {"terminated": {"exitCode": 0, "reason": "OOMKilled"}}
    status = finished(pod("Failed", state=state), log(result(exit_code=137, signal=9)))
    assert (status["reason"], status["exitCode"]) == ("OOMKilled", 137)
    plain = finished(pod("Failed", state=TERMINATED_OK), log(result(exit_code=137, signal=9)))
    assert plain["reason"] == "Killed"
