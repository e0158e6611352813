"""A hundred runs at once through the JSON API: every one right, none lost or doubled."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

pytestmark = pytest.mark.timeout(900)
RUNS = 100


def test_a_hundred_concurrent_runs_all_finish_right(full_stack):
    with ThreadPoolExecutor(max_workers=16) as pool:
        names = list(pool.map(lambda i: full_stack.submit(f"print({i} * 2)"), range(RUNS)))
        results = list(pool.map(lambda name: full_stack.result(name, timeout=600), names))
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
