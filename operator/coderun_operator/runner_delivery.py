"""How the runner and its inputs reach a run pod: the runner's source and the pod's ``env``.

The pod runs ``python -c <runner source>``; the snippet, its stdin and the runner's settings
travel as environment variables. Linux limits each ``NAME=value`` string to 128 KiB, so code
and stdin are split into numbered chunks (``CODERUN_RUNNER_CODE_0``, ``_1``, ...). The kubelet
expands ``$(NAME)`` in env values and reads ``$$`` as ``$``, so every ``$`` is sent doubled.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

CONFIG_ENV = "CODERUN_RUNNER_CONFIG"
CODE_ENV_PREFIX = "CODERUN_RUNNER_CODE_"
STDIN_ENV_PREFIX = "CODERUN_RUNNER_STDIN_"
# Linux MAX_ARG_STRLEN is 131072 bytes for "NAME=value\0"; this leaves room for the name.
CHUNK_BYTES = 100_000
# Keys of CODERUN_RUNNER_CONFIG, as the runner reads them.
CONFIG_KEYS = frozenset(
    {
        "timeoutSeconds",
        "stdoutLimitBytes",
        "stderrLimitBytes",
        "fileSizeLimitBytes",
        "workDir",
        "python",
    }
)


@dataclass(frozen=True)
class RunnerConfig:
    """The runner's settings for one run (``CODERUN_RUNNER_CONFIG``)."""

    timeout_seconds: float
    stdout_limit_bytes: int
    stderr_limit_bytes: int
    file_size_limit_bytes: int
    work_dir: str = "/tmp"
    python: str | None = None

    def to_wire(self) -> dict[str, Any]:
        """The JSON object the runner expects, camelCase keys, unset ``python`` left out."""
        wire: dict[str, Any] = {
            "timeoutSeconds": self.timeout_seconds,
            "stdoutLimitBytes": self.stdout_limit_bytes,
            "stderrLimitBytes": self.stderr_limit_bytes,
            "fileSizeLimitBytes": self.file_size_limit_bytes,
            "workDir": self.work_dir,
        }
        if self.python is not None:
            wire["python"] = self.python
        return wire


@cache
def runner_source() -> str:
    """The text of the runner program, to pass as ``python -c <source>``."""
    return resources.files("coderun_operator").joinpath("runner.py").read_text(encoding="utf-8")


def runner_command(python: str = "python") -> list[str]:
    """The container command that starts the runner with the image's interpreter.

    ``-I`` keeps the working directory (the writable /tmp the snippet shares) and PYTHON*
    variables out of the runner's imports.
    """
    return [python, "-I", "-c", runner_source()]


def split_utf8(text: str, max_bytes: int = CHUNK_BYTES) -> list[str]:
    """Split text into pieces whose UTF-8 encoding is at most max_bytes, never inside a character.

    Always returns at least one piece (an empty text gives one empty piece).
    """
    if max_bytes < 4:
        raise ValueError("max_bytes must leave room for a 4-byte character")
    data = text.encode("utf-8")
    pieces = []
    start = 0
    while start < len(data):
        end = min(start + max_bytes, len(data))
        # Move back off UTF-8 continuation bytes (10xxxxxx) so a character stays whole.
        while end < len(data) and data[end] & 0xC0 == 0x80:
            end -= 1
        pieces.append(data[start:end].decode("utf-8"))
        start = end
    return pieces or [""]


def _check_env_text(name: str, text: str) -> None:
    if "\x00" in text:
        raise ValueError(f"{name} contains a NUL character, which an environment cannot carry.")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{name} is not valid Unicode text (lone surrogate).") from None


def _escape_references(value: str) -> str:
    """The env value that the kubelet's ``$(NAME)`` expansion turns back into ``value``."""
    return value.replace("$", "$$")


def _config_wire(config: RunnerConfig | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(config, RunnerConfig):
        return config.to_wire()
    unknown = set(config) - CONFIG_KEYS
    if unknown:
        raise ValueError(f"Unknown runner config keys: {', '.join(sorted(unknown))}.")
    return dict(config)


def _chunk_entries(prefix: str, text: str) -> list[dict[str, str]]:
    # Split before escaping: the limit is on what the container gets, after the expansion.
    return [
        {"name": f"{prefix}{index}", "value": _escape_references(piece)}
        for index, piece in enumerate(split_utf8(text))
    ]


def runner_environment(
    code: str, stdin: str | None, config: RunnerConfig | Mapping[str, Any]
) -> list[dict[str, str]]:
    """The pod ``env`` entries carrying the runner's config, the code and the stdin.

    ``stdin=None`` leaves stdin closed (the snippet reads end-of-file at once). ``config`` is a
    `RunnerConfig` or a mapping with the runner's camelCase keys.
    """
    _check_env_text("The code", code)
    if stdin is not None:
        _check_env_text("The stdin", stdin)
    config_json = json.dumps(_config_wire(config), separators=(",", ":"), allow_nan=False)
    env = [{"name": CONFIG_ENV, "value": _escape_references(config_json)}]
    env += _chunk_entries(CODE_ENV_PREFIX, code)
    if stdin is not None:
        env += _chunk_entries(STDIN_ENV_PREFIX, stdin)
    return env
