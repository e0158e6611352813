"""One cluster and one real operator process for the operator's end-to-end tests."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.cluster_setup import apply_base, kubectl, service_account_kubeconfig
from devstack.launcher import answers
from devstack.processes import free_port
from tests.support.processes import TestProcess
from tests.support.stack import PodWatch, Stack, operator_process, start_devcluster

# Runtimes the tests need besides the default one: an image no node can pull, and one that
# is told to use the image's own user although that user is root.
TEST_OPERATOR_ENV = {
    "CODERUN_RUNTIMES": (
        "python3.12=python:3.12-slim,missing-image=registry.invalid/coderun/missing:0,"
        "image-user-on-root-image=python:3.12-slim"
    ),
    "CODERUN_IMAGE_USER_RUNTIMES": "image-user-on-root-image",
    "CODERUN_PENDING_LIMIT_SECONDS": "5",
    "CODERUN_MAX_CPU": "64",
    "CODERUN_DEFAULT_CPU": "100m",
    "CODERUN_DEFAULT_MEMORY": "128Mi",
    "CODERUN_TTL_SECONDS_AFTER_FINISHED": "3600",
}


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    """The CRD installed, and the real operator running (restartable by tests)."""
    workdir = Path(tempfile.mkdtemp(prefix="coderun-e2e-"))
    external = os.environ.get("CODERUN_TEST_KUBECONFIG")
    processes: list[TestProcess] = []
    if external:
        kubeconfig = external
        operator = None
    else:
        kubeconfig, processes = start_devcluster(workdir)
        # The operator runs as its own service account, with only the RBAC of deploy/base.
        home = workdir / "kubectl-home"
        apply_base(Path(kubeconfig), home)
        # These tests allow runs of up to 64 CPUs (to ask for more than any node has), so the
        # namespace's LimitRange is raised to match, as an administrator would.
        kubectl(
            Path(kubeconfig),
            home,
            *("-n", "coderun-runs", "patch", "limitrange", "coderun-runs", "--type", "json"),
            *("-p", '[{"op": "replace", "path": "/spec/limits/0/max/cpu", "value": "64"}]'),
        )
        operator_config = service_account_kubeconfig(
            Path(kubeconfig), home, "coderun-operator", workdir / "operator.kubeconfig"
        )
        health, metrics = free_port(), free_port()
        operator = operator_process(
            workdir,
            str(operator_config),
            {
                **TEST_OPERATOR_ENV,
                "CODERUN_OPERATOR_HEALTH_PORT": str(health),
                "CODERUN_OPERATOR_METRICS_PORT": str(metrics),
            },
        )
    built = Stack(
        workdir=workdir,
        kubeconfig=kubeconfig,
        operator=operator,
        audit_log=None if external else workdir / "audit.jsonl",
        operator_metrics_url=None if external else f"http://127.0.0.1:{metrics}/metrics",
    )
    try:
        built.pod_watch = PodWatch(built.api, built.namespace)
        built.pod_watch.start()
        if operator is not None:
            operator.start()
            url = f"http://127.0.0.1:{health}/healthz"
            operator.wait_until(lambda: answers(url), 60, "starting")
        yield built
    finally:
        if built.pod_watch is not None:
            built.pod_watch.stop()
        if operator is not None:
            operator.stop()
        for process in processes:
            process.stop()
