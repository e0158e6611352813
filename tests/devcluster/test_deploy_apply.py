"""The rendered base applies to a cluster as an administrator would apply it, with real kubectl."""

from __future__ import annotations

import json

from tests.support.manifests import render, render_text


def test_rendered_base_applies_cleanly_and_again_without_change(devcluster):
    first = devcluster.kubectl("apply", "-f", "-", input=render_text("base"))
    assert first.stderr.strip() == ""
    lines = first.stdout.strip().splitlines()
    assert len(lines) == len(render("base"))
    assert all(line.endswith((" created", " configured", " unchanged")) for line in lines), lines

    again = devcluster.kubectl("apply", "-f", "-", input=render_text("base"))
    assert again.stderr.strip() == ""
    changed = [
        line for line in again.stdout.strip().splitlines() if not line.endswith(" unchanged")
    ]
    # kubectl always sends a patch for a PodDisruptionBudget (its selector's patch strategy is
    # "replace"), so it says "configured" on every apply, on a real API server too.
    assert changed == ["poddisruptionbudget.policy/coderun-webui configured"]

    quota = json.loads(
        devcluster.kubectl(
            "-n", "coderun-runs", "get", "resourcequota", "coderun-runs", "-o", "json"
        ).stdout
    )
    assert (
        quota["spec"]["hard"]["count/coderuns.coderun.dev"]
        == quota["status"]["hard"]["count/coderuns.coderun.dev"]
    )
    established = devcluster.kubectl(
        "wait", "--for=condition=Established", "crd/coderuns.coderun.dev", "--timeout=60s"
    )
    assert "condition met" in established.stdout


def test_gke_overlay_passes_server_side_dry_run(devcluster):
    devcluster.kubectl("apply", "-f", "-", input=render_text("base"))
    dry = devcluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=render_text("overlays/gke"), check=False
    )
    assert dry.returncode == 0, dry.stderr
    assert (
        "horizontalpodautoscaler.autoscaling/coderun-webui created (server dry run)" in dry.stdout
    )
