"""The JSON API: start a run, read it (optionally waiting until it ends), cancel it."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request, url_for

from webui.errors import json_error
from webui.run_actions import (
    RateLimitError,
    cancel_run,
    rate_limit_message,
    refusal_message,
    refusal_retry_after,
    refused_status,
    start_run,
)
from webui.run_names import is_run_name
from webui.run_view import is_terminal, phase_of
from webui.runs_store import NotFound, Refused, StoreError, Unavailable
from webui.services import get_services
from webui.validation import InvalidRunError, run_from_json

bp = Blueprint("api", __name__, url_prefix="/api")

_SPEC_FIELDS = ("code", "stdin", "timeoutSeconds", "cancel")
# Where in the cluster a run was placed is of no use to its user and helps an attacker aim.
_HIDDEN_STATUS_FIELDS = frozenset({"podName", "nodeName"})
NOT_FOUND = "No run has this name; it may have expired or been deleted."


def run_json(run: dict[str, Any]) -> dict[str, Any]:
    """A CodeRun as the API shows it: where to find it, what was asked, what happened.

    ``status`` is the CodeRun's status as the operator wrote it, less the pod and node names.
    """
    metadata = run.get("metadata") or {}
    spec = run.get("spec") or {}
    status = run.get("status") or {}
    name = metadata.get("name", "")
    return {
        "name": name,
        "url": url_for("pages.run_page", name=name),
        "apiUrl": url_for("api.get_run", name=name),
        "createdAt": metadata.get("creationTimestamp"),
        "phase": phase_of(run),
        "terminal": is_terminal(run),
        "spec": {key: spec[key] for key in _SPEC_FIELDS if key in spec},
        "status": {key: value for key, value in status.items() if key not in _HIDDEN_STATUS_FIELDS},
    }


def _store_error(error: StoreError) -> Response:
    if isinstance(error, NotFound):
        return json_error(404, NOT_FOUND)
    if isinstance(error, Refused):
        return json_error(refused_status(error), f"The cluster refused: {error.message}")
    return json_error(
        503, "The run service is not available right now; try again shortly.", retry_after=5
    )


@bp.post("/runs")
def create_run() -> Response:
    """``{"code": ..., "stdin": ..., "timeoutSeconds": ...}`` → 201 with the new run."""
    if not request.is_json:
        return json_error(415, "Send the run as JSON with Content-Type: application/json.")
    body = request.get_json(silent=True)
    if body is None:
        return json_error(400, "The request body is not valid JSON.")
    try:
        run_request = run_from_json(body, get_services().settings.limits)
    except InvalidRunError as invalid:
        first = invalid.first
        return json_error(invalid.status, first.message, first.field or None)
    try:
        run = start_run(run_request)
    except RateLimitError as limited:
        return json_error(
            429, rate_limit_message(limited.retry_after), retry_after=limited.retry_after
        )
    except Refused as refused:
        return json_error(
            refused_status(refused),
            refusal_message(refused),
            retry_after=refusal_retry_after(refused),
        )
    except StoreError as error:
        return _store_error(error)
    response = jsonify(run_json(run))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_run", name=run["metadata"]["name"])
    return response


@bp.get("/runs/<name>")
def get_run(name: str) -> Response:
    """The run; with ``?wait=<seconds>``, answers as soon as it ends or the wait is over."""
    if not is_run_name(name):
        return json_error(404, NOT_FOUND)
    services = get_services()
    raw_wait = request.args.get("wait", "0")
    try:
        wait = float(raw_wait)
        if not 0 <= wait < float("inf"):
            raise ValueError(raw_wait)
    except ValueError:
        return json_error(422, "wait must be a number of seconds, 0 or more.", "wait")
    # Capped, so a waiting request never holds a server thread for long; ask again after.
    wait = min(wait, float(services.settings.max_wait_seconds))
    try:
        run = services.watch.wait(name, is_terminal, wait)
    except StoreError as error:
        return _store_error(error)
    return jsonify(run_json(run))


@bp.post("/runs/<name>/cancel")
def cancel(name: str) -> Response:
    """Asks the operator to stop the run: 202 while it runs, 409 when it has ended."""
    if not is_run_name(name):
        return json_error(404, NOT_FOUND)
    try:
        run, was_running = cancel_run(name)
    except (NotFound, Unavailable, Refused) as error:
        return _store_error(error)
    if not was_running:
        return json_error(409, "The run has already ended, so there is nothing to cancel.")
    response = jsonify(run_json(run))
    response.status_code = 202
    return response
