"""The HTML pages: the form, a run's page with its live updates, and cancelling."""

from __future__ import annotations

from flask import Blueprint, Response, abort, redirect, render_template, request, url_for

from webui.errors import error_response
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
from webui.run_view import is_terminal, resource_version, run_view
from webui.runs_store import NotFound, Refused, Unavailable
from webui.services import get_services
from webui.validation import InvalidRunError, run_from_form, timeout_choices

bp = Blueprint("pages", __name__)

FORM_FIELDS = ("code", "stdin", "timeoutSeconds")
UNAVAILABLE_MESSAGE = (
    "The run service is not available right now, so nothing was started. "
    "Your code is still here; try again in a moment."
)
GONE_MESSAGE = (
    "This run does not exist. Runs are deleted some time after they end, "
    "and only the link you got when starting one leads to it."
)


def render_form(
    values: dict[str, str],
    errors: dict[str, str] | None = None,
    message: str | None = None,
    status: int = 200,
    retry_after: int | None = None,
) -> Response:
    """The form page with the user's text, messages per field and an overall message."""
    settings = get_services().settings
    timeouts = timeout_choices(settings.limits)
    chosen = values.get("timeoutSeconds", "")
    if chosen.isdigit() and 1 <= int(chosen) <= settings.limits.max_timeout_seconds:
        # A run started through the API may have any limit: offer it when editing that run.
        timeouts = sorted({*timeouts, int(chosen)})
    else:
        values = {**values, "timeoutSeconds": str(settings.limits.default_timeout_seconds)}
    page = render_template(
        "index.html",
        values=values,
        errors=errors or {},
        message=message,
        limits=settings.limits,
        timeouts=timeouts,
    )
    response = Response(page, status=status, mimetype="text/html")
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def _blank_values() -> dict[str, str]:
    limits = get_services().settings.limits
    return {"code": "", "stdin": "", "timeoutSeconds": str(limits.default_timeout_seconds)}


@bp.get("/")
def index() -> Response:
    """The form; ``?from=<run>`` fills it with that run's code to edit and run again."""
    values = _blank_values()
    source = request.args.get("from", "")
    if not source:
        return render_form(values)
    try:
        if not is_run_name(source):
            raise NotFound(GONE_MESSAGE)
        run = run_view(get_services().store.get(source))
    except NotFound:
        return render_form(
            values,
            message="That run no longer exists, so there is no code to copy from it.",
            status=404,
        )
    except Unavailable:
        return render_form(values, message=UNAVAILABLE_MESSAGE, status=503)
    values.update(code=run.code, stdin=run.stdin or "")
    if run.timeout_seconds is not None:
        values["timeoutSeconds"] = str(run.timeout_seconds)
    return render_form(values)


@bp.post("/")
@bp.post("/runs")
def create_run() -> Response:
    """Starts a run from the form (``code``, optional ``stdin`` and ``timeoutSeconds``)."""
    values = {key: request.form.get(key, "") for key in FORM_FIELDS}
    if not values["timeoutSeconds"]:
        values["timeoutSeconds"] = _blank_values()["timeoutSeconds"]
    try:
        run_request = run_from_form(request.form, get_services().settings.limits)
    except InvalidRunError as invalid:
        return render_form(
            values,
            invalid.by_field(),
            message="The run was not started. Fix the problem below and run again.",
            status=invalid.status,
        )
    try:
        run = start_run(run_request)
    except RateLimitError as limited:
        return render_form(
            values,
            message=rate_limit_message(limited.retry_after),
            status=429,
            retry_after=limited.retry_after,
        )
    except Unavailable:
        return render_form(values, message=UNAVAILABLE_MESSAGE, status=503, retry_after=5)
    except Refused as refused:
        return render_form(
            values,
            message=refusal_message(refused),
            status=refused_status(refused),
            retry_after=refusal_retry_after(refused),
        )
    name = run["metadata"]["name"]
    return redirect(url_for("pages.run_page", name=name), code=303)  # type: ignore[return-value]


@bp.get("/runs")
def runs_index() -> Response:
    """There is no list of runs (a run's name is the key to it): back to the form."""
    return redirect(url_for("pages.index"), code=303)  # type: ignore[return-value]


def _checked_name(name: str) -> str:
    if not is_run_name(name):
        abort(error_response(404, GONE_MESSAGE))
    return name


@bp.get("/runs/<name>")
def run_page(name: str) -> Response | str:
    """One run: status, output, timings and code; refreshes itself until the run ends."""
    _checked_name(name)
    try:
        run = get_services().store.get(name)
    except NotFound:
        return error_response(404, GONE_MESSAGE)
    except Unavailable:
        return error_response(
            503,
            "The run cannot be shown right now because the run service is not available. "
            "Reload this page in a moment.",
            retry_after=5,
        )
    view = run_view(run)
    limits = get_services().settings.limits
    return render_template("run.html", run=view, default_timeout=limits.default_timeout_seconds)


def _wait_seconds() -> float:
    limit = get_services().settings.max_wait_seconds
    try:
        wait = float(request.args.get("wait", "0"))
    except ValueError:
        return 0.0
    return min(max(wait, 0.0), float(limit))


@bp.get("/runs/<name>/live")
def run_live(name: str) -> Response | str:
    """The changing part of a run's page, once it differs from version ``rv`` (long-poll)."""
    _checked_name(name)
    known = request.args.get("rv", "")
    services = get_services()
    try:
        run = services.watch.wait(
            name,
            lambda run: is_terminal(run) or resource_version(run) != known,
            _wait_seconds(),
        )
    except NotFound:
        return error_response(404, GONE_MESSAGE)
    except Unavailable:
        return error_response(503, "The run service is not available; retrying.", retry_after=5)
    return render_template("_run_live.html", run=run_view(run))


@bp.post("/runs/<name>/cancel")
def cancel(name: str) -> Response:
    """Asks the operator to stop the run, then shows the run again."""
    _checked_name(name)
    try:
        cancel_run(name)
    except NotFound:
        return error_response(404, GONE_MESSAGE)
    except Unavailable:
        return error_response(
            503,
            "The run could not be cancelled because the run service is not available. "
            "Go back and try again in a moment.",
            retry_after=5,
        )
    except Refused as refused:
        return error_response(refused_status(refused), f"The cluster refused: {refused.message}")
    return redirect(url_for("pages.run_page", name=name), code=303)  # type: ignore[return-value]
