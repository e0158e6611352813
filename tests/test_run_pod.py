"""The run pod manifest: golden, schema-valid, and within Linux's per-string limits."""

import kubernetes_validate
import pytest

from coderun_operator.run_log import max_log_bytes
from coderun_operator.run_pod import build_run_pod, run_pod_selector
from coderun_operator.run_spec import RunPlan, resolve_run_spec
from coderun_operator.runner_delivery import runner_source
from coderun_operator.settings import load_operator_settings

RUN = {
    "apiVersion": "coderun.dev/v1alpha1",
    "kind": "CodeRun",
    "metadata": {"name": "hello", "namespace": "coderun-runs", "uid": "0a1b-uid"},
    "spec": {"code": "print(1)"},
}
SETTINGS = load_operator_settings({})


def plan_for(spec, settings=SETTINGS) -> RunPlan:
    plan = resolve_run_spec(spec, settings.limits)
    assert isinstance(plan, RunPlan)
    return plan


def test_golden_run_pod():
    pod = build_run_pod(RUN, plan_for(RUN["spec"]), SETTINGS)
    ephemeral = str(64 * 2**20 + max_log_bytes(65536, 65536, 10) + 16 * 2**20)
    user = {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532}
    seccomp = {"seccompProfile": {"type": "RuntimeDefault"}}
    resources = {"cpu": "500m", "memory": "256Mi", "ephemeral-storage": ephemeral}
    config = (
        '{"timeoutSeconds":10,"stdoutLimitBytes":65536,"stderrLimitBytes":65536,'
        '"fileSizeLimitBytes":16777216,"workDir":"/tmp"}'
    )
    assert pod == {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "crun-hello",
            "namespace": "coderun-runs",
            "labels": {
                "app.kubernetes.io/name": "coderun-run",
                "app.kubernetes.io/managed-by": "coderun-operator",
                "coderun.dev/run-uid": "0a1b-uid",
            },
            "annotations": {
                "coderun.dev/run-name": "hello",
                "checkov.io/skip1": "CKV_K8S_8=a run is one short program with a deadline, "
                "not a service to probe",
                "checkov.io/skip2": "CKV_K8S_9=nothing routes traffic to a run pod, so it has "
                "nothing to be ready for",
                "checkov.io/skip3": "CKV_K8S_15=runtime images are pinned by tag; a pull per run "
                "only adds latency",
                "checkov.io/skip4": "CKV_K8S_43=runtime images come from CODERUN_RUNTIMES; pin "
                "digests there",
            },
            "ownerReferences": [
                {
                    "apiVersion": "coderun.dev/v1alpha1",
                    "kind": "CodeRun",
                    "name": "hello",
                    "uid": "0a1b-uid",
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "activeDeadlineSeconds": 310,
            "terminationGracePeriodSeconds": 5,
            "securityContext": {**user, **seccomp},
            "topologySpreadConstraints": [
                {
                    "maxSkew": 1,
                    "topologyKey": "kubernetes.io/hostname",
                    "whenUnsatisfiable": "ScheduleAnyway",
                    "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "coderun-run"}},
                }
            ],
            "containers": [
                {
                    "name": "run",
                    "image": "python:3.12-slim",
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["python", "-I", "-c", runner_source()],
                    "env": [
                        {"name": "CODERUN_RUNNER_CONFIG", "value": config},
                        {"name": "CODERUN_RUNNER_CODE_0", "value": "print(1)"},
                    ],
                    "workingDir": "/tmp",
                    "resources": {"requests": resources, "limits": resources},
                    "securityContext": {
                        **user,
                        **seccomp,
                        "allowPrivilegeEscalation": False,
                        "readOnlyRootFilesystem": True,
                        "privileged": False,
                        "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    "terminationMessagePolicy": "File",
                }
            ],
            "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        },
    }


def test_placement_settings_reach_the_pod():
    settings = load_operator_settings(
        {
            "CODERUN_RUNTIME_CLASS": "gvisor",
            "CODERUN_NODE_SELECTOR": "pool=runs",
            "CODERUN_TOLERATIONS": '[{"key": "sandbox.gke.io/runtime", "operator": "Exists"}]',
        }
    )
    spec = build_run_pod(RUN, plan_for(RUN["spec"], settings), settings)["spec"]
    assert spec["runtimeClassName"] == "gvisor"
    assert spec["nodeSelector"] == {"pool": "runs"}
    assert spec["tolerations"] == [{"key": "sandbox.gke.io/runtime", "operator": "Exists"}]


def test_stdin_is_delivered_only_when_given():
    spec = {"code": "print(input())", "stdin": "Ada\n"}
    env = build_run_pod(RUN, plan_for(spec), SETTINGS)["spec"]["containers"][0]["env"]
    assert {"name": "CODERUN_RUNNER_STDIN_0", "value": "Ada\n"} in env


@pytest.mark.parametrize("char", ["a", "é", "\U0001f40d"])
def test_largest_snippet_and_stdin_fit_linux_string_limits(char):
    spec = {"code": char * 65536, "stdin": char * 65536}
    container = build_run_pod(RUN, plan_for(spec), SETTINGS)["spec"]["containers"][0]
    strings = [item.encode() for item in container["command"]]
    strings += [f"{e['name']}={e['value']}".encode() for e in container["env"]]
    assert max(len(s) + 1 for s in strings) <= 131072  # MAX_ARG_STRLEN, NUL included
    assert sum(len(s) + 1 for s in strings) < 2 * 2**20  # ARG_MAX with the default 8 MiB stack
    joined = "".join(e["value"] for e in container["env"] if "_CODE_" in e["name"])
    assert joined == spec["code"]


def test_long_run_names_give_short_pod_names():
    run = {**RUN, "metadata": {**RUN["metadata"], "name": "r" * 253}}
    pod = build_run_pod(run, plan_for(RUN["spec"]), SETTINGS)
    assert len(pod["metadata"]["name"]) <= 63
    assert pod["metadata"]["annotations"]["coderun.dev/run-name"] == "r" * 253


def test_pod_validates_against_the_official_schema():
    pod = build_run_pod(RUN, plan_for(RUN["spec"]), SETTINGS)
    kubernetes_validate.validate(pod, "1.33.0", strict=True)


def test_selector_matches_the_labels():
    pod = build_run_pod(RUN, plan_for(RUN["spec"]), SETTINGS)
    for term in run_pod_selector().split(","):
        key, value = term.split("=")
        assert pod["metadata"]["labels"][key] == value


def test_image_user_runtimes_set_no_numeric_user():
    settings = load_operator_settings(
        {
            "CODERUN_RUNTIMES": "py=python:3.12-slim,own=example/own-user:1",
            "CODERUN_IMAGE_USER_RUNTIMES": "own",
        }
    )
    own = build_run_pod(RUN, plan_for({"code": "x", "runtime": "own"}, settings), settings)
    for context in (
        own["spec"]["securityContext"],
        own["spec"]["containers"][0]["securityContext"],
    ):
        assert context["runAsNonRoot"] is True
        assert "runAsUser" not in context and "runAsGroup" not in context
    plain = build_run_pod(RUN, plan_for({"code": "x", "runtime": "py"}, settings), settings)
    assert plain["spec"]["securityContext"]["runAsUser"] == 65532
