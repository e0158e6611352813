"""Prepare a cluster for coderun the way an administrator would: manifests, then identities.

`make run` applies deploy/base with the admin kubeconfig, then asks the API server for a
token of each service account (TokenRequest, as `kubectl create token` does) and writes one
kubeconfig per component, so the operator and the web UI run with exactly the permissions
their RBAC gives them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
KUBECTL = str(Path(sys.executable).parent / "kubectl")
SYSTEM_NAMESPACE = "coderun-system"
RUNS_NAMESPACE = "coderun-runs"


class SetupError(RuntimeError):
    """A setup step failed; the message carries kubectl's words."""


def kubectl(kubeconfig: Path, home: Path, *args: str, timeout: float = 120) -> str:
    """Run real kubectl with its own HOME; returns stdout or raises SetupError."""
    home.mkdir(parents=True, exist_ok=True)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "KUBECONFIG": str(kubeconfig)}
    done = subprocess.run(
        [KUBECTL, *args], capture_output=True, text=True, env=env, timeout=timeout, check=False
    )
    if done.returncode != 0:
        raise SetupError(f"kubectl {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


# The operator and the web UI run here as local processes, so their Deployments, Service and
# disruption budget stay out of devcluster, which runs no controllers for them.
LOCAL_SELECTOR = "app.kubernetes.io/component notin (operator,webui)"


def apply_base(kubeconfig: Path, home: Path) -> None:
    """Apply deploy/base without its workloads, then wait until the CRD is established."""
    kubectl(kubeconfig, home, "apply", "-k", str(ROOT / "deploy" / "base"), "-l", LOCAL_SELECTOR)
    kubectl(
        kubeconfig,
        home,
        "wait",
        "--for=condition=Established",
        "crd/coderuns.coderun.dev",
        "--timeout=60s",
    )


def service_account_kubeconfig(
    admin_kubeconfig: Path, home: Path, account: str, target: Path, hours: int = 48
) -> Path:
    """Write a kubeconfig that authenticates as ``account`` with a fresh bound token."""
    token = kubectl(
        admin_kubeconfig,
        home,
        "create",
        "token",
        account,
        "-n",
        SYSTEM_NAMESPACE,
        f"--duration={hours}h",
    ).strip()
    config: dict[str, Any] = yaml.safe_load(admin_kubeconfig.read_text())
    user = f"system:serviceaccount:{SYSTEM_NAMESPACE}:{account}"
    config["users"] = [{"name": user, "user": {"token": token}}]
    for context in config.get("contexts", []):
        context["context"]["user"] = user
        context["context"]["namespace"] = RUNS_NAMESPACE
    target.write_text(yaml.safe_dump(config))
    target.chmod(0o600)
    return target
