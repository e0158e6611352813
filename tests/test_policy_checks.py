"""checkov on what would run in a cluster: each rendered overlay together with a run pod.

checkov lives in its own virtual environment (`make test` builds .venv-checkov from
tools/checkov-requirements.txt; its pins clash with the project's). No check may fail; a check
that does not fit carries its reason in the manifest (a `checkov.io/skipN` annotation).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from coderun_operator.run_pod import build_run_pod
from coderun_operator.run_spec import resolve_run_spec
from coderun_operator.settings import load_operator_settings
from tests.support.manifests import ROOT, find, render, render_text

OVERLAYS = ("overlays/gke", "overlays/gke-sandbox", "overlays/kind")


def checkov_path() -> Path:
    path = Path(os.environ.get("CODERUN_CHECKOV", ROOT / ".venv-checkov" / "bin" / "checkov"))
    if not path.exists():
        pytest.fail(
            f"checkov is not installed at {path}: run `make test` (it builds .venv-checkov from "
            "tools/checkov-requirements.txt) or set CODERUN_CHECKOV to a checkov executable"
        )
    return path


def checkov(directory: Path) -> dict[str, Any]:
    """Run checkov's Kubernetes checks on every manifest in ``directory``; its JSON report."""
    done = subprocess.run(
        [
            str(checkov_path()),
            *("--directory", str(directory), "--framework", "kubernetes"),
            *("--output", "json", "--skip-download"),
        ],
        capture_output=True,
        text=True,
        env={"HOME": str(directory), "PATH": os.environ.get("PATH", ""), "LOG_LEVEL": "ERROR"},
        timeout=300,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"checkov gave no report:\n{done.stdout}\n{done.stderr}") from None
    assert report["summary"]["parsing_errors"] == 0, report["results"]["parsing_errors"]
    return report


def run_pod_for(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """The pod the operator would create for a plain run, with this overlay's settings."""
    settings = load_operator_settings(find(objects, "ConfigMap", "coderun-settings")["data"])
    run = {
        "metadata": {"name": "hello", "namespace": "coderun-runs", "uid": "0a1b-uid"},
        "spec": {"code": "print('hello')"},
    }
    return build_run_pod(run, resolve_run_spec(run["spec"], settings.limits), settings)


def failures(report: dict[str, Any]) -> list[str]:
    return [
        f"{item['check_id']} {item['check_name']}: {item['resource']}"
        for item in report["results"]["failed_checks"]
    ]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_check_fails_and_every_skip_says_why(overlay, tmp_path):
    objects = render(overlay)
    (tmp_path / "rendered.yaml").write_text(render_text(overlay))
    (tmp_path / "run-pod.yaml").write_text(yaml.safe_dump(run_pod_for(objects)))
    report = checkov(tmp_path)
    assert failures(report) == []
    assert report["summary"]["passed"] > 100
    checked = {item["resource"] for item in report["results"]["passed_checks"]}
    assert "Pod.coderun-runs.crun-hello" in checked
    assert "Deployment.coderun-system.coderun-webui" in checked
    for item in report["results"]["skipped_checks"]:
        reason = item["check_result"].get("suppress_comment", "")
        assert len(reason.split()) >= 4, f"{item['check_id']} on {item['resource']}: no reason"


def test_checkov_reports_a_careless_pod(tmp_path):
    careless = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "careless", "namespace": "coderun-runs"},
        "spec": {
            "containers": [
                {"name": "c", "image": "python", "securityContext": {"privileged": True}}
            ]
        },
    }
    (tmp_path / "careless.yaml").write_text(yaml.safe_dump(careless))
    found = {line.split()[0] for line in failures(checkov(tmp_path))}
    assert {"CKV_K8S_16", "CKV_K8S_14", "CKV_K8S_11"} <= found
