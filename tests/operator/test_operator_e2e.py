"""The real operator process against devcluster (or a real cluster): every verdict, for real.

Timing expectations come from each run's own status timestamps, never the test's clock.
"""

from __future__ import annotations

import textwrap
import time
import urllib.request
from datetime import datetime

import pytest

from tests.support.stack import OPERATOR_USER

pytestmark = pytest.mark.timeout(600)


def seconds_between(start: str, end: str) -> float:
    """Seconds from one RFC 3339 timestamp to another."""
    first = datetime.fromisoformat(start.replace("Z", "+00:00"))
    second = datetime.fromisoformat(end.replace("Z", "+00:00"))
    return (second - first).total_seconds()


def test_create_from_yaml_succeeds_and_cleans_up(stack):
    manifest = textwrap.dedent(
        """\
        apiVersion: coderun.dev/v1alpha1
        kind: CodeRun
        metadata:
          name: hello-yaml
        spec:
          code: |
            print("hello")
        """
    )
    stack.kubectl("create", "-f", "-", input=manifest)
    run = stack.wait_terminal("hello-yaml")
    status = run["status"]
    assert (status["phase"], status["reason"], status["exitCode"]) == ("Succeeded", "Completed", 0)
    assert status["stdout"] == "hello\n" and status["stderr"] == ""
    assert status["conditions"][0] == {
        **status["conditions"][0],
        "type": "Succeeded",
        "status": "True",
    }
    stack.wait_for(lambda: stack.pods_of(run) == [], "the finished run's pod to be deleted")
    table = stack.kubectl("get", "coderun", "hello-yaml").stdout
    assert table.split("\n")[0].split() == ["NAME", "PHASE", "REASON", "EXIT", "DURATION", "AGE"]
    assert "Succeeded" in table and "Completed" in table


def test_a_run_costs_the_operator_four_writes(stack):
    if stack.audit_log is None:
        pytest.skip("API writes are counted from devcluster's audit log")
    mark = stack.audit_mark()
    run = stack.run_and_wait("import time\ntime.sleep(1)\nprint('counted')\n")
    stack.wait_for(lambda: stack.pods_of(run) == [], "the pod to be deleted")
    time.sleep(1)  # let any stray late write show up in the log
    writes = stack.writes_since(mark, OPERATOR_USER)
    assert sorted(writes) == sorted(
        [
            ("create", "pods", "", 201),
            ("patch", "coderuns", "status", 200),  # Running
            ("patch", "coderuns", "status", 200),  # the verdict, in one patch
            ("delete", "pods", "", 200),
        ]
    ), writes


def test_every_status_field_survives_the_schema(stack):
    run = stack.run_and_wait("import sys\nprint('out')\nprint('err', file=sys.stderr)\n")
    status = run["status"]
    for field in [
        "phase",
        "reason",
        "message",
        "stdout",
        "stderr",
        "stdoutTruncated",
        "stderrTruncated",
        "stdoutBytes",
        "stderrBytes",
        "exitCode",
        "durationMs",
        "duration",
        "cpuMs",
        "peakMemoryBytes",
        "image",
        "podName",
        "nodeName",
        "podCreatedTime",
        "scheduledTime",
        "containerStartedTime",
        "startTime",
        "finishedTime",
        "completionTime",
        "observedGeneration",
        "conditions",
    ]:
        assert field in status, field
    assert (status["stdout"], status["stderr"]) == ("out\n", "err\n")
    assert (status["stdoutBytes"], status["stderrBytes"]) == (4, 4)
    created = run["metadata"]["creationTimestamp"]
    assert seconds_between(created, status["podCreatedTime"]) >= -1
    assert seconds_between(status["startTime"], status["finishedTime"]) >= 0
    assert seconds_between(status["finishedTime"], status["completionTime"]) >= 0


@pytest.mark.parametrize(
    ("code", "spec", "reason", "exit_code", "stdout"),
    [
        ("import sys\nprint('partial result')\nsys.exit(3)\n", {}, "Error", 3, "partial result\n"),
        (
            "import os, signal\nprint('x', flush=True)\nos.kill(os.getpid(), signal.SIGSEGV)\n",
            {},
            "Killed",
            139,
            "x\n",
        ),
        ("while True:\n    pass\n", {"timeoutSeconds": 2}, "Timeout", 137, ""),
        (
            "print('start', flush=True)\nhog = []\n"
            "while True:\n    hog.append(b'x' * 10_000_000)\n",
            {"resources": {"memory": "128Mi"}},
            "OOMKilled",
            137,
            "start\n",
        ),
        ("name = input('Name? ')\n", {}, "Error", 1, "Name? "),
    ],
    ids=["exit-code", "signal", "timeout", "oom", "input-without-stdin"],
)
def test_failures_get_their_precise_verdict(stack, code, spec, reason, exit_code, stdout):
    run = stack.run_and_wait(code, **spec)
    status = run["status"]
    assert (status["phase"], status["reason"]) == ("Failed", reason), status["message"]
    assert status["exitCode"] == exit_code
    assert status["stdout"] == stdout
    if reason == "Timeout":
        ran_for = seconds_between(status["startTime"], status["finishedTime"])
        assert 2 <= ran_for < 2 + 5, ran_for


def test_stdin_reaches_the_snippet(stack):
    run = stack.run_and_wait("name = input('Name? ')\nprint('Hi', name)\n", stdin="Ada\n")
    assert run["status"]["stdout"] == "Name? Hi Ada\n"


def test_rejected_spec_gets_no_pod(stack):
    run = stack.run_and_wait("print(1)", runtime="ruby")
    assert (run["status"]["phase"], run["status"]["reason"]) == ("Failed", "Rejected")
    assert "ruby" in run["status"]["message"]
    assert stack.pods_of(run) == []


def test_cancel_stops_a_running_snippet(stack):
    run = stack.create_run(
        "import time\nprint('started', flush=True)\ntime.sleep(60)\n", timeoutSeconds=60
    )
    name = run["metadata"]["name"]
    running = stack.wait_run(name, lambda r: (r.get("status") or {}).get("phase") == "Running")
    # Cancel only once the snippet has printed, as seen in its pod's log.
    stack.wait_for(
        lambda: stack.live_stdout(running["status"]["podName"]) == "started\n",
        "the snippet to print",
    )
    stack.kubectl("patch", "coderun", name, "--type", "merge", "-p", '{"spec":{"cancel":true}}')
    run = stack.wait_terminal(name)
    assert run["status"]["reason"] == "Cancelled"
    assert run["status"]["stdout"] == "started\n"  # what it printed before the cancel is kept
    stack.wait_for(lambda: stack.pods_of(run) == [], "the cancelled run's pod to go")


def test_unschedulable_after_the_pending_limit(stack):
    # More CPU than any node has, within the policy's ceiling.
    run = stack.create_run("print('hi')", resources={"cpu": stack.unplaceable_cpu})
    name = run["metadata"]["name"]
    queued = stack.wait_run(name, lambda r: (r.get("status") or {}).get("reason") == "Queued")
    assert queued["status"]["phase"] == "Pending"
    assert "exitCode" not in queued["status"]
    run = stack.wait_terminal(name)
    assert (run["status"]["phase"], run["status"]["reason"]) == ("Failed", "Unschedulable")
    assert "nodes are available" in run["status"]["message"]


def test_image_pull_failure(stack):
    run = stack.run_and_wait("print(1)", runtime="missing-image")
    assert (run["status"]["phase"], run["status"]["reason"]) == ("Failed", "ImagePullFailed")


def test_config_error_from_the_node(stack):
    # A runtime configured to use the image's own user, on an image whose user is root.
    run = stack.run_and_wait("print(1)", runtime="image-user-on-root-image")
    assert (run["status"]["phase"], run["status"]["reason"]) == ("Failed", "ConfigError")
    assert "runAsNonRoot" in run["status"]["message"]


def test_a_deleted_pod_is_lost(stack):
    run = stack.create_run("import time\ntime.sleep(60)\n", timeoutSeconds=60)
    name = run["metadata"]["name"]
    running = stack.wait_run(name, lambda r: (r.get("status") or {}).get("phase") == "Running")
    stack.kubectl("delete", "pod", running["status"]["podName"], "--wait=false")
    run = stack.wait_terminal(name)
    assert (run["status"]["phase"], run["status"]["reason"]) == ("Failed", "Lost")


def test_largest_snippet_runs(stack):
    line = "# 🐍 é\n"
    filler = line * ((65536 - 20) // len(line))
    run = stack.run_and_wait(filler + "print('big')\n")
    assert run["status"]["stdout"] == "big\n"


def test_longest_run_name(stack):
    run = stack.run_and_wait("print('long')", name="r" * 253)
    assert run["status"]["stdout"] == "long\n"
    assert len(run["status"]["podName"]) <= 63


def test_finished_runs_expire(stack):
    run = stack.run_and_wait("print(1)", ttlSecondsAfterFinished=1)
    stack.wait_for(lambda: stack.get_run(run["metadata"]["name"]) is None, "the run to expire")


def test_deleting_a_run_removes_its_pod(stack):
    run = stack.create_run("import time\ntime.sleep(60)\n", timeoutSeconds=60)
    name = run["metadata"]["name"]
    stack.wait_run(name, lambda r: (r.get("status") or {}).get("phase") == "Running")
    assert len(stack.pods_of(run)) == 1
    stack.kubectl("delete", "coderun", name)
    stack.wait_for(lambda: stack.pods_of(run) == [], "the pod to follow its run")


@pytest.mark.parametrize("moment", ["pod-created", "running", "finished-unreported"])
def test_operator_killed_and_restarted_loses_and_duplicates_nothing(stack, moment):
    code = "import time\nprint('once', flush=True)\ntime.sleep(2)\n"
    if moment == "finished-unreported":
        stack.operator.kill()
        run = stack.create_run("print('once')")
        stack.operator.start()
        stack.wait_terminal(run["metadata"]["name"])
    else:
        run = stack.create_run(code)
        name = run["metadata"]["name"]
        if moment == "pod-created":
            stack.wait_for(lambda: len(stack.pods_of(run)) == 1, "the pod to exist")
        else:
            stack.wait_run(name, lambda r: (r.get("status") or {}).get("phase") == "Running")
        stack.operator.kill()
        stack.operator.start()
    run = stack.wait_terminal(run["metadata"]["name"])
    assert (run["status"]["reason"], run["status"]["stdout"]) == ("Completed", "once\n")
    assert stack.pods_created_for(run) == 1
    assert "AlreadyExists" not in stack.operator.log_text()


def test_a_full_quota_queues_runs_until_capacity_frees(stack):
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "one-pod"},
        "spec": {"hard": {"pods": "1"}},
    }
    stack.core.create_namespaced_resource_quota(stack.namespace, quota)
    try:
        first = stack.create_run("import time\ntime.sleep(3)\nprint('first')\n")
        stack.wait_for(lambda: len(stack.pods_of(first)) == 1, "the first pod")
        second = stack.create_run("print('second')")
        name = second["metadata"]["name"]
        queued = stack.wait_run(name, lambda r: (r.get("status") or {}).get("reason") == "Queued")
        assert queued["status"]["phase"] == "Pending"
        assert "exceeded quota" in queued["status"]["message"]
        done = stack.wait_terminal(name)
        assert (done["status"]["reason"], done["status"]["stdout"]) == ("Completed", "second\n")
        assert stack.wait_terminal(first["metadata"]["name"])["status"]["stdout"] == "first\n"
    finally:
        # The answer is a Status, as on a real API server, which this client version cannot
        # read as a ResourceQuota; the raw response is enough.
        stack.core.delete_namespaced_resource_quota(
            "one-pod", stack.namespace, _preload_content=False
        )


def test_a_pod_the_namespace_policy_refuses_ends_the_run_with_config_error(stack):
    tight = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "tight-memory"},
        "spec": {"limits": [{"type": "Container", "max": {"memory": "64Mi"}}]},
    }
    stack.core.create_namespaced_limit_range(stack.namespace, tight)
    try:
        run = stack.run_and_wait("print('never')")
        status = run["status"]
        assert (status["phase"], status["reason"]) == ("Failed", "ConfigError")
        assert (
            "maximum memory usage per Container is 64Mi, but limit is 128Mi" in (status["message"])
        )
        assert "exitCode" not in status
        assert stack.pods_created_for(run) == 0
    finally:
        stack.core.delete_namespaced_limit_range(
            "tight-memory", stack.namespace, _preload_content=False
        )


def test_metrics_count_runs_by_phase_and_reason(stack):
    if stack.operator is None:
        pytest.skip("the operator's metrics port is reachable only when the tests start it")
    stack.run_and_wait("print('measured')")
    with urllib.request.urlopen(stack.operator_metrics_url, timeout=10) as response:
        text = response.read().decode()
    assert 'coderun_runs_finished_total{phase="Succeeded",reason="Completed"}' in text
    assert "coderun_run_duration_seconds_count" in text
    assert 'coderun_operator_api_calls_total{operation="create_pod",outcome="ok"}' in text
