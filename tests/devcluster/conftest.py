"""One devcluster per test session, run as `python -m devcluster` in its own process group.

Self-contained on purpose, so that the conformance tests need nothing from the rest of the suite.
"""

from __future__ import annotations

import copy
import json
import os
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import pytest
import yaml

from devstack.processes import stop_process_group

ROOT = Path(__file__).resolve().parents[2]
KUBECTL = str(Path(sys.executable).parent / "kubectl")


@dataclass
class Devcluster:
    """A running devcluster and ways to talk to it as different identities."""

    url: str
    kubeconfig: str
    ca_file: str
    token: str
    workdir: Path
    process: subprocess.Popen[bytes]

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: str | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """Real kubectl with its own HOME and cache dir."""
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "KUBECONFIG": kubeconfig or self.kubeconfig,
        }
        completed = subprocess.run(
            [KUBECTL, "--cache-dir", str(self.workdir / "kubectl-cache"), *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
        if check and completed.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({completed.returncode}):\n"
                f"{completed.stdout}\n{completed.stderr}"
            )
        return completed

    def api_client(self, token: str | None = None) -> kubernetes.client.ApiClient:
        """An official-client ApiClient (admin unless a token is given)."""
        configuration = kubernetes.client.Configuration()
        configuration.host = self.url
        configuration.ssl_ca_cert = self.ca_file
        configuration.api_key = {"authorization": token or self.token}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return kubernetes.client.ApiClient(configuration)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        token: str | None = None,
        headers: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, str], Any]:
        """A raw HTTPS request; returns (status, headers, decoded JSON or text)."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if token != "":
            request.add_header("Authorization", f"Bearer {token or self.token}")
        request.add_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            request.add_header(key, value)
        context = ssl.create_default_context(cafile=self.ca_file)
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as response:
                raw, status, response_headers = response.read(), response.status, response.headers
        except urllib.error.HTTPError as error:
            raw, status, response_headers = error.read(), error.code, error.headers
        text = raw.decode()
        try:
            decoded: Any = json.loads(text)
        except ValueError:
            decoded = text
        return status, response_headers, decoded

    def add_user(self, name: str, groups: list[str] | None = None) -> str:
        status, _, body = self.request(
            "POST", "/devcluster/v1/tokens", {"user": name, "groups": groups or []}
        )
        assert status == 200, body
        return body["token"]

    def kubeconfig_for(self, token: str, name: str, namespace: str = "default") -> str:
        config = yaml.safe_load(Path(self.kubeconfig).read_text())
        config["users"] = [{"name": name, "user": {"token": token}}]
        config["contexts"][0]["context"]["user"] = name
        config["contexts"][0]["context"]["namespace"] = namespace
        path = self.workdir / f"kubeconfig-{name.replace(':', '_')}-{uuid.uuid4().hex[:6]}"
        path.write_text(yaml.safe_dump(config))
        return str(path)

    def audit(self, user: str | None = None) -> list[dict[str, Any]]:
        query = f"?user={urllib.request.quote(user)}" if user else ""
        status, _, body = self.request("GET", f"/devcluster/v1/audit{query}")
        assert status == 200, body
        return body["entries"]


@pytest.fixture(scope="session")
def devcluster() -> Iterator[Devcluster]:
    """A devcluster API server for the whole session (port chosen by the OS)."""
    workdir = Path(tempfile.mkdtemp(prefix="devcluster-test-"))
    kubeconfig = workdir / "kubeconfig"
    ready_file = workdir / "ready.json"
    log = open(workdir / "devcluster.log", "wb")  # noqa: SIM115
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
            "--nodes",
            "2",
            "--audit-log",
            str(workdir / "audit.jsonl"),
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
                raise RuntimeError(
                    "devcluster did not start:\n" + (workdir / "devcluster.log").read_text()
                )
            time.sleep(0.05)
        ready = json.loads(ready_file.read_text())
        config = yaml.safe_load(kubeconfig.read_text())
        yield Devcluster(
            url=ready["url"],
            kubeconfig=str(kubeconfig),
            ca_file=ready["caFile"],
            token=config["users"][0]["user"]["token"],
            workdir=workdir,
            process=process,
        )
    finally:
        stop_process_group(process)
        log.close()


@pytest.fixture
def namespace(devcluster: Devcluster) -> Iterator[str]:
    """A fresh namespace per test, so tests never share objects."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    status, _, body = devcluster.request("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201, body
    yield name
    devcluster.request("DELETE", f"/api/v1/namespaces/{name}")


# A small CRD of our own for conformance tests (the project's CRD is tested elsewhere).
WIDGET_CRD: dict[str, Any] = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.test.devcluster.io"},
    "spec": {
        "group": "test.devcluster.io",
        "scope": "Namespaced",
        "names": {
            "plural": "widgets",
            "singular": "widget",
            "kind": "Widget",
            "shortNames": ["wd"],
            "categories": ["all"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {
                    "status": {},
                    "scale": {
                        "specReplicasPath": ".spec.size",
                        "statusReplicasPath": ".status.size",
                    },
                },
                "additionalPrinterColumns": [
                    {"name": "Size", "type": "integer", "jsonPath": ".spec.size"},
                    {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
                    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
                ],
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1},
                                    "color": {
                                        "type": "string",
                                        "default": "blue",
                                        "enum": ["blue", "red"],
                                    },
                                    "name": {
                                        "type": "string",
                                        "maxLength": 10,
                                        "x-kubernetes-validations": [
                                            {
                                                "rule": "self == oldSelf",
                                                "message": "name is immutable",
                                            }
                                        ],
                                    },
                                    "extra": {
                                        "type": "object",
                                        "x-kubernetes-preserve-unknown-fields": True,
                                    },
                                },
                            },
                            "status": {
                                "type": "object",
                                "properties": {
                                    "phase": {"type": "string"},
                                    "size": {"type": "integer"},
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


@pytest.fixture
def widget_crd(devcluster: Devcluster) -> dict[str, Any]:
    """The Widget CRD, installed (once per session; idempotent) and served."""
    status, _, body = devcluster.request(
        "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", WIDGET_CRD
    )
    assert status in (201, 409), body
    for _ in range(100):
        if devcluster.request("GET", "/apis/test.devcluster.io/v1")[0] == 200:
            return copy.deepcopy(WIDGET_CRD)
        time.sleep(0.05)
    raise AssertionError("the Widget CRD was never served")


@pytest.fixture
def core(devcluster: Devcluster) -> kubernetes.client.CoreV1Api:
    return kubernetes.client.CoreV1Api(devcluster.api_client())
