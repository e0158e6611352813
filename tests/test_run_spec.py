"""A CodeRun spec becomes a plan with defaults filled in, or a rejection users can act on."""

import pytest

from coderun_operator.run_spec import Rejection, RunPlan, resolve_run_spec
from coderun_operator.settings import load_run_limits

LIMITS = load_run_limits(
    {"CODERUN_RUNTIMES": "python3.12=python:3.12-slim,python3.13=python:3.13-slim"}
)


def test_defaults_fill_a_minimal_spec():
    plan = resolve_run_spec({"code": "print(1)"}, LIMITS)
    assert plan == RunPlan(
        code="print(1)",
        stdin=None,
        timeout_seconds=10,
        cpu="500m",
        memory="256Mi",
        runtime="python3.12",
        image="python:3.12-slim",
        tmp_size_bytes=64 * 2**20,
        ttl_seconds_after_finished=3600,
    )


def test_explicit_values_are_kept():
    spec = {
        "code": "print(input())",
        "stdin": "Ada\n",
        "timeoutSeconds": 60,
        "resources": {"cpu": 1, "memory": "512Mi"},
        "runtime": "python3.13",
        "ttlSecondsAfterFinished": 0,
    }
    plan = resolve_run_spec(spec, LIMITS)
    assert isinstance(plan, RunPlan)
    assert (plan.stdin, plan.timeout_seconds, plan.cpu, plan.memory) == ("Ada\n", 60, "1", "512Mi")
    assert (plan.image, plan.ttl_seconds_after_finished) == ("python:3.13-slim", 0)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({}, "code is required"),
        ({"code": "   \n"}, "code is empty"),
        ({"code": 42}, "code must be text"),
        ({"code": "x" * 65537}, "the limit is 65536"),
        ({"code": "x", "stdin": ["a"]}, "stdin must be text"),
        ({"code": "x", "timeoutSeconds": 61}, "timeoutSeconds must be a whole number from 1 to 60"),
        ({"code": "x", "timeoutSeconds": True}, "timeoutSeconds"),
        ({"code": "x", "timeoutSeconds": "10"}, "timeoutSeconds"),
        ({"code": "x", "resources": {"cpu": "4"}}, "resources.cpu 4 is above the limit of 1"),
        ({"code": "x", "resources": {"memory": "2Gi"}}, "above the limit of 512Mi"),
        ({"code": "x", "resources": {"memory": "lots"}}, "not a Kubernetes quantity"),
        ({"code": "x", "resources": {"cpu": "0"}}, "more than zero"),
        ({"code": "x", "resources": "big"}, "resources must be an object"),
        ({"code": "x", "runtime": "ruby"}, "choose one of: python3.12, python3.13"),
        ({"code": "x", "ttlSecondsAfterFinished": -5}, "ttlSecondsAfterFinished"),
    ],
)
def test_specs_outside_policy_are_rejected_with_a_reason(spec, fragment):
    result = resolve_run_spec(spec, LIMITS)
    assert isinstance(result, Rejection)
    assert fragment in result.message
    assert result.message.startswith("The run was rejected: ")


def test_every_problem_is_reported_at_once():
    result = resolve_run_spec({"code": "", "timeoutSeconds": 0, "runtime": "ruby"}, LIMITS)
    assert isinstance(result, Rejection)
    assert len(result.problems) == 3


def test_a_spec_that_is_not_an_object_is_rejected():
    assert isinstance(resolve_run_spec("print(1)", LIMITS), Rejection)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"code": "print('\ud800')"}, "code contains an unpaired UTF-16 surrogate"),
        ({"code": "print(1)", "stdin": "a\udc00"}, "stdin contains an unpaired UTF-16 surrogate"),
        ({"code": "print(1)\x00"}, "code contains a NUL character"),
        ({"code": "print(input())", "stdin": "a\x00b"}, "stdin contains a NUL character"),
    ],
)
def test_text_no_pod_can_carry_is_rejected_not_retried(spec, fragment):
    result = resolve_run_spec(spec, LIMITS)
    assert isinstance(result, Rejection)
    assert fragment in result.message
