"""Inputs that broke other code runners, operators and web UIs, each with the behaviour we owe.

Every case runs on the whole stack. Times are checked from the run's own status timestamps.
"""

from __future__ import annotations

import json
import re
import textwrap
import time
import urllib.parse
import urllib.request
from datetime import datetime

import pytest

pytestmark = pytest.mark.timeout(900)


def seconds(start: str, end: str) -> float:
    parse = lambda text: datetime.fromisoformat(text.replace("Z", "+00:00"))  # noqa: E731
    return (parse(end) - parse(start)).total_seconds()


def yaml_run(full_stack, name: str, timeout: int | None, code: str) -> dict:
    """Create a CodeRun from YAML with kubectl, as the reports did, and wait for its verdict."""
    limit = f"  timeoutSeconds: {timeout}\n" if timeout else ""
    manifest = (
        f"apiVersion: coderun.dev/v1alpha1\nkind: CodeRun\nmetadata:\n  name: {name}\nspec:\n"
        f"{limit}  code: |\n{textwrap.indent(code, '    ')}"
    )
    full_stack.kubectl("create", "-f", "-", input=manifest)
    return full_stack.wait_coderun_terminal(name)


def test_endless_output_is_capped_and_nothing_runs_out_of_memory(full_stack):
    before = full_stack.service_incarnations()
    run = yaml_run(full_stack, "flood", 10, 'while True:\n    print("y" * 1000)\n')
    status = run["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "Timeout")
    assert status["stdoutTruncated"] is True
    kept = len(status["stdout"].encode())
    assert 0 < kept <= 65536
    assert status["stdout"].startswith("y" * 1000)
    assert status["stdoutBytes"] > kept
    assert len(json.dumps(run)) < 1_000_000
    # Operator, web UI (and on the local stack the cluster's processes): none restarted.
    assert full_stack.service_incarnations() == before


def test_bytes_that_are_not_utf8_become_replacement_characters(full_stack):
    code = (
        'import sys\nprint("h\\u00e9llo \\U0001F40D", flush=True)\n'
        'sys.stdout.buffer.write(b"raw:\\xff\\xfe\\n")\n'
    )
    status = full_stack.run(code)
    assert (status["phase"], status["exitCode"]) == ("Succeeded", 0)
    assert status["stdout"] == "h\u00e9llo \U0001f40d\nraw:\ufffd\ufffd\n"


def test_output_printed_before_a_timeout_is_kept(full_stack):
    run = yaml_run(
        full_stack, "sleepy", 5, 'import time\nprint("before sleep")\ntime.sleep(3600)\n'
    )
    status = run["status"]
    assert (status["phase"], status["reason"], status["stdout"]) == (
        "Failed",
        "Timeout",
        "before sleep\n",
    )
    assert 5 <= seconds(status["startTime"], status["finishedTime"]) < 5 + 5
    assert seconds(run["metadata"]["creationTimestamp"], status["completionTime"]) < 5 + 60


def test_stdout_and_stderr_stay_apart(full_stack):
    status = full_stack.run(
        'import sys\nprint("out1")\nprint("err1", file=sys.stderr)\nprint("out2")\n'
    )
    assert status["phase"] == "Succeeded"
    assert (status["stdout"], status["stderr"]) == ("out1\nout2\n", "err1\n")


def test_markup_in_the_output_is_escaped_on_the_page(full_stack):
    body = "code=" + urllib.parse.quote('print("</pre><script>alert(1)</script><b>bold</b>")')
    request = urllib.request.Request(
        full_stack.url + "/runs",
        data=body.encode(),
        method="POST",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as redirect:
        opener.open(request, timeout=30)
    assert redirect.value.code == 303
    name = redirect.value.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    status = full_stack.result(name)["status"]
    assert status["stdout"] == "</pre><script>alert(1)</script><b>bold</b>\n"
    with urllib.request.urlopen(f"{full_stack.url}/runs/{name}", timeout=30) as response:
        html = response.read().decode()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in html


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_input_without_stdin_fails_at_once_and_with_stdin_works(full_stack):
    status = full_stack.run('name = input("Name? ")\nprint("Hi", name)\n')
    assert (status["phase"], status["exitCode"], status["stdout"]) == ("Failed", 1, "Name? ")
    assert "EOFError" in status["stderr"]
    assert status["durationMs"] < 10_000
    status = full_stack.run('name = input("Name? ")\nprint("Hi", name)\n', stdin="Ada\n")
    assert (status["phase"], status["stdout"]) == ("Succeeded", "Name? Hi Ada\n")


def test_a_non_zero_exit_is_a_failure_with_its_code(full_stack):
    status = full_stack.run('import sys\nprint("partial result")\nsys.exit(3)\n')
    assert (status["phase"], status["exitCode"], status["stdout"]) == (
        "Failed",
        3,
        "partial result\n",
    )


def test_infinite_loops_time_out_and_the_service_keeps_working(full_stack):
    for attempt in range(3):
        run = yaml_run(full_stack, f"spin-{attempt}", 5, "while True:\n    pass\n")
        status = run["status"]
        assert (status["phase"], status["reason"], status["stdout"]) == ("Failed", "Timeout", "")
        assert seconds(run["metadata"]["creationTimestamp"], status["completionTime"]) < 40
    assert not [
        pod
        for pod in full_stack.run_pods()
        if pod["status"].get("phase") == "Running"
        and pod["metadata"]["name"].startswith("crun-spin")
    ]
    assert full_stack.run('print("next")')["stdout"] == "next\n"


def test_a_fork_bomb_is_stopped_and_leaves_nothing_behind(full_stack):
    code = textwrap.dedent(
        """\
        import os
        while True:
            try:
                if os.fork() == 0:
                    os.setsid()
            except OSError:
                pass
        """
    )
    run = yaml_run(full_stack, "forker", 5, code)
    assert run["status"]["phase"] == "Failed"
    assert run["status"]["reason"] in ("Timeout", "Killed")
    full_stack.wait_for_no_pod(run["status"]["podName"])
    assert full_stack.run('print("alive")')["stdout"] == "alive\n"


def test_memory_hogs_are_reported_as_out_of_memory(full_stack):
    code = 'print("start", flush=True)\nhog = []\nwhile True:\n    hog.append(b"x" * 10_000_000)\n'
    status = full_stack.run(code)
    assert (status["phase"], status["reason"], status["exitCode"]) == ("Failed", "OOMKilled", 137)
    assert status["stdout"] == "start\n"


# devcluster_only: kills and restarts the local operator process, then reads its log file.
@pytest.mark.devcluster_only
def test_an_operator_restart_after_the_pod_exists_neither_fails_nor_duplicates(full_stack):
    full_stack.kubectl(
        "create",
        "-f",
        "-",
        input=(
            "apiVersion: coderun.dev/v1alpha1\nkind: CodeRun\nmetadata:\n  name: once\nspec:\n"
            '  code: |\n    import time\n    time.sleep(2)\n    print("once")\n'
        ),
    )
    uid = full_stack.coderun("once")["metadata"]["uid"]
    deadline = time.monotonic() + 120
    while not full_stack.pod_watch.uids_for(uid) and time.monotonic() < deadline:
        time.sleep(0.1)
    full_stack.restart_operator()
    run = full_stack.wait_coderun_terminal("once")
    assert (run["status"]["phase"], run["status"]["stdout"]) == ("Succeeded", "once\n")
    assert len(full_stack.pod_watch.uids_for(uid)) == 1
    log = full_stack.operator_log()
    assert "AlreadyExists" not in log
    assert not re.search(r"Handler '\w+' failed", log)


def test_a_pod_that_cannot_be_placed_is_pending_never_running(full_stack):
    nodes = [node["metadata"]["name"] for node in full_stack.schedulable_nodes()]
    assert nodes
    for node in nodes:
        full_stack.kubectl("cordon", node)
    try:
        full_stack.kubectl(
            "create",
            "-f",
            "-",
            input=(
                "apiVersion: coderun.dev/v1alpha1\nkind: CodeRun\nmetadata:\n"
                "  name: cannot-schedule\n"
                'spec:\n  code: |\n    print("hi")\n'
            ),
        )
        seen = []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            status = (full_stack.coderun("cannot-schedule") or {}).get("status") or {}
            seen.append(status.get("phase"))
            if status.get("phase") == "Failed":
                break
            assert status.get("phase") in (None, "Pending"), status
            assert status.get("exitCode") is None and not status.get("stdout")
            time.sleep(0.5)
        assert "Pending" in seen
        assert (status["phase"], status["reason"]) == ("Failed", "Unschedulable")
        assert "unschedulable" in status["message"]
    finally:
        for node in nodes:
            full_stack.kubectl("uncordon", node)
