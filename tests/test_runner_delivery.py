"""Delivering the runner and its inputs to a pod: source, command and chunked environment."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from coderun_operator import runner
from coderun_operator.runner_delivery import (
    CHUNK_BYTES,
    CODE_ENV_PREFIX,
    CONFIG_ENV,
    STDIN_ENV_PREFIX,
    RunnerConfig,
    runner_command,
    runner_environment,
    runner_source,
    split_utf8,
)

MAX_ARG_STRLEN = 131072
CONFIG = RunnerConfig(
    timeout_seconds=5, stdout_limit_bytes=1000, stderr_limit_bytes=2000, file_size_limit_bytes=3000
)

# What the kubelet does to a container's env values and command: `$$` stands for `$`, and
# `$(NAME)` becomes the value of NAME when an earlier env entry defines it (else stays as is).
_KUBELET_REFERENCE = re.compile(r"\$\$|\$\(([^)]*)\)")


def kubelet_expand(text: str, defined: dict[str, str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return defined.get(match.group(1), match.group(0))

    return _KUBELET_REFERENCE.sub(replace, text)


def container_environment(entries: list[dict[str, str]]) -> dict[str, str]:
    """The environment a container gets from these pod ``env`` entries."""
    env: dict[str, str] = {}
    for entry in entries:
        env[entry["name"]] = kubelet_expand(entry["value"], env)
    return env


def read_back(env: dict[str, str], prefix: str) -> str:
    parts = []
    while f"{prefix}{len(parts)}" in env:
        parts.append(env[f"{prefix}{len(parts)}"])
    return "".join(parts)


def test_runner_source_is_the_runner_file():
    assert runner_source() == Path(runner.__file__).read_text(encoding="utf-8")
    assert runner_command() == ["python", "-I", "-c", runner_source()]


def test_small_run_gives_config_and_one_code_chunk_and_no_stdin():
    env = runner_environment('print("hi")', None, CONFIG)
    assert [e["name"] for e in env] == ["CODERUN_RUNNER_CONFIG", "CODERUN_RUNNER_CODE_0"]
    assert json.loads(env[0]["value"]) == {
        "timeoutSeconds": 5,
        "stdoutLimitBytes": 1000,
        "stderrLimitBytes": 2000,
        "fileSizeLimitBytes": 3000,
        "workDir": "/tmp",
    }
    assert env[1]["value"] == 'print("hi")'


def test_empty_stdin_is_passed_unlike_no_stdin():
    env = runner_environment("x", "", CONFIG)
    assert env[-1] == {"name": "CODERUN_RUNNER_STDIN_0", "value": ""}


def test_mapping_config_is_accepted_and_unknown_keys_are_refused():
    wire = {**CONFIG.to_wire(), "python": "/usr/bin/python3"}
    env = runner_environment("x", None, wire)
    assert json.loads(env[0]["value"])["python"] == "/usr/bin/python3"
    with pytest.raises(ValueError, match="timeout"):
        runner_environment("x", None, {"timeout": 3})


def test_large_code_and_stdin_are_split_below_the_kernel_limit():
    code = "# " + "\U0001f40d" * 80_000 + "\nprint(1)\n"
    stdin = "\u00e9" * 150_001
    env = runner_environment(code, stdin, CONFIG)
    code_parts = [e["value"] for e in env if e["name"].startswith("CODERUN_RUNNER_CODE_")]
    stdin_parts = [e["value"] for e in env if e["name"].startswith("CODERUN_RUNNER_STDIN_")]
    assert "".join(code_parts) == code and len(code_parts) == 4
    assert "".join(stdin_parts) == stdin and len(stdin_parts) == 4
    assert [e["name"] for e in env][1:5] == [f"CODERUN_RUNNER_CODE_{n}" for n in range(4)]
    for entry in env:
        # "NAME=value" plus the terminating NUL, as execve sees it.
        assert len(entry["name"]) + 1 + len(entry["value"].encode()) + 1 < MAX_ARG_STRLEN


@pytest.mark.parametrize("text", ["a\x00b", "\ud800"])
def test_text_an_environment_cannot_carry_is_refused(text):
    with pytest.raises(ValueError):
        runner_environment(text, None, CONFIG)
    with pytest.raises(ValueError):
        runner_environment("x", text, CONFIG)


def test_split_utf8_never_cuts_a_character():
    rng = random.Random(7)
    alphabet = ["a", "\u00e9", "\u20ac", "\U0001f40d", "\n"]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randrange(60)))
        limit = rng.randrange(4, 20)
        pieces = split_utf8(text, limit)
        assert "".join(pieces) == text
        assert all(len(piece.encode()) <= limit for piece in pieces)
        assert all(pieces) or pieces == [""]


def test_split_utf8_edge_cases():
    assert split_utf8("") == [""]
    assert split_utf8("x" * CHUNK_BYTES) == ["x" * CHUNK_BYTES]
    assert split_utf8("x" * (CHUNK_BYTES + 1)) == ["x" * CHUNK_BYTES, "x"]
    with pytest.raises(ValueError):
        split_utf8("abc", 3)


@pytest.mark.parametrize(
    "text",
    [
        'os.system("echo $$ $HOME")',
        "print('$(CODERUN_RUNNER_CONFIG)')",
        "$$(CODERUN_RUNNER_CONFIG) $$$(PATH) $( $) $",
        "x = 1  # " + "\u00e9" * 60_000 + "\n" + "print('$(CODERUN_RUNNER_CODE_0)')\n" * 100,
    ],
    ids=["dollars", "reference", "escapes", "second-chunk-names-the-first"],
)
def test_text_survives_the_kubelets_variable_expansion(text):
    config = RunnerConfig(
        timeout_seconds=5,
        stdout_limit_bytes=1,
        stderr_limit_bytes=1,
        file_size_limit_bytes=1,
        work_dir="/tmp/$(CODERUN_RUNNER_CODE_0)$$",
    )
    env = container_environment(runner_environment(text, text, config))
    assert read_back(env, CODE_ENV_PREFIX) == text
    assert read_back(env, STDIN_ENV_PREFIX) == text
    assert json.loads(env[CONFIG_ENV]) == config.to_wire()
    for name, value in env.items():
        assert len(name) + 1 + len(value.encode()) + 1 < MAX_ARG_STRLEN


def test_runner_source_survives_the_kubelets_variable_expansion():
    # The pod's command is expanded too, with the container's environment.
    env = container_environment(runner_environment("x", "y", CONFIG))
    assert kubelet_expand(runner_source(), env) == runner_source()
