"""What both the pages and the JSON API do to a run: start it (rate-limited) and cancel it."""

from __future__ import annotations

from typing import Any

from flask import request

from webui.rate_limit import client_key
from webui.run_names import new_run_name
from webui.run_view import is_terminal
from webui.runs_store import Refused
from webui.services import get_services
from webui.validation import RunRequest


class RateLimitError(Exception):
    """This client started too many runs; ``retry_after`` is in seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many runs; try again in {retry_after} s.")
        self.retry_after = retry_after


def rate_limit_message(retry_after: int) -> str:
    """The sentence for a rate-limited client."""
    per_minute = get_services().settings.runs_per_minute_per_client
    return (
        f"You have started {per_minute} runs in the last minute, the most allowed. "
        f"Try again in {retry_after} second{'s' if retry_after != 1 else ''}."
    )


def refused_status(error: Refused) -> int:
    """HTTP status for a refusal: 422 when the run itself was invalid, else 503.

    403 (for example a full ResourceQuota, or missing rights) is nothing the user can fix by
    changing the run, so it is reported as the service being unavailable.
    """
    return 422 if error.status in (400, 422) else 503


# How long a client is asked to wait when the runs namespace is full.
CAPACITY_RETRY_SECONDS = 30


def at_capacity(error: Refused) -> bool:
    """True when the refusal is the runs namespace's ResourceQuota being full."""
    return error.status == 403 and "exceeded quota" in error.message


def refusal_message(error: Refused) -> str:
    """The sentence for a refused create: capacity in plain words, anything else verbatim."""
    if at_capacity(error):
        return (
            "The service is at capacity: it holds as many runs as it may right now. "
            f"The run was not started; try again in {CAPACITY_RETRY_SECONDS} seconds."
        )
    return f"The cluster refused the run: {error.message}"


def refusal_retry_after(error: Refused) -> int | None:
    """Seconds worth waiting before trying again, when waiting helps."""
    return CAPACITY_RETRY_SECONDS if at_capacity(error) else None


def start_run(run_request: RunRequest) -> dict[str, Any]:
    """Creates a CodeRun for ``run_request`` under a fresh unguessable name.

    Raises `RateLimitError` before touching the API when this client is over its limit, and the
    store's errors when the API server fails or refuses.
    """
    services = get_services()
    retry_after = services.limiter.try_acquire(client_key(request.remote_addr or "unknown"))
    if retry_after:
        raise RateLimitError(retry_after)
    return services.store.create(new_run_name(), run_request.spec())


def cancel_run(name: str) -> tuple[dict[str, Any], bool]:
    """Asks the operator to stop run ``name``; returns (run, whether it was still running)."""
    store = get_services().store
    run = store.get(name)
    if is_terminal(run):
        return run, False
    return store.cancel(name), True
