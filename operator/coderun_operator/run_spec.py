"""Resolve a CodeRun's spec against the settings: a plan to run, or the reasons it may not run.

The CRD's schema already bounds every field; the operator still checks everything itself,
because the settings may be tighter than the schema and a cluster may run an older CRD.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from coderun_operator.quantity import QuantityError, parse_quantity
from coderun_operator.settings import RunLimits


@dataclass(frozen=True)
class RunPlan:
    """What the operator will run, with every default filled in."""

    code: str
    stdin: str | None
    timeout_seconds: int
    cpu: str
    memory: str
    runtime: str
    image: str
    tmp_size_bytes: int
    ttl_seconds_after_finished: int
    # The image defines its own non-root user; the pod then sets no numeric user.
    image_user: bool = False


@dataclass(frozen=True)
class Rejection:
    """Why a spec falls outside policy, as sentences a user can act on."""

    problems: tuple[str, ...]

    @property
    def message(self) -> str:
        """All problems in one message."""
        return "The run was rejected: " + " ".join(self.problems)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_text(spec: Mapping[str, Any], name: str, limit: int, required: bool) -> list[str]:
    value = spec.get(name)
    if value is None:
        return [f"{name} is required."] if required else []
    if not isinstance(value, str):
        return [f"{name} must be text."]
    if required and not value.strip():
        return [f"{name} is empty; there is nothing to run."]
    if len(value) > limit:
        return [f"{name} has {len(value)} characters; the limit is {limit}."]
    # Environment variables (how code and stdin reach the pod) cannot carry these.
    if "\x00" in value:
        return [f"{name} contains a NUL character, which cannot be passed to the snippet."]
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return [f"{name} contains an unpaired UTF-16 surrogate, which is not valid text."]
    return []


def _check_quantity(value: Any, name: str, ceiling: str) -> list[str]:
    try:
        amount = parse_quantity(value)
    except QuantityError:
        return [f"resources.{name} {value!r} is not a Kubernetes quantity such as 500m or 256Mi."]
    if amount <= 0:
        return [f"resources.{name} must be more than zero."]
    if amount > parse_quantity(ceiling):
        return [f"resources.{name} {value} is above the limit of {ceiling}."]
    return []


def resolve_run_spec(spec: Mapping[str, Any], limits: RunLimits) -> RunPlan | Rejection:
    """Fill in defaults from ``limits`` and check every field; never raises on bad input."""
    if not isinstance(spec, Mapping):
        return Rejection(("spec must be an object with at least code.",))
    problems = _check_text(spec, "code", limits.max_code_chars, required=True)
    problems += _check_text(spec, "stdin", limits.max_stdin_chars, required=False)

    timeout = spec.get("timeoutSeconds", limits.default_timeout_seconds)
    if not _is_int(timeout) or not 1 <= timeout <= limits.max_timeout_seconds:
        problems.append(
            f"timeoutSeconds must be a whole number from 1 to {limits.max_timeout_seconds}, "
            f"not {timeout!r}."
        )

    resources = spec.get("resources") or {}
    if not isinstance(resources, Mapping):
        problems.append("resources must be an object with cpu and memory.")
        resources = {}
    cpu = resources.get("cpu", limits.default_cpu)
    memory = resources.get("memory", limits.default_memory)
    problems += _check_quantity(cpu, "cpu", limits.max_cpu)
    problems += _check_quantity(memory, "memory", limits.max_memory)

    runtime = spec.get("runtime") or limits.default_runtime
    image = limits.runtimes.get(runtime) if isinstance(runtime, str) else None
    if image is None:
        allowed = ", ".join(sorted(limits.runtimes))
        problems.append(f"runtime {runtime!r} is not offered here; choose one of: {allowed}.")

    ttl = spec.get("ttlSecondsAfterFinished", limits.default_ttl_seconds_after_finished)
    if not _is_int(ttl) or ttl < 0:
        problems.append(f"ttlSecondsAfterFinished must be a whole number of seconds, not {ttl!r}.")

    if problems:
        return Rejection(tuple(problems))
    return RunPlan(
        code=spec["code"],
        stdin=spec.get("stdin"),
        timeout_seconds=timeout,
        cpu=str(cpu),
        memory=str(memory),
        runtime=runtime,
        image=image,
        tmp_size_bytes=int(parse_quantity(limits.tmp_size)),
        ttl_seconds_after_finished=ttl,
        image_user=runtime in limits.image_user_runtimes,
    )
