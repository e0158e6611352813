"""The node agent's HTTP endpoint: container logs like the kubelet's port, and fault switches.

`GET /containerLogs/{namespace}/{pod}/{container}` takes the kubelet's `tailLines`,
`limitBytes`, `timestamps`, `sinceSeconds` and `follow` parameters (this is what an API server
proxies `pods/log` to, at the node's `status.daemonEndpoints.kubeletEndpoint.Port`).
`POST /admin/pause`, `/admin/resume`, `/admin/evict` (JSON `{"namespace", "name"}`) and
`GET /admin/status` switch faults at run time. The admin paths always need the agent's bearer
token; logs need it when `logs_need_token` is set (as with a kubelet's webhook authentication;
off by default because an API server that proxies `pods/log` without credentials, like the
kubelet's historical anonymous default, must still work).
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from devcluster import container_logs

log = logging.getLogger(__name__)

# (namespace, pod, container) -> (log file, container finished?) or None
LogLocator = Callable[[str, str, str], tuple[Path, bool] | None]


class NodeEndpoint:
    """A small threaded HTTP server on 127.0.0.1."""

    def __init__(
        self,
        locate_log: LogLocator,
        token: str,
        actions: dict[str, Callable[[dict[str, Any]], Any]],
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        logs_need_token: bool = False,
    ) -> None:
        self.locate_log = locate_log
        self.token = token
        self.logs_need_token = logs_need_token
        self.actions = actions
        self.stopping = threading.Event()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                log.debug("node endpoint: " + format, *args)

            def do_GET(self) -> None:
                endpoint.handle(self, "GET")

            def do_POST(self) -> None:
                endpoint.handle(self, "POST")

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Serve in a daemon thread."""
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="node-endpoint", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop serving (following log streams end too)."""
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()

    # -- requests -------------------------------------------------------------------------------
    def _authorized(self, request: BaseHTTPRequestHandler) -> bool:
        header = request.headers.get("Authorization", "")
        given = header.removeprefix("Bearer ").strip()
        return bool(self.token) and hmac.compare_digest(given.encode(), self.token.encode())

    @staticmethod
    def _reply(
        request: BaseHTTPRequestHandler,
        code: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
    ) -> None:
        request.send_response(code)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        """Route one request."""
        url = urlsplit(request.path)
        query = dict(parse_qsl(url.query))
        parts = [unquote(p) for p in url.path.strip("/").split("/")]
        if parts == ["healthz"]:
            self._reply(request, 200, b"ok")
            return
        is_log = method == "GET" and len(parts) == 4 and parts[0] == "containerLogs"
        if (self.logs_need_token or not is_log) and not self._authorized(request):
            self._reply(request, 401, b"Unauthorized\n")
            return
        if is_log:
            self._logs(request, parts[1], parts[2], parts[3], query)
            return
        if len(parts) == 2 and parts[0] == "admin" and parts[1] in self.actions:
            length = int(request.headers.get("Content-Length") or 0)
            try:
                arguments = json.loads(request.rfile.read(length) or b"{}")
                result = self.actions[parts[1]](arguments)
            except (ValueError, KeyError, TypeError) as error:
                self._reply(request, 400, f"{error}\n".encode())
                return
            self._reply(request, 200, json.dumps({"result": result}).encode(), "application/json")
            return
        self._reply(request, 404, b"404 page not found\n")

    def _logs(
        self,
        request: BaseHTTPRequestHandler,
        namespace: str,
        pod: str,
        container: str,
        query: dict[str, str],
    ) -> None:
        try:
            options = container_logs.LogOptions.from_query(query)
        except ValueError as error:
            self._reply(request, 400, f"{error}\n".encode())
            return
        target = self.locate_log(namespace, pod, container)
        if target is None:
            self._reply(
                request,
                404,
                f'container "{container}" in pod "{pod}" has no log on this node\n'.encode(),
            )
            return
        path, finished = target
        if not options.follow or finished:
            body = container_logs.render(container_logs.parse_records(path.read_bytes()), options)
            self._reply(request, 200, body)
            return
        request.send_response(200)
        request.send_header("Content-Type", "text/plain; charset=utf-8")
        request.send_header("Connection", "close")
        request.end_headers()
        request.close_connection = True

        def done() -> bool:
            current = self.locate_log(namespace, pod, container)
            return current is None or current[1]

        try:
            for chunk in container_logs.follow(path, options, done, self.stopping):
                request.wfile.write(chunk)
                request.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass  # the reader went away
