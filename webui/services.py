"""The long-lived objects one app instance shares between requests."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app

from coderun_operator.settings import WebSettings
from webui.rate_limit import RateLimiter
from webui.run_watch import RunWatch
from webui.runs_store import RunsStore

_KEY = "coderun"


@dataclass(frozen=True)
class Services:
    """Settings, the Kubernetes access layer, the shared watch and the rate limiter."""

    settings: WebSettings
    store: RunsStore
    watch: RunWatch
    limiter: RateLimiter


def init_app(app: Flask, services: Services) -> None:
    """Attaches ``services`` to ``app``."""
    app.extensions[_KEY] = services


def get_services() -> Services:
    """The current app's services."""
    return current_app.extensions[_KEY]
