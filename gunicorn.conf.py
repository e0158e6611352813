"""gunicorn settings for the web UI: ``gunicorn 'webui:create_app()'`` (read from this folder).

Counts and port come from the web UI's settings (``CODERUN_PORT``, ``CODERUN_WEB_WORKERS``,
``CODERUN_WEB_THREADS``); a bad value stops gunicorn with one sentence before any worker starts.
Threaded workers let one process hold many waiting requests (long-polls of running runs), each
bounded by ``CODERUN_MAX_WAIT_SECONDS``.
"""

import contextlib
import os
import sys
import tempfile

from coderun_operator.api_access import KubeConfigError, load_configuration
from coderun_operator.settings import SettingsError, load_web_settings

try:
    _settings = load_web_settings(os.environ)
except SettingsError as _error:
    sys.exit(f"coderun web UI: {_error}")

wsgi_app = "webui:create_app()"
# The workers of one server share what /readyz has learnt (webui/health.py) through this file;
# a restarted server (same pid in a restarted container) starts without it.
_ready_file = os.path.join(tempfile.gettempdir(), f"coderun-webui-{os.getpid()}.ready")
raw_env = [f"WEBUI_READY_FILE={_ready_file}"]


def on_starting(server):
    """Stop at once, with one sentence, without a way to the API server (rather than let
    every worker fail to boot, over and over); forget an earlier server's readiness marker."""
    try:
        load_configuration()
    except KubeConfigError as error:
        sys.exit(f"coderun web UI: {error}")
    with contextlib.suppress(FileNotFoundError):
        os.remove(_ready_file)


def on_exit(server):
    """Leave no readiness marker behind."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(_ready_file)


bind = [f"0.0.0.0:{_settings.port}"]
worker_class = "gthread"
workers = _settings.workers
threads = _settings.threads
# Each worker loads the app itself (no preload), so each has its own watch thread.
preload_app = False
# A worker that misses heartbeats this long is restarted; long-polls end well before it.
timeout = _settings.max_wait_seconds + 35
# On shutdown, let waiting requests finish their (bounded) wait.
graceful_timeout = _settings.max_wait_seconds + 5
keepalive = 5
# No runtime control socket: it defaults to one path per user ($HOME/.gunicorn/gunicorn.ctl),
# which several servers on one machine would fight over, and the image's home is read-only.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
loglevel = "info"
# Ask clients to keep request headers small; bodies are limited by the app (MAX_CONTENT_LENGTH).
limit_request_line = 8190
limit_request_fields = 100
