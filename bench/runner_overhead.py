"""How much the runner adds to starting a snippet: bare ``python -c 'print(1)'`` vs the runner.

Both are measured in the same run, interleaved, N times each, as wall time of the whole process
(what a run pod adds on top of the container start). Usage: ``python bench/runner_overhead.py``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "operator")]

from coderun_operator.run_log import parse_run_log  # noqa: E402
from coderun_operator.runner_delivery import (  # noqa: E402
    RunnerConfig,
    runner_environment,
    runner_source,
)

ITERATIONS = 20
CONFIG = RunnerConfig(
    timeout_seconds=10,
    stdout_limit_bytes=64 * 1024,
    stderr_limit_bytes=64 * 1024,
    file_size_limit_bytes=1024 * 1024,
)


def timed(command: list[str], env: dict[str, str]) -> tuple[float, bytes]:
    """Wall seconds of one process from spawn to exit, and its stdout."""
    started = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, check=True, timeout=60)
    return time.perf_counter() - started, proc.stdout


def summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return (
        f"{name:<8} median {statistics.median(ordered) * 1000:7.1f} ms   p90 {p90 * 1000:7.1f} ms"
    )


def main() -> None:
    python = sys.executable
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    runner_env = dict(base_env)
    runner_env.update({e["name"]: e["value"] for e in runner_environment("print(1)", None, CONFIG)})
    bare_command = [python, "-c", "print(1)"]
    runner_command = [python, "-c", runner_source()]
    # One untimed round of each so both start from warm caches.
    timed(bare_command, base_env)
    timed(runner_command, runner_env)
    bare, wrapped = [], []
    for _ in range(ITERATIONS):
        seconds, _out = timed(bare_command, base_env)
        bare.append(seconds)
        seconds, out = timed(runner_command, runner_env)
        log = parse_run_log(out)
        if log.stdout != "1\n" or log.result is None or log.result.exit_code != 0:
            raise SystemExit(f"the runner did not run print(1) correctly: {log}")
        wrapped.append(seconds)
    print(f"{ITERATIONS} iterations each, {python} ({sys.version.split()[0]})")
    print(summary("bare", bare))
    print(summary("runner", wrapped))
    ratio = statistics.median(wrapped) / statistics.median(bare)
    print(f"ratio    median runner / median bare = {ratio:.2f}x")


if __name__ == "__main__":
    main()
