"""End-to-end figures for coderun: the whole stack, started once, measured in one run.

Starts devcluster, the operator and the web UI (gunicorn) in a temporary directory, exactly as
`make run` does, then measures, in this order:

1. submit → terminal-status latency of ``print(1)`` through the JSON API, sequential, and the
   ratio to a bare ``python -c 'print(1)'`` (same interpreter, same run);
2. the same runs split into phases from each run's own timestamps (with the precision of each);
3. API writes per run by the operator and by the web UI, from the audit log;
4. throughput at concurrency 1, 8 and 32, against the runner alone at the same concurrency;
5. resident memory of the operator and of one web UI worker after 1,000 runs in all.

Then it stops the stack and writes ``bench/results/latest.json`` and ``latest.md``. Figures,
not pass/fail. Usage: ``python bench/end_to_end.py`` (``--help`` for smaller runs).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from coderun_operator.pod_names import pod_name_for_run
from coderun_operator.run_log import parse_run_log
from coderun_operator.runner_delivery import RunnerConfig, runner_command, runner_environment
from devstack.cluster_setup import SetupError
from devstack.launcher import LocalStack
from devstack.processes import StartError, free_port

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CODE = "print(1)"
# Small CPU requests so that 32+ runs fit at once (this is also each run pod's CPU limit).
# The product's own default of 500m CPU per run (a pod's limit equals its request), so the
# figures describe what a user gets; the nodes below have room for 32 such pods at once.
OPERATOR_ENV = {"CODERUN_DEFAULT_CPU": "500m"}
# The web UI refuses more than 100000 (its ceiling), which is far above what a run can reach.
WEB_ENV = {"CODERUN_RUNS_PER_MINUTE_PER_CLIENT": "100000"}
NODE_ARGS = ("--pods", "80", "--memory", "32Gi", "--cpu", "16")
OPERATOR_USER = "system:serviceaccount:coderun-system:coderun-operator"
WEBUI_USER = "system:serviceaccount:coderun-system:coderun-webui"
WRITE_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})
RUN_TIMEOUT_SECONDS = 120.0
HTTP_TIMEOUT_SECONDS = 60.0
LONG_POLL_SECONDS = 20
SETTLE_SECONDS = 2.0
RUNNER_CONFIG = RunnerConfig(
    timeout_seconds=10,
    stdout_limit_bytes=64 * 1024,
    stderr_limit_bytes=64 * 1024,
    file_size_limit_bytes=1024 * 1024,
)
# The lifecycle of a run as its own timestamps tell it: (label, from field, to field).
PHASES = (
    ("create → pod created", "createdAt", "podCreatedTime"),
    ("pod created → container started", "podCreatedTime", "containerStartedTime"),
    ("container started → code started", "containerStartedTime", "startTime"),
    ("code started → code finished", "startTime", "finishedTime"),
    ("code finished → status written", "finishedTime", "completionTime"),
)


@dataclass(frozen=True)
class Plan:
    """How much to measure; the defaults are the full benchmark."""

    sequential_runs: int = 100
    bare_repetitions: int = 30
    levels: tuple[tuple[int, int], ...] = ((1, 32), (8, 64), (32, 96))
    total_runs: int = 1000
    top_up_concurrency: int = 32
    budget_seconds: float = 13 * 60


@dataclass
class RunRecord:
    """One run through the JSON API, as the client saw it and as its status tells it."""

    name: str = ""
    submitted_wall: float = 0.0
    submitted: float = 0.0
    finished: float = 0.0
    terminal: bool = False
    created_at: str | None = None
    status: dict[str, Any] = field(default_factory=dict)
    error: str = ""

    @property
    def latency(self) -> float:
        """Seconds from sending the POST to receiving the terminal status."""
        return self.finished - self.submitted

    @property
    def succeeded(self) -> bool:
        """True when the run ended with phase Succeeded and printed ``1``."""
        return self.status.get("phase") == "Succeeded" and self.status.get("stdout") == "1\n"

    def stamp(self, key: str) -> str | None:
        """A timestamp of this run: ``createdAt`` from metadata, the rest from the status."""
        return self.created_at if key == "createdAt" else self.status.get(key)


@dataclass
class BatchResult:
    """The runs of one batch and how long the batch took."""

    records: list[RunRecord]
    elapsed: float

    @property
    def completed(self) -> int:
        """Runs that reached a terminal status."""
        return sum(1 for record in self.records if record.terminal)

    @property
    def throughput(self) -> float:
        """Completed runs per second of the batch's wall time."""
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0


class Budget:
    """A soft wall-clock budget for the whole benchmark, and the Ctrl+C flag."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds
        self.stopped = threading.Event()

    def remaining(self) -> float:
        """Seconds left; zero once stopped."""
        return 0.0 if self.stopped.is_set() else max(0.0, self.deadline - time.monotonic())

    def allows(self, seconds: float = 0.0) -> bool:
        """True while at least ``seconds`` remain."""
        return self.remaining() > seconds


class Api:
    """The web UI's JSON API, over loopback."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any, str]:
        """One request; returns (HTTP status, decoded JSON body, Retry-After header)."""
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_SECONDS) as response:
                return response.status, json.loads(response.read() or b"null"), ""
        except urllib.error.HTTPError as error:
            retry_after = error.headers.get("Retry-After", "") if error.headers else ""
            return error.code, json.loads(error.read() or b"null"), retry_after

    def submit(self, code: str, budget: Budget) -> str:
        """Create a run; retries (bounded) on 429 and 503; returns the run's name."""
        for _attempt in range(5):
            status, body, retry_after = self.call("POST", "/api/runs", {"code": code})
            if status == 201:
                return body["name"]
            if status not in (429, 503) or not budget.allows(10):
                break
            time.sleep(min(5.0, float(retry_after or 1)))
        raise RuntimeError(f"POST /api/runs answered {status}: {body}")

    def wait_terminal(self, name: str, budget: Budget) -> dict[str, Any]:
        """Long-poll the run until it is terminal, the run timeout passes or the budget ends."""
        deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
        body: dict[str, Any] = {}
        while time.monotonic() < deadline and not budget.stopped.is_set():
            status, body, _ = self.call("GET", f"/api/runs/{name}?wait={LONG_POLL_SECONDS}")
            if status != 200:
                raise RuntimeError(f"GET /api/runs/{name} answered {status}: {body}")
            if body["terminal"]:
                return body
        return body


def run_once(api: Api, budget: Budget) -> RunRecord:
    """Submit ``print(1)`` and wait for its verdict; errors are recorded, not raised."""
    record = RunRecord(submitted_wall=time.time(), submitted=time.perf_counter())
    try:
        record.name = api.submit(CODE, budget)
        body = api.wait_terminal(record.name, budget)
        record.terminal = bool(body.get("terminal"))
        record.created_at = body.get("createdAt")
        record.status = body.get("status") or {}
    except (OSError, RuntimeError, ValueError, KeyError) as error:
        record.error = f"{type(error).__name__}: {error}"
    record.finished = time.perf_counter()
    return record


def run_sequential(api: Api, count: int, budget: Budget) -> BatchResult:
    """``count`` runs one after the other (fewer if the budget runs out)."""
    started = time.perf_counter()
    records = []
    for _ in range(count):
        if not budget.allows(RUN_TIMEOUT_SECONDS):
            break
        records.append(run_once(api, budget))
    return BatchResult(records, time.perf_counter() - started)


def run_concurrent(api: Api, count: int, concurrency: int, budget: Budget) -> BatchResult:
    """``count`` runs by ``concurrency`` clients at once, each submitting and long-polling."""
    lock = threading.Lock()
    left = [count]

    def take() -> bool:
        with lock:
            if left[0] <= 0 or not budget.allows(RUN_TIMEOUT_SECONDS / 2):
                return False
            left[0] -= 1
            return True

    def client() -> list[RunRecord]:
        mine = []
        while take():
            mine.append(run_once(api, budget))
        return mine

    started = time.perf_counter()
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="client")
    try:
        futures = [pool.submit(client) for _ in range(concurrency)]
        records = [record for future in futures for record in future.result()]
    except KeyboardInterrupt:
        # Clients stop taking runs; their open requests end when the stack stops.
        budget.stopped.set()
        raise
    finally:
        pool.shutdown(wait=not budget.stopped.is_set(), cancel_futures=True)
    return BatchResult(records, time.perf_counter() - started)


def bare_python_seconds(repetitions: int) -> list[float]:
    """Wall seconds of ``python -c 'print(1)'`` (this interpreter), after one warm-up."""
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    command = [sys.executable, "-c", CODE]
    samples = []
    for index in range(repetitions + 1):
        started = time.perf_counter()
        subprocess.run(command, env=env, capture_output=True, check=True, timeout=60)
        if index:
            samples.append(time.perf_counter() - started)
    return samples


def runner_once(env: dict[str, str]) -> bool:
    """Run the runner on ``print(1)`` as a run pod would; True when it printed ``1``."""
    done = subprocess.run(
        runner_command(sys.executable), env=env, capture_output=True, check=False, timeout=60
    )
    log = parse_run_log(done.stdout)
    return log.stdout == "1\n" and log.result is not None and log.result.exit_code == 0


def runner_alone_throughput(count: int, concurrency: int, budget: Budget) -> dict[str, Any]:
    """Runs per second of the runner alone, ``concurrency`` processes at a time."""
    work_dir = tempfile.mkdtemp(prefix="coderun-bench-runner-")
    try:
        config = dataclasses.replace(RUNNER_CONFIG, work_dir=work_dir)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        env.update(
            {entry["name"]: entry["value"] for entry in runner_environment(CODE, None, config)}
        )
        count = count if budget.allows(60) else 0
        started = time.perf_counter()
        with ThreadPoolExecutor(max_workers=concurrency) as pool:
            outcomes = list(pool.map(lambda _: runner_once(env), range(count)))
        elapsed = time.perf_counter() - started
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    ok = sum(outcomes)
    return {
        "concurrency": concurrency,
        "runs": count,
        "ok": ok,
        "seconds": round(elapsed, 3),
        "runsPerSecond": round(ok / elapsed, 2) if elapsed > 0 else 0.0,
    }


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile (p99 of 100 values is the 99th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def epoch(text: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 time; None when absent or malformed."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def is_coarse(stamps: list[str]) -> bool:
    """True when none of the timestamps carries a fraction of a second."""
    return bool(stamps) and not any("." in stamp for stamp in stamps)


def spread(values_seconds: list[float]) -> dict[str, float | int]:
    """p50, mean and p99 in milliseconds, and the number of samples."""
    if not values_seconds:
        return {"n": 0}
    return {
        "n": len(values_seconds),
        "p50Ms": round(statistics.median(values_seconds) * 1000, 1),
        "meanMs": round(statistics.fmean(values_seconds) * 1000, 1),
        "p99Ms": round(percentile(values_seconds, 0.99) * 1000, 1),
    }


def field_precision(records: list[RunRecord], key: str) -> str:
    """``s`` for a field that is whole seconds in every run, ``ms`` otherwise."""
    stamps = [stamp for record in records if (stamp := record.stamp(key))]
    return "s" if is_coarse(stamps) else "ms"


def status_phases(records: list[RunRecord]) -> list[dict[str, Any]]:
    """Each phase from the runs' own timestamps, with the precision of its two ends."""
    rows = []
    for label, start_key, end_key in PHASES:
        durations = []
        for record in records:
            start, end = epoch(record.stamp(start_key)), epoch(record.stamp(end_key))
            if start is not None and end is not None:
                durations.append(end - start)
        precision = f"{field_precision(records, start_key)} → {field_precision(records, end_key)}"
        rows.append(
            {
                "phase": label,
                "fields": f"{start_key} → {end_key}",
                "precision": precision,
                "coarse": "s" in precision.split(" → "),
                **spread(durations),
            }
        )
    return rows


def precise_phases(records: list[RunRecord], bindings: dict[str, float]) -> list[dict[str, Any]]:
    """The same life cycle from sub-second clocks only: the client, the audit log, the status.

    Submit is the client's clock before the POST; "pod bound" is the audit log's pods/binding
    entry (microseconds); code start/finish and completion are the status's millisecond times.
    """
    steps: dict[str, list[float]] = {
        "submit → pod bound (audit)": [],
        "pod bound → code started": [],
        "code started → code finished": [],
        "code finished → status written": [],
        "status written → client saw it": [],
        "submit → client saw terminal": [],
    }
    for record in records:
        bound = bindings.get(pod_name_for_run(record.name))
        started = epoch(record.status.get("startTime"))
        ended = epoch(record.status.get("finishedTime"))
        written = epoch(record.status.get("completionTime"))
        seen = record.submitted_wall + record.latency
        if None in (bound, started, ended, written):
            continue
        steps["submit → pod bound (audit)"].append(bound - record.submitted_wall)
        steps["pod bound → code started"].append(started - bound)
        steps["code started → code finished"].append(ended - started)
        steps["code finished → status written"].append(written - ended)
        steps["status written → client saw it"].append(seen - written)
        steps["submit → client saw terminal"].append(record.latency)
    return [{"phase": label, **spread(values)} for label, values in steps.items()]


def audit_line_count(path: Path) -> int:
    """Complete lines in the audit log so far."""
    with path.open("rb") as handle:
        return handle.read().count(b"\n")


def audit_entries(path: Path, first: int, last: int) -> list[dict[str, Any]]:
    """Audit entries from line ``first`` (inclusive) to ``last`` (exclusive)."""
    with path.open("rb") as handle:
        lines = handle.read().split(b"\n")[first:last]
    return [json.loads(line) for line in lines if line.strip()]


def writes_per_run(entries: list[dict[str, Any]], user: str, runs: int) -> dict[str, Any]:
    """API writes by ``user`` divided by runs, in total and per verb and resource."""
    kinds: Counter[str] = Counter()
    refused = 0
    for entry in entries:
        if entry.get("user") == user and entry.get("verb") in WRITE_VERBS:
            resource = entry.get("resource", "")
            if entry.get("subresource"):
                resource += "/" + entry["subresource"]
            kinds[f"{entry['verb']} {resource}"] += 1
            refused += int(entry.get("code", 200)) >= 400
    total = sum(kinds.values())
    return {
        "writes": total,
        "refused": refused,
        "perRun": round(total / runs, 2) if runs else None,
        "byKind": {kind: round(count / runs, 2) for kind, count in sorted(kinds.items())}
        if runs
        else {},
    }


def binding_times(entries: list[dict[str, Any]]) -> dict[str, float]:
    """When each pod was bound to a node, by pod name, from the audit log."""
    times = {}
    for entry in entries:
        if (entry.get("resource"), entry.get("subresource"), entry.get("verb")) == (
            "pods",
            "binding",
            "create",
        ):
            moment = epoch(entry.get("time"))
            if moment is not None and entry.get("name"):
                times.setdefault(entry["name"], moment)
    return times


def rss_kib(pid: int) -> int | None:
    """VmRSS of a process in KiB, from /proc; None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def child_pids(pid: int) -> list[int]:
    """Direct children of a process (gunicorn's workers, for its master)."""
    children = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # Fields after the command name (which may hold spaces) start with state, then ppid.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            children.append(int(entry.name))
    return sorted(children)


def memory_snapshot(stack: LocalStack) -> dict[str, Any]:
    """RSS (KiB) of the operator, the gunicorn master and each of its workers."""
    operator = stack.children["operator"].process
    master = stack.children["webui"].process
    workers = child_pids(master.pid) if master else []
    return {
        "operatorKiB": rss_kib(operator.pid) if operator else None,
        "webMasterKiB": rss_kib(master.pid) if master else None,
        "webWorkersKiB": [rss_kib(pid) for pid in workers],
    }


def machine_info() -> dict[str, Any]:
    """nproc, memory, CPU model, Python version, date and load of this machine."""
    meminfo = Path("/proc/meminfo").read_text().splitlines()
    total_kib = next((int(line.split()[1]) for line in meminfo if line.startswith("MemTotal")), 0)
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    model = next(
        (line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
        platform.processor() or "unknown",
    )
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "memoryGiB": round(total_kib / 1024 / 1024, 1),
        "cpuModel": model,
        "python": platform.python_version(),
        "pythonExecutable": sys.executable,
        "kernel": platform.release(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadAverageAtStart": [round(load, 2) for load in os.getloadavg()],
    }


def settle() -> None:
    """Let the last run's follow-up writes (pod deletion) land before the next measurement."""
    time.sleep(SETTLE_SECONDS)


def latency_summary(batch: BatchResult, bare: list[float]) -> dict[str, Any]:
    """Sequential latency percentiles and the ratio to a bare interpreter start."""
    latencies = [record.latency for record in batch.records if record.terminal]
    bare_median = statistics.median(bare) if bare else 0.0
    summary: dict[str, Any] = {
        "runs": len(batch.records),
        "terminal": len(latencies),
        "succeeded": sum(record.succeeded for record in batch.records),
        "bareMedianMs": round(bare_median * 1000, 1),
        "bareRepetitions": len(bare),
        **spread(latencies),
    }
    if latencies and bare_median:
        summary["ratioP50ToBare"] = round(statistics.median(latencies) / bare_median, 1)
    cpu = [record.status["cpuMs"] for record in batch.records if "cpuMs" in record.status]
    duration = [
        record.status["durationMs"] for record in batch.records if "durationMs" in record.status
    ]
    if cpu and duration:
        summary["snippetCpuMsP50"] = statistics.median(cpu)
        summary["snippetDurationMsP50"] = statistics.median(duration)
    return summary


def batch_summary(concurrency: int, batch: BatchResult, limit: dict[str, Any]) -> dict[str, Any]:
    """Throughput of one concurrency level and its share of the runner-alone limit."""
    ok = sum(record.succeeded for record in batch.records)
    limit_rate = limit.get("runsPerSecond") or 0.0
    return {
        "concurrency": concurrency,
        "runs": len(batch.records),
        "succeeded": ok,
        "seconds": round(batch.elapsed, 2),
        "runsPerSecond": round(batch.throughput, 3),
        "latency": spread([record.latency for record in batch.records if record.terminal]),
        "runnerAlone": limit,
        "shareOfRunnerAlone": round(batch.throughput / limit_rate, 4) if limit_rate else None,
    }


def errors_of(records: Iterable[RunRecord]) -> list[str]:
    """Distinct errors and non-succeeded outcomes, for the report (first few)."""
    seen: Counter[str] = Counter()
    for record in records:
        if record.error:
            seen[record.error[:160]] += 1
        elif not record.terminal:
            seen["not terminal within the run timeout"] += 1
        elif not record.succeeded:
            seen[f"{record.status.get('phase')}/{record.status.get('reason')}"] += 1
    return [f"{count} x {text}" for text, count in seen.most_common(5)]


def mib(kib: int | None) -> str:
    """KiB as a short MiB figure."""
    return "n/a" if kib is None else f"{kib / 1024:.0f} MiB"


def render_markdown(results: dict[str, Any]) -> str:
    """The short Markdown report."""
    machine, latency = results["machine"], results["latency"]
    writes, memory = results["apiWritesPerRun"], results["memory"]
    lines = [
        f"## coderun end-to-end benchmark, {machine['date']}",
        "",
        "| Measure | Value |",
        "| --- | --- |",
        f"| Machine | nproc {machine['nproc']}, {machine['memoryGiB']} GiB, "
        f"{machine['cpuModel']}, Python {machine['python']}, "
        f"load {'/'.join(map(str, machine['loadAverageAtStart']))} at start |",
        f"| `print(1)` submit → terminal, sequential (n={latency.get('n', 0)}) | "
        f"p50 {latency.get('p50Ms')} ms, p99 {latency.get('p99Ms')} ms |",
        f"| bare `python -c 'print(1)'` (n={latency['bareRepetitions']}) | "
        f"median {latency['bareMedianMs']} ms → ratio p50/bare "
        f"{latency.get('ratioP50ToBare')}x |",
        f"| `print(1)` inside its pod (status cpuMs / durationMs, p50) | "
        f"{latency.get('snippetCpuMsP50')} ms CPU in {latency.get('snippetDurationMsP50')} ms "
        f"wall (each pod is limited to {OPERATOR_ENV['CODERUN_DEFAULT_CPU']} CPU) |",
    ]
    for who, key in (("operator", "operator"), ("web UI", "webui")):
        kinds = ", ".join(f"{kind} {n}" for kind, n in writes[key]["byKind"].items())
        lines.append(f"| API writes per run, {who} | {writes[key]['perRun']} ({kinds}) |")
    for level in results["throughput"]:
        limit = level["runnerAlone"]
        share = level["shareOfRunnerAlone"]
        lines.append(
            f"| throughput at concurrency {level['concurrency']} ({level['runs']} runs) | "
            f"{level['runsPerSecond']} runs/s; runner alone {limit['runsPerSecond']} runs/s "
            f"→ {share * 100 if share is not None else float('nan'):.1f} % |"
        )
    workers = ", ".join(mib(kib) for kib in memory["after"]["webWorkersKiB"])
    lines += [
        f"| RSS after {memory['runsBefore']} runs: operator | "
        f"{mib(memory['after']['operatorKiB'])} "
        f"(after warm-up {mib(memory['start']['operatorKiB'])}) |",
        f"| RSS after {memory['runsBefore']} runs: web UI worker(s) | {workers} "
        f"(after warm-up {', '.join(mib(k) for k in memory['start']['webWorkersKiB'])}) |",
        f"| runs in session / not succeeded | {results['runsTotal']} / "
        f"{results['runsNotSucceeded']} |",
        f"| wall time of the benchmark | {results['wallSeconds']:.0f} s "
        f"(load {'/'.join(map(str, results['loadAverageAtEnd']))} at end) |",
        "",
        "Phases of the sequential runs, from each run's own timestamps "
        "(precision `s` = whole seconds: one run's figure is off by up to ±1 s, "
        "only the mean over many runs means something):",
        "",
        "| Phase | Fields | Precision | p50 ms | mean ms | p99 ms |",
        "| --- | --- | --- | ---: | ---: | ---: |",
    ]
    for row in results["phases"]["status"]:
        lines.append(
            f"| {row['phase']} | {row['fields']} | {row['precision']}"
            f"{' (coarse)' if row['coarse'] else ''} | {row.get('p50Ms')} | {row.get('meanMs')} "
            f"| {row.get('p99Ms')} |"
        )
    lines += [
        "",
        "The same runs from sub-second clocks only (client, audit log µs, status ms):",
        "",
        "| Phase | p50 ms | mean ms | p99 ms |",
        "| --- | ---: | ---: | ---: |",
    ]
    for row in results["phases"]["precise"]:
        lines.append(
            f"| {row['phase']} | {row.get('p50Ms')} | {row.get('meanMs')} | {row.get('p99Ms')} |"
        )
    if results["problems"]:
        lines += ["", "Not succeeded: " + "; ".join(results["problems"])]
    return "\n".join(lines) + "\n"


def write_results(results: dict[str, Any]) -> str:
    """Write latest.json and latest.md; returns the Markdown."""
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    markdown = render_markdown(results)
    (RESULTS_DIR / "latest.md").write_text(markdown)
    return markdown


def say(message: str) -> None:
    """Progress on stderr, so stdout keeps only the table."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed_step(name: str, step: Callable[[], Any]) -> Any:
    """Run one measurement step and say how long it took."""
    started = time.perf_counter()
    say(f"{name} ...")
    value = step()
    say(f"{name}: done in {time.perf_counter() - started:.1f} s")
    return value


def measure(stack: LocalStack, plan: Plan, budget: Budget) -> dict[str, Any]:
    """All measurements against a running stack; returns the results without the machine."""
    api, audit = Api(stack.url), stack.log_dir / "audit.jsonl"
    everything: list[RunRecord] = []
    warm = timed_step("warm-up (3 runs)", lambda: run_sequential(api, 3, budget))
    everything += warm.records
    settle()
    memory_start = memory_snapshot(stack)
    bare = timed_step("bare python", lambda: bare_python_seconds(plan.bare_repetitions))
    limits = {
        concurrency: timed_step(
            f"runner alone x{concurrency}",
            lambda c=concurrency, n=count: runner_alone_throughput(n, c, budget),
        )
        for concurrency, count in plan.levels
    }
    first_line = audit_line_count(audit)
    sequential = timed_step(
        f"sequential {plan.sequential_runs}",
        lambda: run_sequential(api, plan.sequential_runs, budget),
    )
    everything += sequential.records
    settle()
    entries = audit_entries(audit, first_line, audit_line_count(audit))
    runs = len(sequential.records)
    throughput = []
    for concurrency, count in plan.levels:
        batch = timed_step(
            f"concurrency {concurrency} x{count}",
            lambda c=concurrency, n=count: run_concurrent(api, n, c, budget),
        )
        everything += batch.records
        throughput.append(batch_summary(concurrency, batch, limits[concurrency]))
        settle()
    missing = max(0, plan.total_runs - len(everything))
    top_up = timed_step(
        f"top-up {missing} runs at concurrency {plan.top_up_concurrency}",
        lambda: run_concurrent(api, missing, plan.top_up_concurrency, budget),
    )
    everything += top_up.records
    settle()
    return {
        "latency": latency_summary(sequential, bare),
        "phases": {
            "status": status_phases(sequential.records),
            "precise": precise_phases(sequential.records, binding_times(entries)),
        },
        "apiWritesPerRun": {
            "runs": runs,
            "operator": writes_per_run(entries, OPERATOR_USER, runs),
            "webui": writes_per_run(entries, WEBUI_USER, runs),
        },
        "throughput": throughput,
        "topUp": {
            "runs": len(top_up.records),
            "concurrency": plan.top_up_concurrency,
            "seconds": round(top_up.elapsed, 2),
            "runsPerSecond": round(top_up.throughput, 3),
        },
        "memory": {
            "runsBefore": len(everything),
            "start": memory_start,
            "after": memory_snapshot(stack),
        },
        "runsTotal": len(everything),
        "runsNotSucceeded": sum(not record.succeeded for record in everything),
        "problems": errors_of(everything),
    }


def parse_plan(argv: list[str] | None) -> Plan:
    """The plan from the command line (defaults: the full benchmark)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    default = Plan()
    parser.add_argument("--sequential-runs", type=int, default=default.sequential_runs)
    parser.add_argument("--bare-repetitions", type=int, default=default.bare_repetitions)
    parser.add_argument(
        "--levels",
        default=",".join(f"{c}:{n}" for c, n in default.levels),
        help="concurrency:runs pairs, comma-separated (default %(default)s)",
    )
    parser.add_argument("--total-runs", type=int, default=default.total_runs)
    parser.add_argument("--budget-seconds", type=float, default=default.budget_seconds)
    args = parser.parse_args(argv)
    levels = tuple(
        (int(c), int(n)) for c, n in (pair.split(":") for pair in args.levels.split(","))
    )
    return Plan(
        sequential_runs=args.sequential_runs,
        bare_repetitions=args.bare_repetitions,
        levels=levels,
        total_runs=args.total_runs,
        budget_seconds=args.budget_seconds,
    )


def raise_interrupt(_signum: int, _frame: Any) -> None:
    """Turn SIGTERM into KeyboardInterrupt so the stack is stopped the same way."""
    raise KeyboardInterrupt


def stop_stack(stack: LocalStack, state: Path) -> None:
    """Stop every part of the stack, ignoring further Ctrl+C until it is down."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        timed_step("stopping the stack", stack.stop)
        shutil.rmtree(state, ignore_errors=True)
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: list[str] | None = None) -> int:
    """Start the stack, measure, stop the stack, write and print the results."""
    plan = parse_plan(argv)
    # Explicit, so Ctrl+C works even when started with SIGINT ignored (a background job).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, raise_interrupt)
    started = time.perf_counter()
    machine = machine_info()
    budget = Budget(plan.budget_seconds)
    state = Path(tempfile.mkdtemp(prefix="coderun-bench-"))
    stack = LocalStack(
        state, free_port(), operator_env=OPERATOR_ENV, web_env=WEB_ENV, node_args=NODE_ARGS
    )
    try:
        timed_step("starting the stack", stack.start_all)
        results = measure(stack, plan, budget)
    except KeyboardInterrupt:
        budget.stopped.set()
        say("interrupted; stopping the stack")
        return 130
    except (StartError, SetupError) as error:
        say(f"the stack did not start: {error}")
        return 1
    finally:
        budget.stopped.set()
        stop_stack(stack, state)
    results = {"machine": machine, "plan": dataclasses.asdict(plan), **results}
    results["wallSeconds"] = round(time.perf_counter() - started, 1)
    results["loadAverageAtEnd"] = [round(load, 2) for load in os.getloadavg()]
    results["nodeAgentArgv"] = list(stack.children["node-agent"].argv[3:])
    print(write_results(results), end="")
    say(f"wrote {RESULTS_DIR / 'latest.json'} and latest.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
