"""A small JSON client for the Kubernetes API, plus a list-and-watch cache (an informer).

The kubeconfig is loaded by the official `kubernetes` client (server, CA, client certificate,
bearer token); requests are plain JSON over its connection pool, so subresources such as
`pods/binding` and `pods/status` take and return dicts without model classes in the way.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import urllib3
from kubernetes import client
from kubernetes import config as kube_config

log = logging.getLogger(__name__)
Obj = dict[str, Any]
MERGE_PATCH = "application/merge-patch+json"


class ApiError(Exception):
    """A non-2xx answer; `code` is the HTTP status, `body` the Status object if any."""

    def __init__(self, code: int, body: Any) -> None:
        self.code = code
        self.body = body
        message = body.get("message") if isinstance(body, dict) else str(body)[:300]
        super().__init__(f"HTTP {code}: {message}")


class KubeClient:
    """JSON requests to the API server named by a kubeconfig."""

    def __init__(self, kubeconfig: str, timeout: float = 30.0, connections: int = 64) -> None:
        configuration = client.Configuration()
        kube_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        # One connection per busy thread (watches, pod workers) instead of churning a few.
        configuration.connection_pool_maxsize = connections
        self._api = client.ApiClient(configuration)
        self.configuration = configuration
        self.host = self.configuration.host.rstrip("/")
        self.timeout = timeout
        self._pool = self._api.rest_client.pool_manager

    @property
    def token(self) -> str:
        """The bearer token this client presents (empty for certificate-only kubeconfigs)."""
        value = self._auth_headers().get("authorization", "")
        return value.removeprefix("Bearer ").strip()

    def _auth_headers(self) -> dict[str, str]:
        hook = getattr(self.configuration, "refresh_api_key_hook", None)
        if hook is not None:
            hook(self.configuration)
        headers = {}
        for setting in self.configuration.auth_settings().values():
            if setting.get("in") == "header" and setting.get("value"):
                headers[setting["key"].lower()] = setting["value"]
        return headers

    def _open(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None,
        body: Any,
        *,
        content_type: str,
        timeout: Any,
        stream: bool,
    ) -> urllib3.BaseHTTPResponse:
        url = self.host + path
        if query:
            url += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        headers = {"Accept": "application/json", **self._auth_headers()}
        data = None
        if body is not None:
            headers["Content-Type"] = content_type
            data = json.dumps(body).encode()
        return self._pool.request(
            method,
            url,
            body=data,
            headers=headers,
            timeout=timeout,
            preload_content=not stream,
            retries=False,
        )

    def request(
        self,
        method: str,
        path: str,
        query: dict[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Obj:
        """One request; the decoded JSON answer, or ApiError."""
        response = self._open(
            method,
            path,
            query,
            body,
            content_type=content_type,
            timeout=urllib3.Timeout(total=self.timeout),
            stream=False,
        )
        data = response.data
        try:
            decoded = json.loads(data) if data else {}
        except ValueError:
            decoded = data.decode(errors="replace")
        if response.status >= 300:
            raise ApiError(response.status, decoded)
        return decoded

    def get(self, path: str, query: dict[str, Any] | None = None) -> Obj:
        """GET `path`."""
        return self.request("GET", path, query)

    def create(self, path: str, body: Obj) -> Obj:
        """POST `body` to `path`."""
        return self.request("POST", path, body=body)

    def merge_patch(self, path: str, body: Obj) -> Obj:
        """PATCH with a JSON merge patch."""
        return self.request("PATCH", path, body=body, content_type=MERGE_PATCH)

    def delete(self, path: str, body: Obj | None = None) -> Obj:
        """DELETE, optionally with DeleteOptions."""
        return self.request("DELETE", path, body=body)

    def watch(
        self, path: str, query: dict[str, Any], stop: threading.Event, timeout_seconds: int = 60
    ) -> Iterator[Obj]:
        """Watch events (dicts with `type` and `object`) until the server ends the stream."""
        query = dict(
            query, watch="true", timeoutSeconds=timeout_seconds, allowWatchBookmarks="true"
        )
        response = self._open(
            "GET",
            path,
            query,
            None,
            content_type="",
            timeout=urllib3.Timeout(connect=10, read=timeout_seconds + 15),
            stream=True,
        )
        try:
            if response.status >= 300:
                data = response.read()
                try:
                    raise ApiError(response.status, json.loads(data))
                except ValueError:
                    raise ApiError(response.status, data.decode(errors="replace")) from None
            buffer = b""
            for chunk in response.stream(65536, decode_content=True):
                if stop.is_set():
                    return
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    if line.strip():
                        yield json.loads(line)
        finally:
            response.release_conn()


Handler = Callable[[str, Obj], None]


class Informer:
    """Keeps an up-to-date copy of one resource collection and tells handlers about changes.

    Handlers get ("ADDED" | "MODIFIED" | "DELETED", object); after every (re)list they also get
    ("SYNC", {}) so they can reconcile against the whole cache.
    """

    def __init__(
        self, client: KubeClient, path: str, name: str, query: dict[str, Any] | None = None
    ) -> None:
        self.client = client
        self.path = path
        self.name = name
        self.query = query or {}
        self.handlers: list[Handler] = []
        self._cache: dict[tuple[str, str], Obj] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.synced = threading.Event()

    def items(self) -> list[Obj]:
        """A snapshot of the cached objects."""
        with self._lock:
            return list(self._cache.values())

    def get(self, namespace: str, name: str) -> Obj | None:
        """The cached object, if any."""
        with self._lock:
            return self._cache.get((namespace, name))

    def start(self) -> None:
        """Start listing and watching in a daemon thread."""
        self._thread = threading.Thread(target=self._run, name=f"informer-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the current watch request ends (at most its timeout)."""
        self._stop.set()

    def _notify(self, kind: str, obj: Obj) -> None:
        for handler in self.handlers:
            try:
                handler(kind, obj)
            except Exception:  # one failing handler must not stop the others or the watch
                log.exception("%s handler failed on %s", self.name, kind)

    @staticmethod
    def _key(obj: Obj) -> tuple[str, str]:
        meta = obj.get("metadata") or {}
        return meta.get("namespace", ""), meta.get("name", "")

    def _relist(self) -> str:
        listed = self.client.get(self.path, self.query)
        fresh = {self._key(o): o for o in listed.get("items") or []}
        with self._lock:
            gone = [o for k, o in self._cache.items() if k not in fresh]
            self._cache = fresh
        for obj in gone:
            self._notify("DELETED", obj)
        for obj in fresh.values():
            self._notify("MODIFIED", obj)
        self.synced.set()
        self._notify("SYNC", {})
        return listed.get("metadata", {}).get("resourceVersion", "")

    def _run(self) -> None:
        version = ""
        delay = 0.2
        while not self._stop.is_set():
            try:
                if not version:
                    version = self._relist()
                for event in self.client.watch(
                    self.path, dict(self.query, resourceVersion=version), self._stop
                ):
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        version = ""  # 410 Gone and friends: start over from a list
                        break
                    version = (obj.get("metadata") or {}).get("resourceVersion") or version
                    if kind == "BOOKMARK":
                        continue
                    with self._lock:
                        if kind == "DELETED":
                            self._cache.pop(self._key(obj), None)
                        else:
                            self._cache[self._key(obj)] = obj
                    self._notify(kind, obj)
                delay = 0.2
            except Exception as error:  # network trouble: back off, then list again
                if self._stop.is_set():
                    return
                log.debug("%s watch failed: %s", self.name, error)
                version = ""
                self._stop.wait(delay)
                delay = min(delay * 2, 5.0)
