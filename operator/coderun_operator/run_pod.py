"""The run pod: a pure function from a CodeRun and the settings to a Pod manifest.

Every security property of a run pod is decided here, in one place, and pinned by a golden
test: no token, numeric non-root user, read-only root with a small writable /tmp, no
capabilities, seccomp, resources, and a generous outer deadline (the runner enforces the
precise limit; the deadline also counts image-pull time).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from coderun_operator import api_bounds
from coderun_operator.pod_names import pod_name_for_run
from coderun_operator.run_log import max_log_bytes
from coderun_operator.run_spec import RunPlan
from coderun_operator.runner_delivery import runner_command, runner_environment
from coderun_operator.settings import OperatorSettings

CONTAINER_NAME = "run"
WORK_DIR = "/tmp"
APP_LABEL = "app.kubernetes.io/name"
APP_NAME = "coderun-run"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY = "coderun-operator"
RUN_UID_LABEL = "coderun.dev/run-uid"
RUN_NAME_ANNOTATION = "coderun.dev/run-name"
# SIGTERM reaches the runner, which stops the snippet and reports at once.
TERMINATION_GRACE_SECONDS = 5
# Room on top of /tmp for the container log and the image's own writes.
_EPHEMERAL_HEADROOM_BYTES = 16 * 2**20
# Policy checks (checkov) that do not fit a one-shot run pod, each with its reason, where
# anyone reading the pod (kubectl get pod -o yaml) sees why.
POLICY_EXCEPTIONS = {
    "checkov.io/skip1": "CKV_K8S_8=a run is one short program with a deadline, "
    "not a service to probe",
    "checkov.io/skip2": "CKV_K8S_9=nothing routes traffic to a run pod, so it has "
    "nothing to be ready for",
    "checkov.io/skip3": "CKV_K8S_15=runtime images are pinned by tag; a pull per run only adds "
    "latency",
    "checkov.io/skip4": "CKV_K8S_43=runtime images come from CODERUN_RUNTIMES; pin digests there",
}


def run_pod_labels(run_uid: str) -> dict[str, str]:
    """Labels every run pod carries; the operator watches pods by the first two."""
    return {APP_LABEL: APP_NAME, MANAGED_BY_LABEL: MANAGED_BY, RUN_UID_LABEL: run_uid}


def run_pod_selector() -> str:
    """Label selector matching every run pod of this operator."""
    return f"{APP_LABEL}={APP_NAME},{MANAGED_BY_LABEL}={MANAGED_BY}"


def build_run_pod(run: Mapping[str, Any], plan: RunPlan, settings: OperatorSettings) -> dict:
    """Return the Pod manifest that executes ``run`` as ``plan`` resolved it."""
    metadata = run["metadata"]
    user: dict[str, Any] = {"runAsNonRoot": True}
    if not plan.image_user:
        user.update(runAsUser=settings.run_user_id, runAsGroup=settings.run_group_id)
    seccomp = {"seccompProfile": {"type": "RuntimeDefault"}}
    limits = settings.limits
    log_bytes = max_log_bytes(
        limits.stdout_limit_bytes, limits.stderr_limit_bytes, plan.timeout_seconds
    )
    ephemeral = f"{plan.tmp_size_bytes + log_bytes + _EPHEMERAL_HEADROOM_BYTES}"
    resources = {"cpu": plan.cpu, "memory": plan.memory, "ephemeral-storage": ephemeral}
    runner_config = {
        "timeoutSeconds": plan.timeout_seconds,
        "stdoutLimitBytes": limits.stdout_limit_bytes,
        "stderrLimitBytes": limits.stderr_limit_bytes,
        "fileSizeLimitBytes": limits.file_size_limit_bytes,
        "workDir": WORK_DIR,
    }
    spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "activeDeadlineSeconds": plan.timeout_seconds + settings.pod_deadline_grace_seconds,
        "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
        "securityContext": {**user, **seccomp},
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": {APP_LABEL: APP_NAME}},
            }
        ],
        "containers": [
            {
                "name": CONTAINER_NAME,
                "image": plan.image,
                "imagePullPolicy": "IfNotPresent",
                "command": runner_command(),
                "env": runner_environment(plan.code, plan.stdin, runner_config),
                "workingDir": WORK_DIR,
                "resources": {"requests": dict(resources), "limits": dict(resources)},
                "securityContext": {
                    **user,
                    **seccomp,
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "privileged": False,
                    "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "tmp", "mountPath": WORK_DIR}],
                "terminationMessagePolicy": "File",
            }
        ],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": limits.tmp_size}}],
    }
    if settings.runtime_class_name:
        spec["runtimeClassName"] = settings.runtime_class_name
    if settings.node_selector:
        spec["nodeSelector"] = dict(settings.node_selector)
    if settings.tolerations:
        spec["tolerations"] = [dict(item) for item in settings.tolerations]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name_for_run(metadata["name"]),
            "namespace": metadata["namespace"],
            "labels": run_pod_labels(metadata["uid"]),
            "annotations": {RUN_NAME_ANNOTATION: metadata["name"], **POLICY_EXCEPTIONS},
            "ownerReferences": [
                {
                    "apiVersion": f"{api_bounds.API_GROUP}/{api_bounds.API_VERSION}",
                    "kind": api_bounds.KIND,
                    "name": metadata["name"],
                    "uid": metadata["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": spec,
    }
