"""The web UI's only door to Kubernetes: create, read, cancel and watch CodeRuns.

This is the one module that imports the ``kubernetes`` client. Callers see plain dicts and
three kinds of failure: `NotFound` (no such run), `Unavailable` (the API server is down, slow
or failing; try again later) and `Refused` (the API server said no, with its reason).
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
from collections.abc import Iterator
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from kubernetes.watch.watch import iter_resp_lines

from coderun_operator import api_bounds
from coderun_operator.api_access import (
    CODERUN_API,
    KubeConfigError,
    load_configuration,
    serves_coderuns,
)

log = logging.getLogger(__name__)

FIELD_MANAGER = "coderun-webui"
CREATED_BY_LABEL = {"app.kubernetes.io/created-by": "coderun-webui"}
# (connect, read) seconds for ordinary calls: a user is waiting on each of them.
REQUEST_TIMEOUT = (3.05, 10.0)


class StoreError(Exception):
    """A call to the API server failed; ``message`` is a sentence for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(StoreError):  # noqa: N818 - the kinds are named as callers speak of them
    """The run does not exist (never did, was deleted, or expired)."""


class Unavailable(StoreError):  # noqa: N818 - the kinds are named as callers speak of them
    """The API server could not be reached or failed; trying again later may work."""


class Refused(StoreError):  # noqa: N818 - the kinds are named as callers speak of them
    """The API server refused the request; ``status`` is its HTTP status (403, 409, 422...)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Gone(StoreError):  # noqa: N818 - the kinds are named as callers speak of them
    """A watch's resourceVersion is too old (HTTP 410): list again and watch from there."""


class ConnectionSetupError(Exception):
    """No way to reach a Kubernetes API server was configured."""


def connect(kubeconfig: str | None = None, pool_size: int = 16) -> ApiClient:
    """An API client: the given kubeconfig, else in-cluster config, else ``$KUBECONFIG``.

    The kubernetes client itself reads ``KUBECONFIG`` (or ``~/.kube/config``). ``pool_size``
    is how many connections to keep open: one per server thread that may call at once.
    """
    try:
        configuration = load_configuration(kubeconfig)
    except KubeConfigError as error:
        raise ConnectionSetupError(str(error)) from None
    configuration.connection_pool_maxsize = pool_size
    return ApiClient(configuration)


def _server_message(error: ApiException) -> str:
    try:
        body = json.loads(error.body or "{}")
    except ValueError:
        return str(error.reason or "")
    message = body.get("message") if isinstance(body, dict) else None
    return str(message or error.reason or "")


def _translate(error: Exception, what: str) -> StoreError:
    """Turns a client exception into one of the few kinds the web UI acts on."""
    if isinstance(error, ApiException):
        status = error.status or 0
        message = _server_message(error)
        if status == 404:
            return NotFound(f"{what} does not exist; it may have expired or been deleted.")
        if status == 410:
            return Gone(message or "The watch is too old.")
        if status in (400, 403, 409, 422):
            return Refused(status, message or f"The API server refused the request ({status}).")
        log.warning("API server answered %s for %s: %s", status, what, message)
        return Unavailable(f"The cluster's API server answered {status}: {message}".strip(": "))
    log.warning("API server unreachable for %s: %s", what, error)
    return Unavailable("The cluster's API server cannot be reached.")


# Everything a call can raise besides ApiException: refused or reset connections, timeouts,
# TLS failures (urllib3 wraps most of them in MaxRetryError or ProtocolError).
_TRANSPORT_ERRORS = (urllib3.exceptions.HTTPError, OSError, ValueError)


class RunsStore:
    """CodeRuns in one namespace."""

    def __init__(self, api_client: ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self.api_client = api_client
        self._custom = client.CustomObjectsApi(api_client)

    def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
        try:
            return getattr(self._custom, method)(
                api_bounds.API_GROUP,
                api_bounds.API_VERSION,
                *args,
                **kwargs,
            )
        except ApiException as error:
            raise _translate(error, what) from None
        except _TRANSPORT_ERRORS as error:
            raise _translate(error, what) from None

    def create(self, name: str, spec: dict[str, Any]) -> dict[str, Any]:
        """Creates the CodeRun ``name`` with ``spec``; returns the stored object."""
        body = {
            "apiVersion": f"{api_bounds.API_GROUP}/{api_bounds.API_VERSION}",
            "kind": api_bounds.KIND,
            "metadata": {"name": name, "labels": dict(CREATED_BY_LABEL)},
            "spec": spec,
        }
        try:
            return self._call(
                "The run",
                "create_namespaced_custom_object",
                self.namespace,
                api_bounds.PLURAL,
                body,
                field_manager=FIELD_MANAGER,
            )
        except NotFound:
            # Nothing to find on create: the namespace (or the CRD) is missing.
            raise Unavailable(
                f"The runs namespace {self.namespace!r} or the CodeRun API does not exist."
            ) from None

    def get(self, name: str) -> dict[str, Any]:
        """The CodeRun ``name``."""
        return self._call(
            "The run", "get_namespaced_custom_object", self.namespace, api_bounds.PLURAL, name
        )

    def cancel(self, name: str) -> dict[str, Any]:
        """Asks the operator to stop the run (``spec.cancel: true``, a JSON merge patch)."""
        return self._call(
            "The run",
            "patch_namespaced_custom_object",
            self.namespace,
            api_bounds.PLURAL,
            name,
            {"spec": {"cancel": True}},
            field_manager=FIELD_MANAGER,
            _content_type="application/merge-patch+json",
        )

    def check_ready(self) -> None:
        """Raises `Unavailable` unless the API server answers and serves the CodeRun API.

        Uses discovery (GET /apis/coderun.dev/v1alpha1), which needs no cluster-wide rights.
        """
        resources = self._call("The CodeRun API", "get_api_resources")
        if not serves_coderuns(resources):
            raise Unavailable(f"The API server does not serve {CODERUN_API}; is the CRD installed?")

    def current_resource_version(self) -> str:
        """The namespace's current resourceVersion for CodeRuns, to start a watch from.

        Lists with ``limit=1``: only the version is needed, not every run and its output.
        """
        listing = self._call(
            "The run list",
            "list_namespaced_custom_object",
            self.namespace,
            api_bounds.PLURAL,
            limit=1,
        )
        return str(((listing or {}).get("metadata") or {}).get("resourceVersion") or "")

    def watch(self, resource_version: str, timeout_seconds: int) -> RunEvents:
        """Starts watching CodeRuns after ``resource_version``; the server ends it in time."""
        response = self._call(
            "The run watch",
            "list_namespaced_custom_object",
            self.namespace,
            api_bounds.PLURAL,
            watch=True,
            resource_version=resource_version or None,
            allow_watch_bookmarks=True,
            timeout_seconds=timeout_seconds,
            _preload_content=False,
            # The read timeout is a safety net for a silently dead connection.
            _request_timeout=(REQUEST_TIMEOUT[0], timeout_seconds + 30),
        )
        return RunEvents(response)


class RunEvents:
    """One open watch: iterate for (type, object) pairs; `close` ends it from another thread."""

    def __init__(self, response: Any) -> None:
        self._response = response
        self._closed = False

    def __iter__(self) -> Iterator[tuple[str, dict[str, Any]]]:
        try:
            for line in iter_resp_lines(self._response):
                if not line.strip():
                    continue
                event = json.loads(line)
                kind, obj = event.get("type"), event.get("object") or {}
                if kind == "ERROR":
                    code = obj.get("code")
                    message = str(obj.get("message") or "")
                    if code == 410:
                        raise Gone(message or "The watch is too old.")
                    raise Unavailable(f"The watch failed ({code}): {message}")
                yield str(kind), obj
        except _TRANSPORT_ERRORS as error:
            if self._closed:
                return  # closed on purpose: the broken connection is expected
            if isinstance(error, json.JSONDecodeError):
                raise Unavailable("The watch sent something that is not JSON.") from None
            raise _translate(error, "The run watch") from None
        finally:
            self.close()

    def close(self) -> None:
        """Ends the watch; safe to call more than once and from another thread."""
        self._closed = True
        # Closing alone does not wake a thread blocked reading the socket; shutting the
        # socket down does.
        sock = getattr(getattr(self._response, "connection", None), "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):
            self._response.close()
            self._response.release_conn()
