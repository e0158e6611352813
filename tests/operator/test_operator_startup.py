"""The operator's start: without a way to the API server it stops with one sentence; started
before its CRD, it waits for the CodeRun API instead of running blind.

kopf resolves what it watches once, right after start-up. An operator that came up before
the CRD was served (both applied together, the operator's image already on the node) would
otherwise run forever, healthy by its probe, without ever seeing a CodeRun.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from devstack.cluster_setup import kubectl
from devstack.launcher import answers
from devstack.processes import free_port
from tests.support.stack import ROOT, Stack, operator_process, start_devcluster

pytestmark = pytest.mark.timeout(300)


def test_an_operator_started_before_the_crd_waits_for_it_then_serves_runs():
    workdir = Path(tempfile.mkdtemp(prefix="coderun-startup-"))
    kubeconfig, processes = start_devcluster(workdir, with_nodes=False)
    health = free_port()
    healthz = f"http://127.0.0.1:{health}/healthz"
    operator = operator_process(
        workdir,
        kubeconfig,
        {
            "CODERUN_OPERATOR_HEALTH_PORT": str(health),
            "CODERUN_OPERATOR_METRICS_PORT": str(free_port()),
        },
    )
    stack = Stack(workdir=workdir, kubeconfig=kubeconfig, operator=operator)
    try:
        operator.start()
        waiting = "Cannot start yet: the API server does not serve coderuns.coderun.dev/v1alpha1"
        operator.wait_until(lambda: operator.log_text().count(waiting) >= 2, 60, "retrying")
        assert not answers(healthz)  # not alive until it can do its work

        kubectl(Path(kubeconfig), workdir / "home", "apply", "-f", str(ROOT / "crds/coderun.yaml"))
        operator.wait_until(lambda: answers(healthz), 60, "starting once the CRD is served")
        run = stack.create_run("print(1)")
        # No node takes the pod here; the operator creating it is the proof it watches runs.
        pods = stack.wait_for(lambda: stack.pods_of(run), "the run's pod", timeout=60)
        assert len(pods) == 1
    finally:
        operator.stop()
        for process in processes:
            process.stop()


def test_an_operator_without_a_way_to_the_api_server_stops_with_one_sentence(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KUBE", "CODERUN_"))}
    env.update(HOME=str(tmp_path), KUBECONFIG=str(tmp_path / "missing"))
    stopped = subprocess.run(
        [sys.executable, "-m", "coderun_operator"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert stopped.returncode == 2, stopped.stderr
    assert stopped.stderr.startswith("coderun-operator: No Kubernetes API server is configured")
    assert stopped.stderr.count("\n") == 1 and "Traceback" not in stopped.stderr
