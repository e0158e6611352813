"""Error answers: a JSON body under /api/, a page everywhere else, always one sentence."""

from __future__ import annotations

from flask import Flask, Response, jsonify, render_template, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

_TITLES = {
    400: "Bad request",
    403: "Refused",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported content type",
    422: "Cannot run this",
    429: "Too many runs",
    500: "Something went wrong",
    503: "Service unavailable",
}


def wants_json() -> bool:
    """True for JSON API requests."""
    return request.path.startswith("/api/")


def json_error(
    status: int, message: str, field: str | None = None, retry_after: int | None = None
) -> Response:
    """``{"error": {"message": ..., "field": ...}}`` with ``status``; field is null when the
    error is not about one field."""
    response = jsonify({"error": {"message": message, "field": field or None}})
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def error_response(
    status: int, message: str, field: str | None = None, retry_after: int | None = None
) -> Response:
    """The error as JSON for the API, else as a small page."""
    if wants_json():
        return json_error(status, message, field, retry_after)
    page = render_template("error.html", title=_TITLES.get(status, "Error"), message=message)
    response = Response(page, status=status, mimetype="text/html")
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


def too_large_message() -> str:
    """What to say when a request body is over MAX_CONTENT_LENGTH."""
    from webui.services import get_services

    limits = get_services().settings.limits
    return (
        f"The request is too large. Code may be up to {limits.max_code_chars:,} characters "
        f"and input up to {limits.max_stdin_chars:,} characters."
    )


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if isinstance(error, RequestEntityTooLarge):
        return error_response(413, too_large_message())
    messages = {
        404: "There is nothing at this address. Runs are kept for a limited time after they end.",
        405: f"This address does not accept {request.method} requests.",
        400: "The request could not be understood. Check it and try again.",
        # Unexpected errors are logged with their traceback by Flask; users get a sentence.
        500: "Something went wrong on our side. Please try again.",
    }
    return error_response(status, messages.get(status, error.description or "Error."))


def init_app(app: Flask) -> None:
    """Registers the error handlers."""
    app.register_error_handler(HTTPException, _http_error)
