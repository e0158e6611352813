"""The GitHub Actions workflows, checked without GitHub.

actionlint (installed next to the interpreter by the dev dependencies) lints every workflow and
must find nothing; a deliberately broken workflow shows that it does find things. The e2e-kind
workflow is read as data and held to what the acceptance suite and the kind overlay expect: the
same images, the same overlay, the same variable names, every action pinned to a commit.
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from coderun_operator.settings import load_run_limits
from tests.support.browser import CHROMIUM_ENV
from tests.support.e2e_target import KUBECONFIG_ENV, URL_ENV

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS = ROOT / ".github" / "workflows"
E2E_KIND = WORKFLOWS / "e2e-kind.yml"
KIND_OVERLAY = ROOT / "deploy" / "overlays" / "kind"
ACTIONLINT = Path(sys.executable).parent / "actionlint"
# Used for the run: scripts when installed next to the interpreter too; never taken from PATH,
# so that the result does not depend on the machine.
SHELLCHECK = Path(sys.executable).parent / "shellcheck"
# owner/name@<40 hex> # vX.Y.Z: a commit, and the release it is, for people and for updates.
PINNED_USES = re.compile(r"^[\w.-]+/[\w.-]+(/[\w./-]+)?@[0-9a-f]{40} # v\d+\.\d+\.\d+$")


def actionlint(*paths: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run actionlint on ``paths``; fails the test when actionlint is not installed."""
    if not ACTIONLINT.is_file():
        pytest.fail(
            f"actionlint is missing: expected {ACTIONLINT} (the dev dependencies install it: "
            "pip install -c constraints.txt -e '.[dev]')"
        )
    shellcheck = str(SHELLCHECK) if SHELLCHECK.is_file() else ""
    return subprocess.run(
        [str(ACTIONLINT), "-no-color", f"-shellcheck={shellcheck}", "-pyflakes=", *map(str, paths)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def workflow_files() -> list[Path]:
    return sorted(p for p in WORKFLOWS.iterdir() if p.suffix in (".yml", ".yaml"))


def test_actionlint_finds_nothing_in_any_workflow():
    files = workflow_files()
    assert E2E_KIND in files
    done = actionlint(*files, cwd=ROOT)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), done.stdout + done.stderr


def test_actionlint_finds_the_faults_of_a_broken_workflow(tmp_path):
    broken = tmp_path / ".github" / "workflows" / "broken.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(
        textwrap.dedent(
            """\
            name: broken
            on: push
            jobs:
              job:
                runs-on: ubuntu-24.04
                timeout: 10
                steps:
                  - run: echo "${{ github.event.number ) }}"
            """
        )
    )
    done = actionlint(broken, cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert 'unexpected key "timeout" for "job" section' in done.stdout
    assert "[expression]" in done.stdout


# ---------------------------------------------------------------------------------------------
# e2e-kind.yml as data
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def workflow() -> dict[str, Any]:
    return yaml.safe_load(E2E_KIND.read_text())


@pytest.fixture(scope="module")
def steps(workflow) -> list[dict[str, Any]]:
    (job,) = workflow["jobs"].values()
    return job["steps"]


def scripts(steps: list[dict[str, Any]]) -> str:
    return "\n".join(step.get("run", "") for step in steps)


def one_line(text: str) -> str:
    """Shell text with its line continuations joined."""
    return re.sub(r"\\\n\s*", "", text)


def test_it_runs_on_main_and_by_hand_with_read_only_permissions(workflow):
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert triggers["push"]["branches"] == ["main"]
    assert triggers["pull_request"]["branches"] == ["main"]
    assert "workflow_dispatch" in triggers
    assert workflow["permissions"] == {"contents": "read"}
    assert workflow["concurrency"]["group"]
    (job,) = workflow["jobs"].values()
    assert job["runs-on"] == "ubuntu-24.04"
    assert 0 < job["timeout-minutes"] <= 90


def test_every_action_is_pinned_to_a_commit_with_its_release():
    uses = [
        line.split("uses:", 1)[1].strip()
        for line in E2E_KIND.read_text().splitlines()
        if line.strip().startswith(("uses:", "- uses:"))
    ]
    assert uses
    assert [use for use in uses if not PINNED_USES.match(use)] == []


def test_it_builds_both_images_and_loads_them_and_the_run_image_into_kind(workflow, steps):
    text = one_line(scripts(steps))
    overlay = yaml.safe_load((KIND_OVERLAY / "kustomization.yaml").read_text())
    images = [f"{image['name']}:{image['newTag']}" for image in overlay["images"]]
    assert sorted(images) == ["coderun-operator:local", "coderun-webui:local"]
    for image in images:
        dockerfile = f"Dockerfile.{image.split(':')[0].removeprefix('coderun-')}"
        assert (ROOT / dockerfile).is_file(), dockerfile
        assert f"docker build -f {dockerfile} -t {image} ." in text
    # The run image is the default runtime's, so that no run waits for a pull.
    limits = load_run_limits({})
    assert workflow["env"]["RUN_IMAGE"] == limits.runtimes[limits.default_runtime]
    # All three go in as one single-platform archive (see the step's comment).
    archive = '-o "$RUNNER_TEMP/images.tar"'
    saved = f'docker image save --platform linux/amd64 {archive} {" ".join(images)} "$RUN_IMAGE"'
    assert saved in text
    assert 'kind load image-archive "$RUNNER_TEMP/images.tar"' in text
    assert "kind load docker-image" not in text


def test_it_applies_the_kind_overlay_and_waits_for_both_deployments(steps):
    text = scripts(steps)
    assert (KIND_OVERLAY / "kustomization.yaml").is_file()
    assert "kubectl apply -k deploy/overlays/kind" in text
    assert "crd/coderuns.coderun.dev" in text
    for deployment in ("coderun-operator", "coderun-webui"):
        assert f"rollout status deployment/{deployment}" in text
    kind = next(step for step in steps if "helm/kind-action@" in step.get("uses", ""))
    assert (ROOT / kind["with"]["config"]).is_file()


def test_the_acceptance_suite_runs_against_the_forwarded_web_ui(steps):
    forward = next(step for step in steps if "port-forward" in step.get("run", ""))
    assert "port-forward svc/coderun-webui 8080:80" in one_line(forward["run"])
    (suite,) = [step for step in steps if "pytest" in step.get("run", "")]
    assert "pytest tests/acceptance" in suite["run"]
    # The names the acceptance suite's conftest reads (tests/support/e2e_target.py).
    assert suite["env"][URL_ENV] == "http://127.0.0.1:8080"
    assert suite["env"][KUBECONFIG_ENV] == "${{ runner.temp }}/kubeconfig"
    assert 'kind get kubeconfig --name "$CLUSTER" > "$RUNNER_TEMP/kubeconfig"' in scripts(steps)
    # The browser tests' Chromium comes from the runner (tests/support/browser.py).
    assert f'echo "{CHROMIUM_ENV}=$chrome" >> "$GITHUB_ENV"' in scripts(steps)


def test_a_failure_leaves_the_cluster_state_and_logs_as_artifacts(steps):
    dump = next(step for step in steps if "kubectl get all,coderuns -A" in step.get("run", ""))
    upload = next(step for step in steps if "upload-artifact@" in step.get("uses", ""))
    for step in (dump, upload):
        assert "failure()" in step["if"]
    assert "deployment/coderun-operator" in dump["run"]
    assert "app.kubernetes.io/name=coderun-webui" in dump["run"]
    assert "get events" in dump["run"]
    assert upload["with"]["path"] == "artifacts/"


def test_every_script_stops_at_its_first_failure(steps):
    for step in steps:
        if "run" in step:
            assert step["run"].startswith("set -euo pipefail\n"), step["name"]
