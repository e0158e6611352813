"""gunicorn serves the app with the repository's config: threaded workers, settings from env."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from webui_support import closed_port

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = str(Path(sys.executable).parent / "gunicorn")


def _environment(**extra: str) -> dict[str, str]:
    keep = {key: value for key, value in os.environ.items() if not key.startswith("CODERUN_")}
    return {**keep, **extra}


def _get(url: str, timeout: float = 10) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.fixture
def served(cluster, runs_namespace, tmp_path):
    port = closed_port()
    env = _environment(
        KUBECONFIG=cluster.kubeconfig,
        CODERUN_RUNS_NAMESPACE=runs_namespace,
        CODERUN_PORT=str(port),
        CODERUN_WEB_WORKERS="2",
        CODERUN_WEB_THREADS="4",
        PYTHONPATH=f"{ROOT / 'operator'}:{ROOT}",
        TMPDIR=str(tmp_path),
    )
    log_path = tmp_path / "gunicorn.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [GUNICORN],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if _get(url + "/healthz", timeout=1)[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gunicorn did not start:\n" + log_path.read_text())
            time.sleep(0.1)
        yield url, log_path, process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    # A server that stopped leaves no readiness marker behind.
    assert list(tmp_path.glob("coderun-webui-*.ready")) == []


def test_gunicorn_serves_the_pages_and_the_api(served):
    url, log_path, pid = served
    assert _get(url + "/readyz") == (200, "ready\n")
    # The workers share the first success through one file per server.
    assert (log_path.parent / f"coderun-webui-{pid}.ready").is_file()
    status, html = _get(url + "/")
    assert status == 200 and 'id="run-form"' in html
    request = urllib.request.Request(
        url + "/api/runs",
        data=json.dumps({"code": "print(1)"}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201
        name = json.loads(response.read())["name"]
    started = time.monotonic()
    status, body = _get(f"{url}/api/runs/{name}?wait=1")
    assert status == 200 and json.loads(body)["phase"] == "Pending"
    assert time.monotonic() - started < 5
    log = log_path.read_text()
    assert "Using worker: gthread" in log
    assert log.count("Booting worker") == 2
    assert "Control socket" not in log


def test_a_bad_setting_stops_gunicorn_with_one_sentence():
    completed = subprocess.run(
        [GUNICORN],
        cwd=ROOT,
        env=_environment(CODERUN_WEB_WORKERS="0", PYTHONPATH=f"{ROOT / 'operator'}:{ROOT}"),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode != 0
    assert "coderun web UI: CODERUN_WEB_WORKERS must be a whole number from 1 to 64, not '0'." in (
        completed.stderr
    )
    assert "Traceback" not in completed.stderr


def test_without_a_way_to_the_api_server_gunicorn_stops_with_one_sentence(tmp_path):
    env = {k: v for k, v in _environment().items() if not k.startswith("KUBE")}
    completed = subprocess.run(
        [GUNICORN],
        cwd=ROOT,
        env={
            **env,
            "HOME": str(tmp_path),
            "KUBECONFIG": str(tmp_path / "missing"),
            "TMPDIR": str(tmp_path),
            "PYTHONPATH": f"{ROOT / 'operator'}:{ROOT}",
        },
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert completed.returncode != 0
    assert "coderun web UI: No Kubernetes API server is configured" in completed.stderr
    # The server stopped before any worker started (none failing to boot over and over).
    assert "Booting worker" not in completed.stderr and "Traceback" not in completed.stderr
