"""The coderun web UI: one page to type a Python snippet, run it as a CodeRun and see the output.

gunicorn serves ``webui:create_app()`` with the settings in ``gunicorn.conf.py``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Response, request
from werkzeug.middleware.proxy_fix import ProxyFix

from coderun_operator.settings import SettingsError, WebSettings, load_web_settings
from webui import api, errors, health, pages, security_headers, services
from webui.origin_check import is_cross_site
from webui.rate_limit import RateLimiter
from webui.run_watch import RunWatch
from webui.runs_store import ConnectionSetupError, RunsStore, connect

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
# Form encoding turns one character into up to 12 bytes (4 UTF-8 bytes, each as %XX).
_BYTES_PER_CHAR = 12
_REQUEST_OVERHEAD = 16 * 1024


def _request_size_limit(settings: WebSettings) -> int:
    limits = settings.limits
    return (limits.max_code_chars + limits.max_stdin_chars) * _BYTES_PER_CHAR + _REQUEST_OVERHEAD


def _max_waiters(settings: WebSettings) -> int:
    # Long-polls hold a gunicorn thread each; keep a quarter (at least two) for other pages.
    return max(1, settings.threads - max(2, settings.threads // 4))


def _refuse_cross_site() -> Response | None:
    if is_cross_site(request.method, request.headers, request.host):
        return errors.error_response(
            403,
            "This request came from another site, so it was refused. "
            "Start runs from this site's own page.",
        )
    return None


def create_app(test_config: Mapping[str, Any] | None = None) -> Flask:
    """The Flask app: defaults, then ``CODERUN_*`` settings from the environment, then
    ``test_config``.

    ``test_config`` may set ``CODERUN_SETTINGS`` (a `WebSettings`), ``KUBE_API_CLIENT`` (a
    kubernetes ApiClient), ``KUBECONFIG`` (a path), ``READY_FILE`` (a path) and any Flask
    setting. A bad setting or
    no way to reach Kubernetes stops start-up with one sentence.
    """
    app = Flask(__name__, template_folder=str(TEMPLATES))
    app.config.from_mapping(
        DEBUG=False,
        KUBECONFIG=None,
        KUBE_API_CLIENT=None,
        # A file the workers of one gunicorn share (see webui/health.py); none: this app only.
        READY_FILE=os.environ.get("WEBUI_READY_FILE"),
    )
    try:
        app.config["CODERUN_SETTINGS"] = load_web_settings(os.environ)
    except SettingsError as error:
        raise SystemExit(f"coderun web UI: {error}") from None
    if test_config:
        app.config.update(test_config)
    settings: WebSettings = app.config["CODERUN_SETTINGS"]
    # Flask has its own defaults for these, so "unless the test mapping set them" is explicit.
    given = test_config or {}
    if "MAX_CONTENT_LENGTH" not in given:
        app.config["MAX_CONTENT_LENGTH"] = _request_size_limit(settings)
    if "MAX_FORM_MEMORY_SIZE" not in given:
        app.config["MAX_FORM_MEMORY_SIZE"] = app.config["MAX_CONTENT_LENGTH"]
    app.config.setdefault("MAX_WAITERS", _max_waiters(settings))
    # Never the interactive debugger, whatever the environment says.
    app.debug = False

    api_client = app.config["KUBE_API_CLIENT"]
    if api_client is None:
        try:
            # One connection per server thread, plus the watch.
            api_client = connect(app.config["KUBECONFIG"], pool_size=settings.threads + 1)
        except ConnectionSetupError as error:
            raise SystemExit(f"coderun web UI: {error}") from None
    store = RunsStore(api_client, settings.runs_namespace)
    services.init_app(
        app,
        services.Services(
            settings=settings,
            store=store,
            watch=RunWatch(store, max_waiters=app.config["MAX_WAITERS"]),
            limiter=RateLimiter(settings.runs_per_minute_per_client),
        ),
    )

    if settings.trusted_proxy_hops:
        # The client address is taken from X-Forwarded-For only when proxies are trusted.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_hops)  # type: ignore[method-assign]

    app.json.sort_keys = False  # type: ignore[attr-defined]  # keep the documented order
    app.jinja_env.trim_blocks = True
    app.jinja_env.lstrip_blocks = True
    app.add_template_filter(lambda number: f"{number:,}", "thousands")
    app.before_request(_refuse_cross_site)
    security_headers.init_app(app)
    errors.init_app(app)
    app.register_blueprint(pages.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(health.bp)
    return app
