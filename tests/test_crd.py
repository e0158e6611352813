"""The CodeRun CRD: valid for the API server, structural, documented, bounded."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from coderun_operator import api_bounds
from tests.support.manifests import KUBERNETES_VERSION

CRD_PATH = Path(__file__).resolve().parent.parent / "crds" / "coderun.yaml"

# Every status field of the design's contract; the API server prunes undeclared ones.
STATUS_FIELDS = {
    "phase", "reason", "message", "stdout", "stderr", "stdoutTruncated", "stderrTruncated",
    "stdoutBytes", "stderrBytes", "exitCode", "signal", "startTime", "completionTime",
    "durationMs", "duration", "cpuMs", "peakMemoryBytes", "podCreatedTime", "scheduledTime",
    "containerStartedTime", "finishedTime", "image", "podName", "nodeName", "conditions",
    "observedGeneration",
}  # fmt: skip
IMMUTABLE_SPEC_FIELDS = {"code", "stdin", "timeoutSeconds", "resources", "runtime",
                         "ttlSecondsAfterFinished"}  # fmt: skip


@pytest.fixture(scope="module")
def crd() -> dict:
    return yaml.safe_load(CRD_PATH.read_text())


@pytest.fixture(scope="module")
def version(crd) -> dict:
    (only,) = crd["spec"]["versions"]
    return only


@pytest.fixture(scope="module")
def schema(version) -> dict:
    return version["schema"]["openAPIV3Schema"]


def _validator(schema: dict) -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(schema, format_checker=jsonschema.FormatChecker())


def _walk(node: dict, path: str):
    yield path, node
    for name, child in node.get("properties", {}).items():
        yield from _walk(child, f"{path}.{name}")
    if "items" in node:
        yield from _walk(node["items"], f"{path}[]")


def test_crd_is_valid_for_kubernetes(crd):
    kubernetes_validate.validate(crd, KUBERNETES_VERSION, strict=True)


def test_names_and_scope(crd, version):
    assert crd["metadata"]["name"] == f"{api_bounds.PLURAL}.{api_bounds.API_GROUP}"
    assert crd["spec"]["group"] == api_bounds.API_GROUP
    assert crd["spec"]["scope"] == "Namespaced"
    names = crd["spec"]["names"]
    assert (names["kind"], names["plural"]) == (api_bounds.KIND, api_bounds.PLURAL)
    assert names["shortNames"] == ["crun"]
    assert version["name"] == api_bounds.API_VERSION
    assert version["served"] and version["storage"]
    assert version["subresources"] == {"status": {}}


def test_schema_is_structural_and_documented(schema):
    for path, node in _walk(schema, ""):
        if path == ".metadata":
            continue
        int_or_string = node.get("x-kubernetes-int-or-string") is True
        assert "type" in node or int_or_string, f"{path} has no type"
        assert node.get("description"), f"{path} has no description for kubectl explain"
        if node.get("type") == "object" and path not in {""}:
            assert "properties" in node, f"{path} is an object without declared fields"


def test_status_declares_every_contract_field(schema):
    assert set(schema["properties"]["status"]["properties"]) == STATUS_FIELDS


def test_bounds_match_the_shared_constants(schema):
    spec = schema["properties"]["spec"]["properties"]
    status = schema["properties"]["status"]["properties"]
    assert spec["code"]["maxLength"] == api_bounds.MAX_CODE_CHARS
    assert spec["code"]["minLength"] == 1
    assert spec["stdin"]["maxLength"] == api_bounds.MAX_STDIN_CHARS
    assert spec["timeoutSeconds"]["maximum"] == api_bounds.MAX_TIMEOUT_SECONDS
    assert spec["ttlSecondsAfterFinished"]["maximum"] == api_bounds.MAX_TTL_SECONDS
    assert status["stdout"]["maxLength"] == api_bounds.MAX_OUTPUT_CHARS
    assert status["stderr"]["maxLength"] == api_bounds.MAX_OUTPUT_CHARS
    assert status["message"]["maxLength"] == api_bounds.MAX_MESSAGE_CHARS


def test_no_schema_defaults_for_limits(schema):
    # Defaults for timeout and resources are the operator's settings, not the schema's.
    for path, node in _walk(schema, ""):
        assert "default" not in node, f"{path} has a schema default"


def test_spec_is_fixed_after_creation_except_cancel(schema):
    spec = schema["properties"]["spec"]
    for name in IMMUTABLE_SPEC_FIELDS:
        rules = [rule["rule"] for rule in spec["properties"][name]["x-kubernetes-validations"]]
        assert rules == ["self == oldSelf"], name
    (presence,) = spec["x-kubernetes-validations"]
    for name in IMMUTABLE_SPEC_FIELDS - {"code"}:
        assert f"has(self.{name}) == has(oldSelf.{name})" in presence["rule"]
    cancel_rules = [
        rule["rule"] for rule in spec["properties"]["cancel"]["x-kubernetes-validations"]
    ]
    assert cancel_rules == ["self || !oldSelf"]


def test_printer_columns(version, schema):
    columns = version["additionalPrinterColumns"]
    default_columns = [column["name"] for column in columns if not column.get("priority")]
    assert default_columns == ["Phase", "Reason", "Exit", "Duration", "Age"]
    status = schema["properties"]["status"]["properties"]
    for column in columns:
        head, _, field = column["jsonPath"].lstrip(".").partition(".")
        if head == "status":
            assert field in status, column


VALID_RUNS = [
    {"spec": {"code": "print(1)"}},
    {
        "spec": {
            "code": "print(input())",
            "stdin": "Ada\n",
            "timeoutSeconds": 30,
            "resources": {"cpu": "500m", "memory": "256Mi"},
            "runtime": "python3.12",
            "ttlSecondsAfterFinished": 600,
            "cancel": False,
        },
        "status": {
            "phase": "Failed",
            "reason": "OOMKilled",
            "message": "The snippet used more memory than its limit of 256Mi.",
            "exitCode": 137,
            "signal": 9,
            "stdout": "start\n",
            "stdoutTruncated": False,
            "stdoutBytes": 6,
            "durationMs": 1234,
            "duration": "1.23s",
            "startTime": "2026-12-03T10:00:00.123456Z",
            "conditions": [
                {
                    "type": "Succeeded",
                    "status": "False",
                    "reason": "OOMKilled",
                    "lastTransitionTime": "2026-12-03T10:00:01Z",
                }
            ],
        },
    },
    {"spec": {"code": "x", "resources": {"cpu": 1, "memory": "1Gi"}}},
    {"spec": {"code": "a" * api_bounds.MAX_CODE_CHARS}},
]


@pytest.mark.parametrize("run", VALID_RUNS)
def test_valid_runs_are_accepted(schema, run):
    obj = {"apiVersion": "coderun.dev/v1alpha1", "kind": "CodeRun", "metadata": {"name": "r"}}
    errors = list(_validator(schema).iter_errors({**obj, **run}))
    assert errors == []


INVALID_RUNS = [
    ({}, "spec"),
    ({"spec": {}}, "spec"),
    ({"spec": {"code": ""}}, "spec.code"),
    ({"spec": {"code": 42}}, "spec.code"),
    ({"spec": {"code": "a" * (api_bounds.MAX_CODE_CHARS + 1)}}, "spec.code"),
    ({"spec": {"code": "x", "stdin": "a" * (api_bounds.MAX_STDIN_CHARS + 1)}}, "spec.stdin"),
    ({"spec": {"code": "x", "timeoutSeconds": 0}}, "spec.timeoutSeconds"),
    ({"spec": {"code": "x", "timeoutSeconds": "10"}}, "spec.timeoutSeconds"),
    ({"spec": {"code": "x", "timeoutSeconds": 3601}}, "spec.timeoutSeconds"),
    ({"spec": {"code": "x", "resources": {"cpu": "lots"}}}, "spec.resources.cpu"),
    ({"spec": {"code": "x", "resources": {"memory": True}}}, "spec.resources.memory"),
    ({"spec": {"code": "x", "runtime": "Python 3"}}, "spec.runtime"),
    ({"spec": {"code": "x", "cancel": "yes"}}, "spec.cancel"),
    ({"spec": {"code": "x", "ttlSecondsAfterFinished": -1}}, "spec.ttlSecondsAfterFinished"),
    ({"spec": {"code": "x"}, "status": {"phase": "Done"}}, "status.phase"),
    ({"spec": {"code": "x"}, "status": {"reason": "not a word"}}, "status.reason"),
    ({"spec": {"code": "x"}, "status": {"startTime": "yesterday"}}, "status.startTime"),
    ({"spec": {"code": "x"}, "status": {"conditions": [{"type": "Succeeded"}]}},
     "status.conditions.0"),
]  # fmt: skip


@pytest.mark.parametrize(("run", "field"), INVALID_RUNS)
def test_invalid_runs_are_refused_with_the_field_named(schema, run, field):
    obj = {"apiVersion": "coderun.dev/v1alpha1", "kind": "CodeRun", "metadata": {"name": "r"}}
    errors = list(_validator(schema).iter_errors({**obj, **copy.deepcopy(run)}))
    assert errors, f"{run} was accepted"
    paths = {".".join(str(part) for part in error.absolute_path) for error in errors}
    named = {
        error.message.split("'")[1] for error in errors if "required property" in error.message
    }
    assert field in paths or field in named or any(p.startswith(field) for p in paths), paths
