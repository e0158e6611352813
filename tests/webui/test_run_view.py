"""A CodeRun object becomes what the page shows, even with little or no status."""

from webui.run_view import format_bytes, format_seconds, is_terminal, run_view

RUN = {
    "metadata": {
        "name": "run-abcdefghijklmnopqrstuvwx",
        "creationTimestamp": "2026-12-03T10:00:00Z",
        "resourceVersion": "42",
    },
    "spec": {"code": "print('hi')\n", "timeoutSeconds": 10},
}


def test_a_new_run_without_status_is_pending():
    view = run_view(RUN)
    assert (view.phase, view.terminal, view.headline) == ("Pending", False, "Waiting to start")
    assert view.stdout.text == "" and view.timings == []
    assert not is_terminal(RUN)


def test_a_finished_run_with_truncated_output_and_timings():
    run = dict(
        RUN,
        status={
            "phase": "Failed",
            "reason": "Timeout",
            "message": "The snippet ran longer than 10 s.",
            "stdout": "y" * 10,
            "stdoutTruncated": True,
            "stdoutBytes": 1_000_000,
            "exitCode": 137,
            "signal": 9,
            "durationMs": 10_004,
            "peakMemoryBytes": 5 * 2**20,
            "podCreatedTime": "2026-12-03T10:00:00.250000Z",
            "scheduledTime": "2026-12-03T10:00:00.300000Z",
            "containerStartedTime": "2026-12-03T10:00:01.300000Z",
            "startTime": "2026-12-03T10:00:01.400000Z",
            "finishedTime": "2026-12-03T10:00:11.404000Z",
            "completionTime": "2026-12-03T10:00:11.900000Z",
        },
    )
    view = run_view(run)
    assert view.terminal and view.headline == "Failed: Timeout"
    assert (view.exit_code, view.signal, view.duration) == (137, 9, "10.00 s")
    assert view.stdout.truncated and view.stdout.total_bytes == 1_000_000
    assert view.stdout.shown_bytes == 10
    assert view.peak_memory == "5.0 MiB"
    steps = [(step.label, step.after_created, step.took) for step in view.timings]
    assert steps[0] == ("Pod created", "250 ms", "250 ms")
    assert steps[2] == ("Container started", "1.30 s", "1.00 s")
    assert steps[-1] == ("Result recorded", "11.90 s", "496 ms")


def test_odd_status_values_do_not_break_the_view():
    run = dict(RUN, status={"phase": "Running", "exitCode": "x", "stdout": 5, "startTime": "?"})
    view = run_view(run)
    assert view.phase == "Running" and view.exit_code is None and view.stdout.text == ""
    assert view.timings == []


def test_a_cancel_request_shows_while_the_run_stops():
    run = dict(RUN, spec={**RUN["spec"], "cancel": True}, status={"phase": "Running"})
    assert run_view(run).headline == "Cancelling…"


def test_formatting():
    assert format_seconds(0.4204) == "420 ms"
    assert format_seconds(3.256) == "3.26 s"
    assert format_seconds(125) == "2 min 5 s"
    assert format_bytes(1) == "1 byte"
    assert format_bytes(65536) == "64.0 KiB"


def test_a_queued_run_says_queued():
    run = dict(RUN, status={"phase": "Pending", "message": "Queued: the cluster is full."})
    assert run_view(run).headline == "Queued"
