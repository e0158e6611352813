"""`python -m coderun_operator`: load the settings, then run kopf on the runs namespace.

A bad setting, or no way to the API server (not in a cluster and no usable kubeconfig), stops
start-up with one sentence on stderr and exit code 2.
"""

from __future__ import annotations

import logging
import os
import sys

import kopf

from coderun_operator.api_access import KubeConfigError, load_configuration
from coderun_operator.settings import SettingsError, load_operator_settings


def main() -> int:
    """Start the operator; returns the process exit code."""
    try:
        settings = load_operator_settings(os.environ)
    except SettingsError as error:
        print(f"coderun-operator: {error}", file=sys.stderr)
        return 2
    try:
        load_configuration()
    except KubeConfigError as error:
        print(f"coderun-operator: {error}", file=sys.stderr)
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
