"""Fixtures for the web UI tests: settings, an app with no cluster, and one devcluster.

The devcluster is started once per session as ``python -m devcluster`` in its own process
group (port chosen by the OS), with the CodeRun CRD installed. Each test that uses it gets a
fresh runs namespace, and plays the operator itself by writing statuses through the status
subresource.
"""

from __future__ import annotations

import dataclasses
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from webui_support import FakeOperator, make_settings, offline_api_client

from coderun_operator import api_bounds
from coderun_operator.settings import WebSettings
from devstack.processes import stop_process_group
from webui import create_app

ROOT = Path(__file__).resolve().parents[2]
CRD_PATH = ROOT / "crds" / "coderun.yaml"


@pytest.fixture(autouse=True)
def _no_coderun_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # create_app reads CODERUN_* from the environment; tests must not depend on the caller's.
    for key in list(os.environ):
        if key.startswith("CODERUN_"):
            monkeypatch.delenv(key)


@pytest.fixture
def settings() -> WebSettings:
    return make_settings()


@pytest.fixture
def offline_app(settings: WebSettings) -> Iterator[Flask]:
    """The app with the API server down (a closed port)."""
    app = create_app(
        {"TESTING": True, "CODERUN_SETTINGS": settings, "KUBE_API_CLIENT": offline_api_client()}
    )
    yield app
    app.extensions["coderun"].watch.stop()


@pytest.fixture
def offline_client(offline_app: Flask) -> FlaskClient:
    return offline_app.test_client()


# ---------------------------------------------------------------------------------------------
# devcluster
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Cluster:
    """A running devcluster with the CodeRun CRD installed."""

    kubeconfig: str
    process: subprocess.Popen[bytes]
    url: str
    ca_file: str
    workdir: Path

    def api_client(self) -> kubernetes.client.ApiClient:
        return kubernetes.config.new_client_from_config(config_file=self.kubeconfig)

    def admin(self, method: str, path: str, body: Any = None) -> Any:
        """A devcluster admin endpoint (faults, tokens), as the kubeconfig's admin."""
        config = yaml.safe_load(Path(self.kubeconfig).read_text())
        request = urllib.request.Request(
            self.url + path,
            data=None if body is None else json.dumps(body).encode(),
            method=method,
            headers={
                "Authorization": f"Bearer {config['users'][0]['user']['token']}",
                "Content-Type": "application/json",
            },
        )
        context = ssl.create_default_context(cafile=self.ca_file)
        with urllib.request.urlopen(request, context=context, timeout=10) as response:
            return json.loads(response.read())

    def user_kubeconfig(self, user: str, namespace: str) -> str:
        """A kubeconfig for a new static user token (no rights until a binding grants some)."""
        token = self.admin("POST", "/devcluster/v1/tokens", {"user": user})["token"]
        config = yaml.safe_load(Path(self.kubeconfig).read_text())
        config["users"] = [{"name": user, "user": {"token": token}}]
        config["contexts"][0]["context"].update(user=user, namespace=namespace)
        path = self.workdir / f"kubeconfig-{user}-{uuid.uuid4().hex[:6]}"
        path.write_text(yaml.safe_dump(config))
        return str(path)

    def audit(self, user: str) -> list[dict[str, Any]]:
        """The audit entries of one user."""
        query = urllib.parse.urlencode({"user": user})
        return self.admin("GET", f"/devcluster/v1/audit?{query}")["entries"]


def _wait_for_crd(api_client: kubernetes.client.ApiClient) -> None:
    custom = kubernetes.client.CustomObjectsApi(api_client)
    deadline = time.monotonic() + 30
    while True:
        try:
            resources = custom.get_api_resources(api_bounds.API_GROUP, api_bounds.API_VERSION)
            if any(item.name == api_bounds.PLURAL for item in resources.resources or []):
                return
        except kubernetes.client.ApiException:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("devcluster never served the CodeRun CRD")
        time.sleep(0.1)


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """One devcluster for the web UI tests, with crds/coderun.yaml installed."""
    workdir = Path(tempfile.mkdtemp(prefix="webui-devcluster-"))
    kubeconfig = workdir / "kubeconfig"
    ready_file = workdir / "ready.json"
    log_path = workdir / "devcluster.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "devcluster",
                "--port",
                "0",
                "--kubeconfig",
                str(kubeconfig),
                "--ready-file",
                str(ready_file),
            ],
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        while not ready_file.exists():
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("devcluster did not start:\n" + log_path.read_text())
            time.sleep(0.05)
        ready = json.loads(ready_file.read_text())
        running = Cluster(
            kubeconfig=str(kubeconfig),
            process=process,
            url=ready["url"],
            ca_file=ready["caFile"],
            workdir=workdir,
        )
        api_client = running.api_client()
        crd = yaml.safe_load(CRD_PATH.read_text())
        kubernetes.client.ApiextensionsV1Api(api_client).create_custom_resource_definition(crd)
        _wait_for_crd(api_client)
        yield running
    finally:
        stop_process_group(process)


@pytest.fixture
def runs_namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh runs namespace per test, so tests never see each other's runs."""
    name = f"runs-{uuid.uuid4().hex[:10]}"
    core = kubernetes.client.CoreV1Api(cluster.api_client())
    core.create_namespace({"metadata": {"name": name}})
    yield name
    core.delete_namespace(name)


@pytest.fixture
def cluster_app(cluster: Cluster, runs_namespace: str) -> Iterator[Flask]:
    """The app talking to devcluster, with runs in ``runs_namespace``."""
    app = create_app(
        {
            "TESTING": True,
            "KUBECONFIG": cluster.kubeconfig,
            "CODERUN_SETTINGS": make_settings(runs_namespace=runs_namespace),
        }
    )
    yield app
    app.extensions["coderun"].watch.stop()


@pytest.fixture
def cluster_client(cluster_app: Flask) -> FlaskClient:
    return cluster_app.test_client()


@pytest.fixture
def operator(cluster: Cluster, runs_namespace: str) -> FakeOperator:
    return FakeOperator(cluster.api_client(), runs_namespace)
