"""The operator's only door to the Kubernetes API: a few calls, each counted.

Calls are blocking (the official client); the controller runs them in worker threads.
Errors are turned into a few kinds the controller acts on: the object exists already,
a quota refused it, it is gone, the run changed under us, or anything else (retry).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubernetes import client
from kubernetes.client import ApiClient
from kubernetes.client.exceptions import ApiException
from prometheus_client import Counter

from coderun_operator import api_bounds
from coderun_operator.api_access import CODERUN_API, serves_coderuns

# (connect, read) seconds: a call never hangs a reconcile; it fails and is retried.
REQUEST_TIMEOUT = (5, 30)
API_CALLS = Counter(
    "coderun_operator_api_calls_total",
    "Kubernetes API calls made by the operator, by operation and outcome.",
    ["operation", "outcome"],
)


class KubeError(Exception):
    """An API call failed; ``status`` is the HTTP status (0 when none came back)."""

    def __init__(self, operation: str, status: int, reason: str, message: str) -> None:
        super().__init__(f"{operation} failed: {status} {reason}: {message}")
        self.operation = operation
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def already_exists(self) -> bool:
        """The object to create exists already."""
        return self.status == 409 and self.reason == "AlreadyExists"

    @property
    def conflict(self) -> bool:
        """The object changed since we read it (stale resourceVersion or failed precondition)."""
        return self.status == 409 and self.reason != "AlreadyExists"

    @property
    def not_found(self) -> bool:
        """The object is gone."""
        return self.status == 404

    @property
    def quota_exceeded(self) -> bool:
        """A ResourceQuota refused the object: capacity, not failure."""
        return self.status == 403 and "exceeded quota" in self.message

    @property
    def refused(self) -> bool:
        """The API server will never take this object as it is: invalid, or forbidden by policy
        (a LimitRange, Pod Security, missing rights). A full quota is capacity, not refusal."""
        return self.status in (400, 403, 422) and not self.quota_exceeded


def _error(operation: str, error: Exception) -> KubeError:
    if isinstance(error, ApiException):
        reason, message = error.reason or "", ""
        try:
            import json

            body = json.loads(error.body or "{}")
            reason = body.get("reason") or reason
            message = body.get("message") or ""
        except (ValueError, AttributeError):
            message = str(error.body or "")[:500]
        return KubeError(operation, error.status or 0, reason, message)
    return KubeError(operation, 0, type(error).__name__, str(error)[:500])


class RunsApi:
    """CodeRuns and their pods in one namespace."""

    def __init__(self, api_client: ApiClient, namespace: str) -> None:
        self.namespace = namespace
        self._core = client.CoreV1Api(api_client)
        self._custom = client.CustomObjectsApi(api_client)

    def _call(self, operation: str, fn: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            result = fn(*args, **kwargs)
        except Exception as error:
            kube_error = _error(operation, error)
            API_CALLS.labels(operation, str(kube_error.status or "error")).inc()
            raise kube_error from error
        API_CALLS.labels(operation, "ok").inc()
        return result

    def coderun_api_problem(self) -> str | None:
        """Why the operator cannot serve CodeRuns yet (the API is not served), or None."""
        try:
            resources = self._call(
                "discover_coderuns",
                self._custom.get_api_resources,
                api_bounds.API_GROUP,
                api_bounds.API_VERSION,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except KubeError as error:
            if not error.not_found:
                return f"the API server cannot be asked which APIs it serves: {error}"
            resources = None
        if serves_coderuns(resources):
            return None
        return (
            f"the API server does not serve {CODERUN_API}; apply the CRD (crds/coderun.yaml, "
            "in every deploy/ overlay)"
        )

    def create_pod(self, manifest: Mapping[str, Any]) -> dict[str, Any]:
        """Create a pod; returns it as a dict."""
        response = self._call(
            "create_pod",
            self._core.create_namespaced_pod,
            self.namespace,
            manifest,
            _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT,
        )
        return _json(response)

    def stop_pod(self, name: str, deadline_seconds: int) -> None:
        """Lower the pod's activeDeadlineSeconds so the kubelet ends it (the pod stays)."""
        self._call(
            "stop_pod",
            self._core.patch_namespaced_pod,
            name,
            self.namespace,
            {"spec": {"activeDeadlineSeconds": deadline_seconds}},
            _content_type="application/merge-patch+json",
            _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT,
        )

    def read_pod(self, name: str) -> dict[str, Any]:
        """Read a pod as a dict."""
        response = self._call(
            "read_pod",
            self._core.read_namespaced_pod,
            name,
            self.namespace,
            _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT,
        )
        return _json(response)

    def read_pod_log(self, name: str, container: str, limit_bytes: int) -> bytes:
        """The container's log as raw bytes (never decoded here: it is the parser's job)."""
        response = self._call(
            "read_pod_log",
            self._core.read_namespaced_pod_log,
            name,
            self.namespace,
            container=container,
            limit_bytes=limit_bytes,
            _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT,
        )
        return response.data

    def delete_pod(self, name: str, uid: str | None = None) -> None:
        """Delete a pod, only if it is still the one with ``uid``; gone already is fine."""
        body = client.V1DeleteOptions(
            preconditions=client.V1Preconditions(uid=uid) if uid else None
        )
        try:
            self._call(
                "delete_pod",
                self._core.delete_namespaced_pod,
                name,
                self.namespace,
                body=body,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except KubeError as error:
            if not error.not_found:
                raise

    def write_run_status(
        self, name: str, resource_version: str, old: Mapping[str, Any], new: Mapping[str, Any]
    ) -> dict[str, Any]:
        """Replace the run's status in one merge patch, guarded by ``resource_version``."""
        status: dict[str, Any] = {key: None for key in old if key not in new}
        status.update(new)
        patch = {"metadata": {"resourceVersion": resource_version}, "status": status}
        response = self._call(
            "write_run_status",
            self._custom.patch_namespaced_custom_object_status,
            api_bounds.API_GROUP,
            api_bounds.API_VERSION,
            self.namespace,
            api_bounds.PLURAL,
            name,
            patch,
            _content_type="application/merge-patch+json",
            _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT,
        )
        return _json(response)

    def post_warning(self, run: Mapping[str, Any], reason: str, message: str, now: str) -> None:
        """Record a Warning Event on the run, shown by `kubectl describe coderun`."""
        metadata = run["metadata"]
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{metadata['name'][:200]}.", "namespace": self.namespace},
            "involvedObject": {
                "apiVersion": f"{api_bounds.API_GROUP}/{api_bounds.API_VERSION}",
                "kind": api_bounds.KIND,
                "name": metadata["name"],
                "namespace": self.namespace,
                "uid": metadata["uid"],
            },
            "type": "Warning",
            "reason": reason,
            "message": message[:1024],
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "source": {"component": "coderun-operator"},
            "reportingComponent": "coderun-operator",
        }
        self._call(
            "post_event",
            self._core.create_namespaced_event,
            self.namespace,
            event,
            _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT,
        )

    def read_run(self, name: str) -> dict[str, Any]:
        """Read a CodeRun as a dict."""
        response = self._call(
            "read_run",
            self._custom.get_namespaced_custom_object,
            api_bounds.API_GROUP,
            api_bounds.API_VERSION,
            self.namespace,
            api_bounds.PLURAL,
            name,
            _preload_content=False,
            _request_timeout=REQUEST_TIMEOUT,
        )
        return _json(response)

    def delete_run(self, name: str, uid: str) -> None:
        """Delete a finished CodeRun (its pod goes with it by owner reference)."""
        body = client.V1DeleteOptions(preconditions=client.V1Preconditions(uid=uid))
        try:
            self._call(
                "delete_run",
                self._custom.delete_namespaced_custom_object,
                api_bounds.API_GROUP,
                api_bounds.API_VERSION,
                self.namespace,
                api_bounds.PLURAL,
                name,
                body=body,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except KubeError as error:
            if not error.not_found:
                raise


def _json(response: Any) -> dict[str, Any]:
    import json

    return json.loads(response.data)
