"""docs/gke.md, the GKE guide: every step that needs no Google Cloud runs here, as written.

The guide's overlay steps (your overlay on top of gke, the API server egress rule, a changed
setting, an upgrade's new tag) run with bash and real kubectl in a copy of deploy/; what they
build must render and validate. Commands that need Google Cloud, Docker or a cluster (gcloud,
docker, kubectl apply and rollout) are left out and nothing stands in for them.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.support.manifests import (
    KUBERNETES_VERSION,
    ROOT,
    assert_largest_run_fits,
    find,
    kustomize,
    render,
)

GUIDE = ROOT / "docs" / "gke.md"
API_SERVER = "203.0.113.7"  # stands for the address `kubectl get endpoints kubernetes` prints
# Lines that need Google Cloud, Docker or a cluster; a trailing backslash continues them.
# (`kubectl kustomize` needs none of them and runs.)
NEEDS_THE_CLOUD = re.compile(r"^(gcloud|docker) |^kubectl (apply|-n|get) ")
ASKS_THE_CLUSTER = re.compile(r"^APISERVER=\$\(kubectl get endpoints .*\)$", re.MULTILINE)


def sh_blocks() -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", GUIDE.read_text(), re.MULTILINE | re.DOTALL)


def block_with(marker: str) -> str:
    (block,) = [block for block in sh_blocks() if marker in block]
    return block


def heredoc(block: str, path: str) -> str:
    """The text a `cat > path <<'YAML'` in ``block`` writes."""
    match = re.search(rf"cat > {re.escape(path)} <<'?YAML'?\n(.*?)^YAML$", block, re.M | re.S)
    assert match, f"no heredoc writing {path}"
    return match.group(1)


def offline(block: str) -> str:
    """``block`` without the commands that need Google Cloud, Docker or a cluster."""
    kept, skipping = [], False
    for line in block.splitlines():
        if skipping or NEEDS_THE_CLOUD.match(line):
            skipping = line.endswith("\\")
            continue
        kept.append(line)
    return "\n".join(kept) + "\n"


def run_steps(workdir: Path, overlay: str | None) -> tuple[str, dict[str, str]]:
    """Steps 0, 6 (with the egress rule), 11 (with bigger runs) and 12 in ``workdir``; returns
    their output and the variables of step 0."""
    egress, asked = ASKS_THE_CLUSTER.subn(f"APISERVER={API_SERVER}", block_with("apiserver-egress"))
    assert asked == 1
    script = "\n".join(
        [
            "set -euo pipefail",
            offline(block_with("PROJECT_ID=")),
            f"OVERLAY={overlay}" if overlay else "",
            offline(block_with("MINE=deploy/overlays/mine")),
            offline(egress),
            offline(block_with("CODERUN_RUNS_PER_MINUTE_PER_CLIENT=60")),
            offline(block_with("bigger-runs")),
            offline(block_with("TAG=0.1.1")),
            'echo "IMAGES=${IMAGES} TAG=${TAG}"',
        ]
    )
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(workdir / "home"),
        "LC_ALL": "C.UTF-8",
    }
    done = subprocess.run(
        ["bash", "-c", script],
        check=False,
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"the guide's steps failed:\n{done.stderr}"
    *_, last = done.stdout.strip().splitlines()
    return done.stdout, dict(item.split("=", 1) for item in last.split())


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    for folder in ("deploy", "crds"):
        shutil.copytree(ROOT / folder, tmp_path / folder)
    return tmp_path


@pytest.mark.parametrize("overlay", [None, "deploy/overlays/gke-sandbox"])
def test_your_overlay_as_the_guide_builds_it_renders_and_validates(workdir, overlay):
    output, variables = run_steps(workdir, overlay)
    images, tag = variables["IMAGES"], variables["TAG"]
    assert tag == "0.1.1"
    objects = [o for o in yaml.safe_load_all(kustomize(workdir / "deploy/overlays/mine")) if o]
    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)

    # Your images, at the upgrade's tag; step 6 printed the names it wrote.
    pulled = {
        container["image"]
        for obj in objects
        if obj["kind"] == "Deployment"
        for container in obj["spec"]["template"]["spec"]["containers"]
    }
    assert pulled == {f"{images}/coderun-operator:{tag}", f"{images}/coderun-webui:{tag}"}
    assert f"{images}/coderun-operator:0.1.0" in output

    # The API server rule names the one address, in both policies; DNS stays as it was.
    chosen = render((overlay or "deploy/overlays/gke").removeprefix("deploy/"))
    for name in ("coderun-operator", "coderun-webui"):
        dns, api_server = find(objects, "NetworkPolicy", name)["spec"]["egress"]
        assert dns == find(chosen, "NetworkPolicy", name)["spec"]["egress"][0]
        assert api_server == {
            "to": [{"ipBlock": {"cidr": f"{API_SERVER}/32"}}],
            "ports": [{"protocol": "TCP", "port": 443}],
        }

    # Step 11's settings are merged into the chosen overlay's, which stay.
    settings = find(objects, "ConfigMap", "coderun-settings")["data"]
    assert settings == {
        **find(chosen, "ConfigMap", "coderun-settings")["data"],
        "CODERUN_RUNS_PER_MINUTE_PER_CLIENT": "60",
        "CODERUN_MAX_CPU": "2",
        "CODERUN_MAX_MEMORY": "1Gi",
    }
    # Bigger runs: the namespace's policy moved with the settings, and the quota doubled.
    assert_largest_run_fits(objects)
    assert find(objects, "ResourceQuota", "coderun-runs")["spec"]["hard"] == {
        "pods": "200",
        "count/coderuns.coderun.dev": "4000",
    }
    assert Counter(o["kind"] for o in objects) == Counter(o["kind"] for o in chosen)


def test_the_guides_cloud_build_config_builds_and_pushes_both_dockerfiles():
    config = yaml.safe_load(
        heredoc(block_with("gcloud builds submit"), "/tmp/coderun-cloudbuild.yaml")
    )
    built = []
    for step in config["steps"]:
        args = step["args"]
        assert args[0] == "build" and args[-1] == "."
        assert (ROOT / args[args.index("-f") + 1]).is_file()
        built.append(args[args.index("-t") + 1])
    assert (
        sorted(built)
        == sorted(config["images"])
        == [
            "${_IMAGES}/coderun-operator:${_TAG}",
            "${_IMAGES}/coderun-webui:${_TAG}",
        ]
    )


def test_the_guides_node_pool_sets_a_pids_limit_and_the_cluster_enforces_network_policy():
    block = block_with("gcloud container clusters create")
    node_config = yaml.safe_load(heredoc(block, "/tmp/coderun-node-config.yaml"))
    assert node_config == {"kubeletConfig": {"podPidsLimit": 1024}}
    assert "--system-config-from-file=/tmp/coderun-node-config.yaml" in block
    assert "--enable-dataplane-v2" in block
