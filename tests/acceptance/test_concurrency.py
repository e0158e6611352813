"""A hundred runs through the JSON API, as many at once as the nodes have room for: every one
right, none lost or doubled.

The local stack's nodes take all hundred at once. A small cluster (one kind node on a CI
machine) takes them in waves: a run whose pod waits for room longer than the pending limit
(10 s in the suite's settings) is rightly reported Unschedulable, which is not what this tests.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.timeout(900)
RUNS = 100
# Fewer at once than this would no longer test concurrency.
FEWEST_AT_ONCE = 10


def test_a_hundred_runs_submitted_at_once_all_finish_right(full_stack):
    # Leave a fifth of the room: the scheduler's view and ours may differ a little.
    at_once = min(RUNS, full_stack.run_slots() * 4 // 5)
    assert at_once >= FEWEST_AT_ONCE, f"the nodes have room for only {at_once} runs at once"
    names: list[str] = []
    results: list[dict] = []
    with ThreadPoolExecutor(max_workers=16) as pool:
        for first in range(0, RUNS, at_once):
            wave = range(first, min(first + at_once, RUNS))
            submitted = list(pool.map(lambda i: full_stack.submit(f"print({i} * 2)"), wave))
            results += pool.map(lambda name: full_stack.result(name, timeout=600), submitted)
            names += submitted
    assert len(set(names)) == RUNS
    for i, result in enumerate(results):
        status = result["status"]
        assert (status["phase"], status["stdout"]) == ("Succeeded", f"{i * 2}\n"), status
    for name in names:
        uid = full_stack.coderun(name)["metadata"]["uid"]
        assert len(full_stack.pod_watch.uids_for(uid)) == 1, name
    deadline = time.monotonic() + 120
    while full_stack.run_pods() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert full_stack.run_pods() == []
