"""Starting devcluster: in-process, ready line, kubeconfig context, start-up time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import kubernetes
import yaml

from devcluster.server import DevCluster

ROOT = Path(__file__).resolve().parents[2]


def test_in_process_start_and_stop(tmp_path):
    cluster = DevCluster(kubeconfig=str(tmp_path / "kc"), namespace="work", nodes=3).start()
    try:
        assert cluster.ready_seconds < 5
        config = yaml.safe_load((tmp_path / "kc").read_text())
        assert config["contexts"][0]["context"]["namespace"] == "work"
        client = kubernetes.config.new_client_from_config(str(tmp_path / "kc"))
        core = kubernetes.client.CoreV1Api(client)
        assert len(core.list_node().items) == 3
        assert core.read_namespace("work").status.phase == "Active"
        token = cluster.service_account_token("work", "operator")
        sa_client = kubernetes.client.CoreV1Api(
            kubernetes.config.new_client_from_config(
                cluster.write_kubeconfig(str(tmp_path / "sa"), token)
            )
        )
        try:
            sa_client.list_namespaced_pod("work")
            raise AssertionError("a fresh service account must not list pods")
        except kubernetes.client.ApiException as error:
            assert error.status == 403
    finally:
        cluster.stop()


def test_module_prints_a_ready_line(tmp_path):
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devcluster",
            "--port",
            "0",
            "--kubeconfig",
            str(tmp_path / "kc"),
            "--token",
            "alice=secret-token:devs",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        started = time.monotonic()
        line = process.stdout.readline()
        ready = json.loads(line)
        assert ready["event"] == "ready" and ready["port"] > 0
        assert time.monotonic() - started < 10
        config = yaml.safe_load((tmp_path / "kc").read_text())
        config["users"][0]["user"]["token"] = "secret-token"
        (tmp_path / "alice").write_text(yaml.safe_dump(config))
        client = kubernetes.config.new_client_from_config(str(tmp_path / "alice"))
        try:
            kubernetes.client.CoreV1Api(client).list_namespaced_pod("default")
            raise AssertionError("alice has no RBAC yet")
        except kubernetes.client.ApiException as error:
            assert error.status == 403 and "alice" in error.body
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        assert process.wait(10) == 0


def test_in_process_audit_helpers(tmp_path):
    cluster = DevCluster(kubeconfig=str(tmp_path / "kc")).start()
    try:
        token = cluster.add_user("auditor")
        path = str(tmp_path / "auditor")
        cluster.write_kubeconfig(path, token)
        core = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(path))
        try:
            core.list_namespaced_pod("default")
        except kubernetes.client.ApiException as error:
            assert error.status == 403
        assert [e["resource"] for e in cluster.audit.denied("auditor")] == ["pods"]
        assert cluster.audit.rules_used("auditor") == set()
        finalize = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "default"},
            "spec": {"finalizers": []},
        }
        admin = kubernetes.client.CoreV1Api(
            kubernetes.config.new_client_from_config(str(tmp_path / "kc"))
        )
        admin.replace_namespace_finalize("default", finalize)
        assert admin.read_namespace("default").spec.finalizers is None
    finally:
        cluster.stop()
