"""Settings: defaults that work, every bad value stopped with one clear sentence."""

import pytest

from coderun_operator import api_bounds
from coderun_operator.settings import (
    SettingsError,
    load_operator_settings,
    load_run_limits,
    load_web_settings,
)


def test_defaults_work_out_of_the_box():
    limits = load_run_limits({})
    assert limits.default_runtime == "python3.12"
    assert limits.image_for(None) == "python:3.12-slim"
    assert limits.image_for("python3.12") == "python:3.12-slim"
    assert limits.image_for("ruby") is None
    assert limits.default_timeout_seconds <= limits.max_timeout_seconds
    assert limits.stdout_limit_bytes <= api_bounds.MAX_OUTPUT_CHARS
    operator = load_operator_settings({})
    assert operator.runs_namespace == "coderun-runs"
    assert operator.runtime_class_name is None
    assert operator.peering_name is None
    assert dict(operator.node_selector) == {}
    web = load_web_settings({})
    assert web.port == 8080
    assert web.max_wait_seconds == 25


def test_values_are_read_and_frozen():
    env = {
        "CODERUN_RUNTIMES": "python3.12=python:3.12-slim, python3.13=python:3.13-slim",
        "CODERUN_DEFAULT_RUNTIME": "python3.13",
        "CODERUN_MAX_TIMEOUT_SECONDS": "120",
        "CODERUN_DEFAULT_TIMEOUT_SECONDS": "30",
        "CODERUN_NODE_SELECTOR": "pool=runs,cloud.google.com/gke-nodepool=sandbox",
        "CODERUN_TOLERATIONS": '[{"key": "sandbox", "operator": "Exists"}]',
        "CODERUN_RUNTIME_CLASS": "gvisor",
        "CODERUN_DELETE_FINISHED_PODS": "false",
        "CODERUN_PORT": "9000",
    }
    operator = load_operator_settings(env)
    assert operator.limits.image_for(None) == "python:3.13-slim"
    assert operator.limits.max_timeout_seconds == 120
    assert operator.limits.default_timeout_seconds == 30
    assert dict(operator.node_selector) == {
        "pool": "runs",
        "cloud.google.com/gke-nodepool": "sandbox",
    }
    assert operator.tolerations[0]["key"] == "sandbox"
    assert operator.runtime_class_name == "gvisor"
    assert operator.delete_finished_pods is False
    assert load_web_settings(env).port == 9000
    with pytest.raises(AttributeError):
        operator.runs_namespace = "elsewhere"  # type: ignore[misc]
    with pytest.raises(TypeError):
        operator.limits.runtimes["evil"] = "attacker/image"  # type: ignore[index]


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"CODERUN_MAX_TIMEOUT_SECONDS": "abc"}, "CODERUN_MAX_TIMEOUT_SECONDS"),
        ({"CODERUN_MAX_TIMEOUT_SECONDS": "0"}, "CODERUN_MAX_TIMEOUT_SECONDS"),
        ({"CODERUN_MAX_TIMEOUT_SECONDS": "3601"}, "CODERUN_MAX_TIMEOUT_SECONDS"),
        ({"CODERUN_DEFAULT_TIMEOUT_SECONDS": "61"}, "CODERUN_DEFAULT_TIMEOUT_SECONDS"),
        ({"CODERUN_DEFAULT_CPU": "lots"}, "CODERUN_DEFAULT_CPU"),
        ({"CODERUN_DEFAULT_CPU": "2"}, "CODERUN_DEFAULT_CPU"),
        ({"CODERUN_MAX_MEMORY": "-1Gi"}, "CODERUN_MAX_MEMORY"),
        ({"CODERUN_DEFAULT_MEMORY": "1Gi"}, "CODERUN_DEFAULT_MEMORY"),
        ({"CODERUN_STDOUT_LIMIT_BYTES": "200000"}, "CODERUN_STDOUT_LIMIT_BYTES"),
        ({"CODERUN_MAX_CODE_CHARS": "70000"}, "CODERUN_MAX_CODE_CHARS"),
        ({"CODERUN_RUNTIMES": "python"}, "CODERUN_RUNTIMES"),
        ({"CODERUN_RUNTIMES": "Python=python:3.12"}, "CODERUN_RUNTIMES"),
        ({"CODERUN_RUNTIMES": "a=img one"}, "CODERUN_RUNTIMES"),
        ({"CODERUN_RUNTIMES": "a=x,a=y"}, "CODERUN_RUNTIMES"),
        ({"CODERUN_DEFAULT_RUNTIME": "ruby"}, "CODERUN_DEFAULT_RUNTIME"),
        ({"CODERUN_RUNS_NAMESPACE": "Runs_Here"}, "CODERUN_RUNS_NAMESPACE"),
        ({"CODERUN_DELETE_FINISHED_PODS": "maybe"}, "CODERUN_DELETE_FINISHED_PODS"),
        ({"CODERUN_NODE_SELECTOR": "pool"}, "CODERUN_NODE_SELECTOR"),
        ({"CODERUN_TOLERATIONS": "{not json"}, "CODERUN_TOLERATIONS"),
        ({"CODERUN_TOLERATIONS": '{"key": "x"}'}, "CODERUN_TOLERATIONS"),
        ({"CODERUN_RUNTIME_CLASS": "G Visor"}, "CODERUN_RUNTIME_CLASS"),
        ({"CODERUN_PEERING": "Bad Name"}, "CODERUN_PEERING"),
    ],
)
def test_bad_values_stop_start_up_with_one_sentence(env, names):
    with pytest.raises(SettingsError) as caught:
        load_operator_settings(env)
    message = str(caught.value)
    assert message.startswith(names)
    assert message.endswith(".")
    assert message.count(". ") == 0, message  # one sentence


@pytest.mark.parametrize(
    ("name", "value"),
    [("CODERUN_PORT", "http"), ("CODERUN_WEB_WORKERS", "0"), ("CODERUN_MAX_WAIT_SECONDS", "61")],
)
def test_bad_web_values_name_the_variable(name, value):
    with pytest.raises(SettingsError, match=name):
        load_web_settings({name: value})


def test_blank_values_mean_default():
    assert load_run_limits({"CODERUN_MAX_TIMEOUT_SECONDS": "  "}).max_timeout_seconds == 60


def test_image_user_runtimes_must_be_known_runtimes():
    with pytest.raises(SettingsError, match="CODERUN_IMAGE_USER_RUNTIMES"):
        load_run_limits({"CODERUN_IMAGE_USER_RUNTIMES": "nope"})
    limits = load_run_limits({"CODERUN_IMAGE_USER_RUNTIMES": "python3.12"})
    assert limits.image_user_runtimes == {"python3.12"}
