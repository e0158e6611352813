"""`python -m coderun_operator`: load the settings, then run kopf on the runs namespace.

A bad setting, or no way to the API server (not in a cluster and no usable kubeconfig), stops
start-up with one sentence on stderr and exit code 2.
"""

from __future__ import annotations

import logging
import os
import sys

import kopf
from kubernetes import client
from kubernetes import config as kube_config

from coderun_operator.settings import SettingsError, load_operator_settings


def kube_config_problem() -> str | None:
    """Why the operator has no way to the API server, or None; contacts nothing."""
    try:
        kube_config.load_incluster_config(client_configuration=client.Configuration())
        return None
    except kube_config.ConfigException:
        pass
    try:
        kube_config.load_kube_config(client_configuration=client.Configuration())
    except (kube_config.ConfigException, OSError) as error:
        return (
            "No Kubernetes API server is configured: not running in a cluster and no usable "
            f"kubeconfig (set KUBECONFIG): {error}"
        )
    return None


def main() -> int:
    """Start the operator; returns the process exit code."""
    try:
        settings = load_operator_settings(os.environ)
    except SettingsError as error:
        print(f"coderun-operator: {error}", file=sys.stderr)
        return 2
    problem = kube_config_problem()
    if problem is not None:
        print(f"coderun-operator: {problem}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import coderun_operator.handlers  # noqa: F401  (registers the handlers with kopf)

    kopf.run(
        namespaces=[settings.runs_namespace],
        clusterwide=False,
        standalone=settings.peering_name is None,
        peering_name=settings.peering_name,
        liveness_endpoint=f"http://0.0.0.0:{settings.health_port}/healthz",
        memo=kopf.Memo(settings=settings),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
