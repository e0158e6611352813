"""Probes: ``/healthz`` (the process answers) and ``/readyz`` (it has reached the CodeRun API)."""

from __future__ import annotations

import contextlib
from pathlib import Path

from flask import Blueprint, Response, current_app

from webui.runs_store import StoreError
from webui.services import get_services

bp = Blueprint("health", __name__)

# Set in an app once its readiness check has passed.
_API_SEEN = "coderun.api_seen"


@bp.get("/healthz")
def healthz() -> Response:
    """Alive: the worker answers requests. Deliberately checks nothing else."""
    return Response("ok\n", mimetype="text/plain")


@bp.get("/readyz")
def readyz() -> Response:
    """Ready once the API server has answered and served coderun.dev/v1alpha1 (by discovery).

    Only the first success counts: every replica shares one API server, so failing readiness
    in an outage would take them all out of the load balancer at once. A ready replica instead
    answers during the outage itself, with 503 pages that say the service is not available
    and keep the snippet in the editor. The first success is shared by the workers of one
    gunicorn through ``READY_FILE``, so whichever worker the probe reaches gives one answer.
    """
    if _api_seen():
        return Response("ready\n", mimetype="text/plain")
    try:
        get_services().store.check_ready()
    except StoreError as error:
        return Response(f"not ready: {error.message}\n", status=503, mimetype="text/plain")
    _remember_api_seen()
    return Response("ready\n", mimetype="text/plain")


def _api_seen() -> bool:
    if current_app.extensions.get(_API_SEEN):
        return True
    ready_file = current_app.config.get("READY_FILE")
    return bool(ready_file) and Path(ready_file).exists()


def _remember_api_seen() -> None:
    current_app.extensions[_API_SEEN] = True
    ready_file = current_app.config.get("READY_FILE")
    if ready_file:
        # Best effort: without the file each worker learns it for itself.
        with contextlib.suppress(OSError):
            Path(ready_file).touch()
