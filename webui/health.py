"""Probes: ``/healthz`` (the process answers) and ``/readyz`` (it can reach the CodeRun API)."""

from __future__ import annotations

from flask import Blueprint, Response

from webui.runs_store import StoreError
from webui.services import get_services

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """Alive: the worker answers requests. Deliberately checks nothing else."""
    return Response("ok\n", mimetype="text/plain")


@bp.get("/readyz")
def readyz() -> Response:
    """Ready: the API server answers and serves coderun.dev/v1alpha1 (by discovery)."""
    try:
        get_services().store.check_ready()
    except StoreError as error:
        return Response(f"not ready: {error.message}\n", status=503, mimetype="text/plain")
    return Response("ready\n", mimetype="text/plain")
