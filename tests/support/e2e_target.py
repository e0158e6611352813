"""Where the acceptance suite runs: a local stack of its own, or a cluster named by two variables.

With neither variable set, tests/acceptance starts devcluster, the operator and the web UI
itself. With both set, it tests a cluster where deploy/overlays/kind is applied: the web UI at
``CODERUN_E2E_URL`` (e.g. a `kubectl port-forward` of svc/coderun-webui) and the cluster through
the admin kubeconfig ``CODERUN_E2E_KUBECONFIG``. The CI workflow sets the same names
(tests/test_workflows.py checks that it does).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

URL_ENV = "CODERUN_E2E_URL"
KUBECONFIG_ENV = "CODERUN_E2E_KUBECONFIG"
# Marker of tests that need devcluster's internals; deselected when testing a cluster.
DEVCLUSTER_ONLY = "devcluster_only"


@dataclass(frozen=True)
class ExternalTarget:
    """A cluster with the kind overlay applied, and the web UI's base URL (no trailing /)."""

    url: str
    kubeconfig: str


def external_target(environ: Mapping[str, str]) -> ExternalTarget | None:
    """The cluster to test, or None for the local stack; a usage error when half is given."""
    url = environ.get(URL_ENV, "").strip()
    kubeconfig = environ.get(KUBECONFIG_ENV, "").strip()
    if not url and not kubeconfig:
        return None
    if not (url and kubeconfig):
        given, missing = (URL_ENV, KUBECONFIG_ENV) if url else (KUBECONFIG_ENV, URL_ENV)
        raise pytest.UsageError(
            f"{given} is set but {missing} is not: set both to test a cluster where "
            f"deploy/overlays/kind is applied (the web UI's URL and an admin kubeconfig), "
            f"or neither to let the suite start its own local stack."
        )
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise pytest.UsageError(
            f"{URL_ENV} must be the web UI's base URL, like http://127.0.0.1:8080, not {url!r}."
        )
    if not Path(kubeconfig).is_file():
        raise pytest.UsageError(f"{KUBECONFIG_ENV} names {kubeconfig!r}, which is not a file.")
    return ExternalTarget(url.rstrip("/"), kubeconfig)
