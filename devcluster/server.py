"""The HTTP front: authentication, authorization, audit, faults, content negotiation and
routing onto `api.ApiServer`; plus `DevCluster`, which starts everything in-process or as
`python -m devcluster`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from devcluster import discovery, protobuf, tables, watch
from devcluster.api import ApiServer, Call, Result, clone, now_rfc3339
from devcluster.audit import AuditLog
from devcluster.auth import User
from devcluster.errors import ApiError, bad_request, forbidden, not_found, unauthorized
from devcluster.faults import FaultRule, Faults
from devcluster.garbage_collection import GarbageCollector
from devcluster.kubeconfig import write_kubeconfig
from devcluster.openapi import OpenApi
from devcluster.rbac import Authorizer, forbidden_message
from devcluster.requestinfo import RequestInfo, parse
from devcluster.store import Store
from devcluster.tls import Certificates, make_certificates

log = logging.getLogger(__name__)
KUBE_VERSION = {
    "major": "1",
    "minor": "37",
    "gitVersion": "v1.37.0-devcluster",
    "gitCommit": "devcluster",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.25",
    "compiler": "gc",
    "platform": "linux/amd64",
    "emulationMajor": "1",
    "emulationMinor": "37",
    "minCompatibilityMajor": "1",
    "minCompatibilityMinor": "36",
}
_HEALTH = {"/healthz", "/livez", "/readyz", "/version", "/version/"}
_ADMIN_PREFIX = "/devcluster/v1/"
_JSON = "application/json"
_AUDITED = web.RequestKey("devcluster_audited", bool)


def _dumps(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _status_response(error: ApiError) -> web.Response:
    response = web.Response(status=error.code, body=_dumps(error.status()), content_type=_JSON)
    for key, value in error.headers.items():
        response.headers[key] = value
    return response


def _table_mode(accept: str, query: Mapping[str, str]) -> str | None:
    """`Metadata`/`Object`/`None` if the client asked for a Table, else None."""
    for part in accept.split(","):
        if "as=Table" in part and "g=meta.k8s.io" in part:
            return query.get("includeObject") or "Metadata"
    return None


def _partial_metadata(accept: str) -> bool:
    first = accept.split(",", maxsplit=1)[0]
    return "as=PartialObjectMetadata" in first and "g=meta.k8s.io" in first


class HttpFront:
    """aiohttp handlers around one `ApiServer`."""

    def __init__(
        self, api: ApiServer, audit: AuditLog, faults: Faults, bookmark_interval: float = 1.0
    ) -> None:
        self.api = api
        self.audit = audit
        self.faults = faults
        self.authorizer = Authorizer(api.store)
        self.openapi = OpenApi(api.registry)
        self.bookmark_interval = bookmark_interval
        self.address = "127.0.0.1:0"
        self.watch_users: dict[int, str] = {}

    # -- entry point -------------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        query = {k: v for k, v in request.query.items()}
        if path in _HEALTH and request.method in ("GET", "HEAD"):
            if path.startswith("/version"):
                return web.Response(body=_dumps(KUBE_VERSION), content_type=_JSON)
            return web.Response(text="ok")
        user = self.api.authenticator.authenticate(request.headers.get("Authorization"))
        if user is None:
            return _status_response(unauthorized())
        if path.startswith(_ADMIN_PREFIX):
            return await self._admin(request, user, path[len(_ADMIN_PREFIX) :])
        info = parse(request.method, path, query)
        code = 500
        decision = self.authorizer.authorize(user, info)
        try:
            if not decision.allowed:
                name = info.name if info.verb not in ("list", "watch", "create") else ""
                raise (
                    forbidden(
                        info.resource_path if info.is_resource else "",
                        info.group,
                        name,
                        forbidden_message(user, info),
                    )
                    if info.is_resource
                    else ApiError(403, "Forbidden", f"forbidden: {forbidden_message(user, info)}")
                )
            injected = self.faults.check(user.name, user.is_admin, info)
            if injected is not None:
                raise injected
            response = await self._route(request, info, query, user)
            code = response.status
            return response
        except ApiError as error:
            code = error.code
            return _status_response(error)
        except Exception as exc:  # a bug must answer as a Status, not a dropped connection
            log.exception("internal error on %s %s", request.method, path)
            code = 500
            return _status_response(
                ApiError(500, "InternalError", f"Internal error occurred: {exc}")
            )
        finally:
            if not request.get(_AUDITED):
                self._audit(request, user, info, decision, code)

    def _audit(
        self, request: web.Request, user: User, info: RequestInfo, decision: Any, code: int
    ) -> None:
        """One entry per request; streams are recorded once their 200 has gone out."""
        request[_AUDITED] = True
        self.audit.record(
            {
                "user": user.name,
                "groups": list(user.groups),
                "verb": info.verb,
                "apiGroup": info.group,
                "apiVersion": info.version,
                "resource": info.resource,
                "subresource": info.subresource,
                "namespace": info.namespace,
                "name": info.name,
                "path": request.path if not info.is_resource else "",
                "code": code,
                "allowed": decision.allowed,
                "authorization": decision.as_dict(),
            }
        )

    # -- routing ----------------------------------------------------------------------------------
    async def _route(
        self, request: web.Request, info: RequestInfo, query: dict[str, str], user: User
    ) -> web.StreamResponse:
        path = request.path.rstrip("/")
        accept = request.headers.get("Accept", "")
        registry = self.api.registry
        if path.startswith("/openapi"):
            return self._openapi(path, accept)
        if not info.is_resource:
            if path == "/api":
                if discovery.wants_aggregated(accept):
                    return self._aggregated(True)
                return self._json(discovery.api_versions(self.address))
            if path == "/apis":
                if discovery.wants_aggregated(accept):
                    return self._aggregated(False)
                return self._json(discovery.api_group_list(registry))
            if info.is_discovery:
                found = discovery.resource_list(registry, info.group, info.version)
                if found is not None:
                    return self._json(found)
            elif path.startswith("/apis/") and path.count("/") == 2:
                group = discovery.api_group(registry, path.split("/")[2])
                if group is not None:
                    return self._json(group)
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        resource = registry.get(info.group, info.version, info.resource)
        if resource is None or (info.subresource and info.subresource not in resource.subresources):
            raise ApiError(404, "NotFound", "the server could not find the requested resource", {})
        if (
            resource.namespaced
            and not info.namespace
            and info.verb not in ("list", "watch", "deletecollection")
        ):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        body = await request.read() if request.can_read_body else b""
        content_type = request.headers.get("Content-Type", _JSON)
        if body and content_type.startswith(protobuf.CONTENT_TYPE):
            # kubectl's typed commands send protobuf and do not fall back to JSON.
            body = json.dumps(protobuf.decode_object(body)).encode()
            content_type = _JSON
        elif body and "cbor" in content_type.split(";")[0]:
            raise ApiError(
                415,
                "UnsupportedMediaType",
                "the body of the request was in an unknown format - accepted media "
                "types include: application/json, application/yaml",
            )
        call = Call(info, resource, query, body, content_type, user)
        verb = info.verb
        not_allowed = ApiError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )
        if info.subresource and verb not in discovery.SUBRESOURCE_VERBS.get(
            info.subresource, ["get"]
        ):
            raise not_allowed
        if verb in ("update", "patch") and not info.name:
            raise not_allowed
        if verb == "watch":
            return await self._watch(request, call, accept)
        if info.subresource == "log":
            return await self._pod_log(request, call)
        handler = {
            "get": self.api.get,
            "list": self.api.list,
            "create": self.api.create,
            "update": self.api.update,
            "patch": self.api.patch,
            "delete": self.api.delete,
            "deletecollection": self.api.delete_collection,
        }.get(verb)
        if handler is None or (verb not in resource.verbs and not info.subresource):
            raise not_allowed
        result = handler(call)
        return self._result(result, call, accept)

    def _result(self, result: Result, call: Call, accept: str) -> web.Response:
        body = result.body
        table_mode = _table_mode(accept, call.query)
        is_object = (
            isinstance(body, dict)
            and body.get("kind") not in ("Status", "Scale")
            and result.objects is not None
        )
        if table_mode is not None and is_object:
            objects = [self.api.output(call.resource, o) for o in result.objects or []]
            body = tables.table(call.resource, objects, result.list_meta, table_mode)
        elif _partial_metadata(accept) and is_object:
            if result.list_meta is not None:
                body = {
                    "kind": "PartialObjectMetadataList",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": result.list_meta,
                    "items": [tables.partial_metadata(o) for o in result.objects or []],
                }
            else:
                body = tables.partial_metadata(body)
        response = web.Response(status=result.status, body=_dumps(body), content_type=_JSON)
        for key, value in result.headers.items():
            response.headers[key] = value
        for warning in dict.fromkeys(call.warnings):
            escaped = warning.replace("\\", "\\\\").replace('"', '\\"')
            response.headers.add("Warning", f'299 - "{escaped}"')
        return response

    @staticmethod
    def _json(body: Any, status: int = 200) -> web.Response:
        return web.Response(status=status, body=_dumps(body), content_type=_JSON)

    def _aggregated(self, legacy: bool) -> web.Response:
        response = web.Response(body=_dumps(discovery.aggregated(self.api.registry, legacy)))
        response.headers["Content-Type"] = discovery.AGGREGATED_TYPE
        return response

    def _openapi(self, path: str, accept: str) -> web.Response:
        if path == "/openapi/v3":
            return self._json(self.openapi.index())
        if path.startswith("/openapi/v3/"):
            try:
                document = self.openapi.document(path[len("/openapi/v3/") :])
            except KeyError:
                raise ApiError(
                    404, "NotFound", "the server could not find the requested resource"
                ) from None
            response = web.Response(body=document, content_type=_JSON)
            response.headers["Cache-Control"] = "public, immutable"
            return response
        if path == "/openapi/v2":
            if "protobuf" in accept and "json" not in accept and "*/*" not in accept:
                raise ApiError(406, "NotAcceptable", "only application/json is served")
            return web.Response(body=self.openapi.v2(), content_type=_JSON)
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    async def _watch(self, request: web.Request, call: Call, accept: str) -> web.StreamResponse:
        info = call.info
        table_mode = _table_mode(accept, call.query)
        # Validate selectors before the 200 goes out, so errors are proper Status responses.
        from devcluster.selectors import parse_field_selector, parse_label_selector

        parse_label_selector(call.query.get("labelSelector"))
        parse_field_selector(call.query.get("fieldSelector"), call.resource.field_labels)
        response = web.StreamResponse(status=200)
        response.content_type = _JSON
        response.headers["Transfer-Encoding"] = "chunked"
        await response.prepare(request)
        if call.user is not None:
            self._audit(request, call.user, info, self.authorizer.authorize(call.user, info), 200)

        async def send(event: dict[str, Any]) -> None:
            await response.write(_dumps(event) + b"\n")

        name = info.name if info.name and not call.query.get("fieldSelector") else ""
        user = call.user.name if call.user else ""

        def remember(subscriber: Any) -> None:
            subscriber.user = user

        try:
            await watch.stream(
                self.api,
                call.resource,
                info.namespace if call.resource.namespaced else "",
                name,
                call.query,
                send,
                table_mode=table_mode,
                bookmark_interval=self.bookmark_interval,
                on_subscribe=remember,
            )
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        except ApiError as error:
            await send({"type": "ERROR", "object": error.status()})
        return response

    async def _pod_log(self, request: web.Request, call: Call) -> web.StreamResponse:
        info = call.info
        pod = self.api.store.get(("", "pods"), info.namespace, info.name)
        if pod is None:
            raise not_found("pods", "", info.name)
        containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or []]
        container = call.query.get("container") or ""
        if not container:
            if len(containers) != 1:
                raise bad_request(
                    f"a container name must be specified for pod {info.name}, "
                    f"choose one of: [{' '.join(containers)}]"
                )
            container = containers[0]
        elif container not in containers:
            raise bad_request(f"container {container} is not valid for pod {info.name}")
        agent = self.api.node_agent
        content: Any = None
        if agent is not None:
            try:
                content = agent.pod_log(info.namespace, info.name, container, call.query)
            except NotImplementedError:
                content = None
        if content is None:
            proxied = await self._proxy_log(request, pod, container, call.query)
            if proxied is not None:
                return proxied
            raise bad_request(
                f'container "{container}" in pod "{info.name}" is waiting to '
                f"start: ContainerCreating"
            )
        if isinstance(content, bytes | str):
            data = content.encode() if isinstance(content, str) else content
            return web.Response(body=data, content_type="text/plain")
        response = web.StreamResponse(status=200)
        response.content_type = "text/plain"
        await response.prepare(request)
        async for chunk in content:
            await response.write(chunk)
        return response

    async def _proxy_log(
        self, request: web.Request, pod: dict[str, Any], container: str, query: Mapping[str, str]
    ) -> web.StreamResponse | None:
        """Proxy pods/log to the node agent, as the real server proxies to the kubelet.

        The node's `status.daemonEndpoints.kubeletEndpoint.Port` and InternalIP name the
        agent; devcluster asks `http://<ip>:<port>/containerLogs/<ns>/<pod>/<container>`
        with the log options passed through. None when no agent serves that node.
        """
        import aiohttp

        node_name = (pod.get("spec") or {}).get("nodeName")
        node = self.api.store.get(("", "nodes"), "", node_name) if node_name else None
        status = (node or {}).get("status") or {}
        port = ((status.get("daemonEndpoints") or {}).get("kubeletEndpoint") or {}).get("Port")
        if not port:
            return None
        address = next(
            (a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"),
            "127.0.0.1",
        )
        meta = pod["metadata"]
        url = (
            f"http://{address}:{port}/containerLogs/{meta['namespace']}/{meta['name']}/{container}"
        )
        params = {
            k: v
            for k, v in query.items()
            if k
            in (
                "follow",
                "tailLines",
                "sinceSeconds",
                "sinceTime",
                "timestamps",
                "previous",
                "limitBytes",
            )
        }
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
        try:
            async with (
                aiohttp.ClientSession(timeout=timeout) as session,
                session.get(url, params=params) as upstream,
            ):
                if upstream.status != 200:
                    text = (await upstream.text())[:1000]
                    raise ApiError(
                        upstream.status if upstream.status < 500 else 500,
                        "BadRequest" if upstream.status == 400 else "InternalError",
                        text or f"node agent answered {upstream.status}",
                    )
                response = web.StreamResponse(status=200)
                response.content_type = "text/plain"
                await response.prepare(request)
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                return response
        except aiohttp.ClientError as error:
            raise ApiError(
                500, "InternalError", f'Get "{url}": the node agent did not answer: {error}'
            ) from None

    # -- admin endpoints (faults, audit, tokens) --------------------------------------------------
    async def _admin(self, request: web.Request, user: User, rest: str) -> web.Response:
        if not user.is_admin:
            return _status_response(
                ApiError(403, "Forbidden", "devcluster admin endpoints need system:masters")
            )
        body = await request.json() if request.can_read_body else {}
        if rest == "faults":
            if request.method == "GET":
                return self._json(
                    {
                        "rules": [vars(r) for r in self.faults.rules()],
                        "actions": self.faults.action_names(),
                    }
                )
            if request.method == "DELETE":
                self.faults.clear()
                return self._json({"rules": []})
            if "rules" in body:  # a POST with only dropWatches keeps the active rules
                try:
                    self.faults.set_rules([FaultRule(**r) for r in body["rules"] or []])
                except TypeError as error:
                    return _status_response(bad_request(f"invalid fault rule: {error}"))
            rules = self.faults.rules()
            dropped = 0
            drop = body.get("dropWatches")
            if drop is not None:
                users = set(drop.get("users") or [])
                dropped = self.api.store.close_watches(
                    lambda s: not users or getattr(s, "user", "") in users
                )
            return self._json({"rules": [vars(r) for r in rules], "droppedWatches": dropped})
        if rest.startswith("faults/actions/") and request.method == "POST":
            name = rest[len("faults/actions/") :]
            try:
                result = self.faults.run_action(name, body)
            except KeyError:
                return _status_response(not_found("actions", "devcluster", name))
            return self._json({"result": result})
        if rest == "audit":
            return self._json({"entries": self.audit.entries(request.query.get("user"))})
        if rest == "tokens" and request.method == "POST":
            if body.get("serviceAccount"):
                namespace, name = body["serviceAccount"].split("/", 1)
                sa = self.api.store.get(("", "serviceaccounts"), namespace, name)
                if sa is None:
                    return _status_response(not_found("serviceaccounts", "", name))
                token = self.api.authenticator.issue_service_account_token(
                    namespace, name, sa["metadata"]["uid"]
                )
            else:
                token = self.api.authenticator.add_user_token(
                    body["user"], body.get("groups") or []
                )
            return self._json({"token": token})
        return _status_response(ApiError(404, "NotFound", f"no admin endpoint {rest!r}"))


def _node(name: str) -> dict[str, Any]:
    memory_kib = 0
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            memory_kib = int(meminfo.readline().split()[1])
    except (OSError, ValueError, IndexError):
        memory_kib = 8 * 1024 * 1024
    capacity = {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{memory_kib}Ki",
        "pods": "110",
        "ephemeral-storage": "10Gi",
    }
    now = now_rfc3339()
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "beta.kubernetes.io/os": "linux",
                "beta.kubernetes.io/arch": "amd64",
                "devcluster.coderun.dev/node": "true",
            },
        },
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "devcluster node is ready",
                    "lastHeartbeatTime": now,
                    "lastTransitionTime": now,
                }
            ],
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "nodeInfo": {
                "kubeletVersion": "v1.37.0-devcluster",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "containerRuntimeVersion": "devcluster://1",
                "kernelVersion": platform.release(),
                "osImage": "devcluster",
                "kubeProxyVersion": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
            },
        },
    }


class DevCluster:
    """One devcluster API server: start it in a thread (`start()`) or await `serve()`."""

    def __init__(
        self,
        *,
        port: int = 0,
        kubeconfig: str | None = None,
        nodes: int = 1,
        namespace: str = "default",
        audit_log: str | None = None,
        admin_token: str | None = None,
        event_window: int = 10000,
        bookmark_interval: float = 1.0,
        host: str = "127.0.0.1",
    ) -> None:
        from devcluster.auth import Authenticator

        self.host = host
        self.requested_port = port
        self.kubeconfig_path = kubeconfig
        self.namespace = namespace
        self.store = Store(window=event_window)
        self.api = ApiServer(self.store, authenticator=Authenticator(admin_token))
        self.audit = AuditLog(audit_log)
        self.faults = Faults()
        self.front = HttpFront(self.api, self.audit, self.faults, bookmark_interval)
        self.gc = GarbageCollector(self.api)
        self.node_names = [f"devcluster-node-{i + 1}" for i in range(nodes)]
        self.faults.register_action("node-agent", self._node_agent_faults)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.certificates: Certificates | None = None
        self.started_at = 0.0
        self.ready_seconds = 0.0

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def admin_token(self) -> str:
        return self.api.authenticator.admin_token

    AGENT_FAULTS = ("kube-system", "devcluster-node-faults")

    def _node_agent_faults(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Seam for node-level faults: a ConfigMap an out-of-process node agent watches.

        `POST /devcluster/v1/faults/actions/node-agent {"data": {"paused": "true"}}` replaces
        its data (strings only); what the keys mean is the node agent's contract.
        """
        namespace, name = self.AGENT_FAULTS
        data = {str(k): str(v) for k, v in (arguments.get("data") or {}).items()}
        if self.store.get(("", "configmaps"), namespace, name) is None:
            self.api.system_create(
                ("", "configmaps"),
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": name, "namespace": namespace},
                    "data": data,
                },
            )
        else:
            self.api.system_mutate(
                ("", "configmaps"), namespace, name, lambda obj: obj.__setitem__("data", data)
            )
        return {"configMap": f"{namespace}/{name}", "data": data}

    def _bootstrap(self) -> None:
        for name in ("default", "kube-system", "kube-public", "kube-node-lease", self.namespace):
            self.api.system_create(
                ("", "namespaces"),
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
            )
        for name in self.node_names:
            node = _node(name)
            status = node.pop("status")
            self.api.system_create(("", "nodes"), node)
            self.api.system_mutate(
                ("", "nodes"), "", name, lambda n, s=status: n.__setitem__("status", s), "status"
            )
        self.api.system_create(
            ("", "services"),
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "clusterIP": "10.96.0.1",
                    "ports": [
                        {"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.port}
                    ],
                },
            },
        )

    async def serve(self, ready_callback: Any = None) -> None:
        """Run until `stop()` (or cancellation)."""
        self.started_at = time.monotonic()
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.front.handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.requested_port))
        self.port = sock.getsockname()[1]
        self.front.address = f"{self.host}:{self.port}"
        self.certificates = make_certificates()
        site = web.SockSite(runner, sock, ssl_context=self.certificates.server_context())
        await site.start()
        self._bootstrap()
        if self.kubeconfig_path:
            self.write_kubeconfig(self.kubeconfig_path)
        gc_task = asyncio.create_task(self.gc.run())
        self.ready_seconds = time.monotonic() - self.started_at
        self._ready.set()
        if ready_callback is not None:
            ready_callback(self)
        try:
            await self._stopping.wait()
        finally:
            gc_task.cancel()
            if self.certificates is not None:
                import shutil

                shutil.rmtree(self.certificates.directory, ignore_errors=True)
            self.store.close_watches()
            await runner.cleanup()
            self.audit.close()

    def start(self, timeout: float = 30.0) -> DevCluster:
        """Start in a background thread and wait until it answers."""

        def run() -> None:
            try:
                asyncio.run(self.serve())
            except BaseException as exc:  # surfaced to the caller of start()
                self._error = exc
                self._ready.set()

        self._thread = threading.Thread(target=run, name="devcluster", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("devcluster did not become ready")
        if self._error is not None:
            raise RuntimeError(f"devcluster failed to start: {self._error}") from self._error
        return self

    def stop_soon(self) -> None:
        """Ask a running server to stop (from its own loop, e.g. a signal handler)."""
        if self._stopping is not None:
            self._stopping.set()

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)

    def call(self, function: Any, *args: Any) -> Any:
        """Run `function(*args)` on the server's loop thread and return its result."""
        if self._loop is None:
            raise RuntimeError("devcluster is not running")

        async def invoke() -> Any:
            return function(*args)

        return asyncio.run_coroutine_threadsafe(invoke(), self._loop).result(30)

    # -- identities for tests and `make run` ------------------------------------------------------
    def add_user(self, name: str, groups: list[str] | None = None) -> str:
        """A static bearer token for a user."""
        return self.api.authenticator.add_user_token(name, groups or [])

    def service_account_token(self, namespace: str, name: str, create: bool = True) -> str:
        """A token for a service account (created first if missing and `create`)."""

        def issue() -> str:
            sa = self.store.get(("", "serviceaccounts"), namespace, name)
            if sa is None:
                if not create:
                    raise not_found("serviceaccounts", "", name)
                sa = self.api.system_create(
                    ("", "serviceaccounts"),
                    {
                        "apiVersion": "v1",
                        "kind": "ServiceAccount",
                        "metadata": {"name": name, "namespace": namespace},
                    },
                ) or self.store.get(("", "serviceaccounts"), namespace, name)
            assert sa is not None
            return self.api.authenticator.issue_service_account_token(
                namespace, name, sa["metadata"]["uid"]
            )

        return self.call(issue)

    def write_kubeconfig(
        self,
        path: str,
        token: str | None = None,
        namespace: str | None = None,
        user: str = "devcluster-admin",
    ) -> str:
        """A kubeconfig for any identity (default: the admin) against this cluster."""
        ca_data = self.certificates.ca_data() if self.certificates else None
        return write_kubeconfig(
            path,
            self.url,
            token or self.admin_token,
            namespace=namespace or self.namespace,
            user=user,
            ca_data=ca_data,
        )

    def snapshot(self, group: str, plural: str, namespace: str | None = None) -> list[Any]:
        """A deep copy of stored objects (for assertions)."""
        return clone(self.store.list((group, plural), namespace)[0])
