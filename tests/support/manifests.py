"""Render the kustomize overlays with real kubectl, once per overlay per session."""

from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

from coderun_operator.quantity import parse_quantity
from coderun_operator.run_pod import build_run_pod
from coderun_operator.run_spec import RunPlan, resolve_run_spec
from coderun_operator.settings import load_operator_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KUBECTL = str(Path(sys.executable).parent / "kubectl")
# Every kustomization a person may apply: the base and each overlay.
KUSTOMIZATIONS = ("base", "overlays/gke", "overlays/gke-sandbox", "overlays/kind")
# The Kubernetes version the manifests are validated against: one that GKE's Regular release
# channel offers.
KUBERNETES_VERSION = "1.35.0"


def kustomize(folder: Path) -> str:
    """`kubectl kustomize <folder>` as YAML text; fails loudly on any error."""
    with tempfile.TemporaryDirectory() as home:
        done = subprocess.run(
            [KUBECTL, "kustomize", str(folder)],
            capture_output=True,
            text=True,
            env={"HOME": home, "PATH": ""},
            timeout=120,
            check=False,
        )
    if done.returncode != 0:
        raise AssertionError(f"kubectl kustomize {folder} failed:\n{done.stderr}")
    return done.stdout


@functools.cache
def render_text(kustomization: str) -> str:
    """`kubectl kustomize deploy/<kustomization>` as YAML text, once per session."""
    return kustomize(DEPLOY / kustomization)


def render(kustomization: str) -> list[dict[str, Any]]:
    """The rendered objects of ``deploy/<kustomization>``."""
    return [obj for obj in yaml.safe_load_all(render_text(kustomization)) if obj]


def find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    """The one ``kind`` named ``name`` (or ``name-<hash>``, as kustomize names generated ones)."""
    found = [
        obj
        for obj in objects
        if obj["kind"] == kind
        and (obj["metadata"]["name"] == name or obj["metadata"]["name"].startswith(name + "-"))
    ]
    assert len(found) == 1, f"expected one {kind} {name}, found {len(found)}"
    return found[0]


def assert_largest_run_fits(objects: list[dict[str, Any]]) -> None:
    """The pod of the largest run the rendered settings allow stays within the LimitRange."""
    settings = load_operator_settings(find(objects, "ConfigMap", "coderun-settings")["data"])
    limits = settings.limits
    spec = {
        "code": "print(1)",
        "timeoutSeconds": limits.max_timeout_seconds,
        "resources": {"cpu": limits.max_cpu, "memory": limits.max_memory},
    }
    plan = resolve_run_spec(spec, limits)
    assert isinstance(plan, RunPlan), plan
    run = {"metadata": {"name": "largest", "namespace": "coderun-runs", "uid": "u"}, "spec": spec}
    (container,) = build_run_pod(run, plan, settings)["spec"]["containers"]
    (bounds,) = find(objects, "LimitRange", "coderun-runs")["spec"]["limits"]
    assert bounds["type"] == "Container"
    for resource, ceiling in bounds["max"].items():
        asked = container["resources"]["limits"][resource]
        assert parse_quantity(asked) <= parse_quantity(ceiling), (resource, asked, ceiling)
