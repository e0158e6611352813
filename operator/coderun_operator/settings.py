"""Settings of the operator and the web UI, read once from ``CODERUN_*`` variables.

Every process calls one ``load_*`` function at start-up with its environment and keeps the
frozen result; nothing else reads the environment. The run limits are shared: the operator
enforces them and the web UI offers them as choices. A bad value raises `SettingsError`
whose message is one sentence naming the variable, what it must be and what it was.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from coderun_operator import api_bounds
from coderun_operator.quantity import QuantityError, parse_quantity

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_RUNTIME_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")

DEFAULT_RUNTIMES = "python3.12=python:3.12-slim"


class SettingsError(ValueError):
    """A ``CODERUN_*`` variable has a value the program cannot use."""


@dataclass(frozen=True)
class RunLimits:
    """Defaults and ceilings for one run, shared by the operator and the web UI."""

    runtimes: Mapping[str, str]
    default_runtime: str
    default_timeout_seconds: int
    max_timeout_seconds: int
    default_cpu: str
    max_cpu: str
    default_memory: str
    max_memory: str
    max_code_chars: int
    max_stdin_chars: int
    stdout_limit_bytes: int
    stderr_limit_bytes: int
    file_size_limit_bytes: int
    tmp_size: str
    default_ttl_seconds_after_finished: int
    image_user_runtimes: frozenset[str] = frozenset()

    def image_for(self, runtime: str | None) -> str | None:
        """Image of an allowed runtime (the default when None), or None if not allowed."""
        return self.runtimes.get(runtime or self.default_runtime)


@dataclass(frozen=True)
class OperatorSettings:
    """Everything the operator needs besides the Kubernetes connection."""

    limits: RunLimits
    runs_namespace: str
    delete_finished_pods: bool
    pending_limit_seconds: int
    pod_deadline_grace_seconds: int
    run_user_id: int
    run_group_id: int
    runtime_class_name: str | None
    node_selector: Mapping[str, str]
    tolerations: tuple[Mapping[str, Any], ...]
    peering_name: str | None
    health_port: int
    metrics_port: int


@dataclass(frozen=True)
class WebSettings:
    """Everything the web UI needs besides the Kubernetes connection."""

    limits: RunLimits
    runs_namespace: str
    port: int
    workers: int
    threads: int
    trusted_proxy_hops: int
    runs_per_minute_per_client: int
    max_wait_seconds: int


class _Reader:
    """Reads typed values from an environment mapping, failing with one clear sentence."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str, default: str) -> str:
        value = self._env.get(name)
        return default if value is None or value.strip() == "" else value.strip()

    def _fail(self, name: str, expected: str, value: str) -> SettingsError:
        return SettingsError(f"{name} must be {expected}, not {value!r}.")

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self.text(name, str(default))
        expected = f"a whole number from {low} to {high}"
        try:
            number = int(value, 10)
        except ValueError:
            raise self._fail(name, expected, value) from None
        if not low <= number <= high:
            raise self._fail(name, expected, value)
        return number

    def boolean(self, name: str, default: bool) -> bool:
        value = self.text(name, "true" if default else "false")
        lowered = value.lower()
        if lowered in {"1", "true", "yes", "on"}:
            return True
        if lowered in {"0", "false", "no", "off"}:
            return False
        raise self._fail(name, "true or false", value)

    def matching(self, name: str, default: str, pattern: re.Pattern[str], expected: str) -> str:
        value = self.text(name, default)
        if not pattern.match(value):
            raise self._fail(name, expected, value)
        return value

    def optional(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def quantity(self, name: str, default: str, example: str) -> tuple[str, Decimal]:
        value = self.text(name, default)
        try:
            amount = parse_quantity(value)
        except QuantityError:
            raise self._fail(name, f"a Kubernetes quantity such as {example}", value) from None
        if amount <= 0:
            raise self._fail(name, f"a positive Kubernetes quantity such as {example}", value)
        return value, amount

    def pairs(
        self, name: str, default: str, check: Callable[[str, str], bool], expected: str
    ) -> dict[str, str]:
        value = self.text(name, default) if default else self._env.get(name, "").strip()
        result: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            key, sep, val = item.partition("=")
            if not sep or not check(key.strip(), val.strip()) or key.strip() in result:
                raise self._fail(name, expected, value)
            result[key.strip()] = val.strip()
        return result

    def json_list(self, name: str, expected: str) -> list[Any]:
        value = self._env.get(name, "").strip()
        if not value:
            return []
        try:
            parsed = json.loads(value)
        except ValueError:
            raise self._fail(name, expected, value) from None
        if not isinstance(parsed, list) or not all(isinstance(item, dict) for item in parsed):
            raise self._fail(name, expected, value)
        return parsed


def load_run_limits(env: Mapping[str, str]) -> RunLimits:
    """Read the shared run limits from ``env``; raise `SettingsError` on a bad value."""
    read = _Reader(env)
    runtimes = read.pairs(
        "CODERUN_RUNTIMES",
        DEFAULT_RUNTIMES,
        lambda key, val: bool(_RUNTIME_NAME.match(key) and len(key) <= 63 and _IMAGE.match(val)),
        "a comma-separated list of name=image pairs such as python3.12=python:3.12-slim",
    )
    default_runtime = read.text("CODERUN_DEFAULT_RUNTIME", next(iter(runtimes)))
    if default_runtime not in runtimes:
        allowed = ", ".join(sorted(runtimes))
        raise SettingsError(
            f"CODERUN_DEFAULT_RUNTIME must be one of the runtimes in CODERUN_RUNTIMES "
            f"({allowed}), not {default_runtime!r}."
        )
    max_timeout = read.integer("CODERUN_MAX_TIMEOUT_SECONDS", 60, 1, api_bounds.MAX_TIMEOUT_SECONDS)
    default_timeout = read.integer("CODERUN_DEFAULT_TIMEOUT_SECONDS", 10, 1, max_timeout)
    max_cpu, max_cpu_amount = read.quantity("CODERUN_MAX_CPU", "1", "500m or 1")
    default_cpu, cpu_amount = read.quantity("CODERUN_DEFAULT_CPU", "500m", "500m or 1")
    max_memory, max_memory_amount = read.quantity("CODERUN_MAX_MEMORY", "512Mi", "256Mi")
    default_memory, memory_amount = read.quantity("CODERUN_DEFAULT_MEMORY", "256Mi", "256Mi")
    if cpu_amount > max_cpu_amount:
        raise SettingsError(
            f"CODERUN_DEFAULT_CPU ({default_cpu}) must not exceed CODERUN_MAX_CPU ({max_cpu})."
        )
    if memory_amount > max_memory_amount:
        raise SettingsError(
            f"CODERUN_DEFAULT_MEMORY ({default_memory}) must not exceed "
            f"CODERUN_MAX_MEMORY ({max_memory})."
        )
    tmp_size, _ = read.quantity("CODERUN_TMP_SIZE", "64Mi", "64Mi")
    image_user_runtimes = frozenset(
        name.strip()
        for name in env.get("CODERUN_IMAGE_USER_RUNTIMES", "").split(",")
        if name.strip()
    )
    if not image_user_runtimes <= set(runtimes):
        unknown = ", ".join(sorted(image_user_runtimes - set(runtimes)))
        raise SettingsError(
            f"CODERUN_IMAGE_USER_RUNTIMES must name runtimes of CODERUN_RUNTIMES, not {unknown!r}."
        )
    output_cap = api_bounds.MAX_OUTPUT_CHARS
    return RunLimits(
        runtimes=MappingProxyType(runtimes),
        default_runtime=default_runtime,
        default_timeout_seconds=default_timeout,
        max_timeout_seconds=max_timeout,
        default_cpu=default_cpu,
        max_cpu=max_cpu,
        default_memory=default_memory,
        max_memory=max_memory,
        max_code_chars=read.integer(
            "CODERUN_MAX_CODE_CHARS", api_bounds.MAX_CODE_CHARS, 1, api_bounds.MAX_CODE_CHARS
        ),
        max_stdin_chars=read.integer(
            "CODERUN_MAX_STDIN_CHARS", api_bounds.MAX_STDIN_CHARS, 0, api_bounds.MAX_STDIN_CHARS
        ),
        stdout_limit_bytes=read.integer("CODERUN_STDOUT_LIMIT_BYTES", 65536, 1, output_cap),
        stderr_limit_bytes=read.integer("CODERUN_STDERR_LIMIT_BYTES", 65536, 1, output_cap),
        file_size_limit_bytes=read.integer("CODERUN_FILE_SIZE_LIMIT_BYTES", 16 * 2**20, 0, 2**40),
        tmp_size=tmp_size,
        default_ttl_seconds_after_finished=read.integer(
            "CODERUN_TTL_SECONDS_AFTER_FINISHED", 3600, 0, api_bounds.MAX_TTL_SECONDS
        ),
        image_user_runtimes=image_user_runtimes,
    )


def _runs_namespace(read: _Reader) -> str:
    return read.matching(
        "CODERUN_RUNS_NAMESPACE",
        "coderun-runs",
        _DNS_LABEL,
        "a namespace name (lower-case letters, digits and dashes)",
    )


def load_operator_settings(env: Mapping[str, str]) -> OperatorSettings:
    """Read the operator's settings from ``env``; raise `SettingsError` on a bad value."""
    read = _Reader(env)
    node_selector = read.pairs(
        "CODERUN_NODE_SELECTOR",
        "",
        lambda key, val: bool(_LABEL_KEY.match(key) and _LABEL_VALUE.match(val)),
        "a comma-separated list of label=value pairs",
    )
    runtime_class = read.optional("CODERUN_RUNTIME_CLASS")
    if runtime_class is not None and not _DNS_LABEL.match(runtime_class):
        raise SettingsError(
            f"CODERUN_RUNTIME_CLASS must be a RuntimeClass name such as gvisor, "
            f"not {runtime_class!r}."
        )
    peering = read.optional("CODERUN_PEERING")
    if peering is not None and not _DNS_LABEL.match(peering):
        raise SettingsError(
            f"CODERUN_PEERING must be empty (standalone) or a peering object name, not {peering!r}."
        )
    tolerations = read.json_list(
        "CODERUN_TOLERATIONS", "a JSON list of Kubernetes toleration objects"
    )
    return OperatorSettings(
        limits=load_run_limits(env),
        runs_namespace=_runs_namespace(read),
        delete_finished_pods=read.boolean("CODERUN_DELETE_FINISHED_PODS", True),
        pending_limit_seconds=read.integer("CODERUN_PENDING_LIMIT_SECONDS", 120, 1, 86400),
        pod_deadline_grace_seconds=read.integer(
            "CODERUN_POD_DEADLINE_GRACE_SECONDS", 300, 10, 86400
        ),
        run_user_id=read.integer("CODERUN_RUN_USER_ID", 65532, 1, 2**31 - 1),
        run_group_id=read.integer("CODERUN_RUN_GROUP_ID", 65532, 1, 2**31 - 1),
        runtime_class_name=runtime_class,
        node_selector=MappingProxyType(node_selector),
        tolerations=tuple(MappingProxyType(item) for item in tolerations),
        peering_name=peering,
        health_port=read.integer("CODERUN_OPERATOR_HEALTH_PORT", 8081, 1, 65535),
        metrics_port=read.integer("CODERUN_OPERATOR_METRICS_PORT", 9090, 1, 65535),
    )


def load_web_settings(env: Mapping[str, str]) -> WebSettings:
    """Read the web UI's settings from ``env``; raise `SettingsError` on a bad value."""
    read = _Reader(env)
    return WebSettings(
        limits=load_run_limits(env),
        runs_namespace=_runs_namespace(read),
        port=read.integer("CODERUN_PORT", 8080, 1, 65535),
        workers=read.integer("CODERUN_WEB_WORKERS", 2, 1, 64),
        threads=read.integer("CODERUN_WEB_THREADS", 16, 1, 256),
        trusted_proxy_hops=read.integer("CODERUN_TRUSTED_PROXY_HOPS", 0, 0, 10),
        runs_per_minute_per_client=read.integer(
            "CODERUN_RUNS_PER_MINUTE_PER_CLIENT", 30, 1, 100000
        ),
        max_wait_seconds=read.integer("CODERUN_MAX_WAIT_SECONDS", 25, 1, 60),
    )
