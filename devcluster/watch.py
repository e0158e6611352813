"""Watch streams: JSON-lines events from a resourceVersion, bookmarks, 410 Gone for versions
older than the event window, selectors (objects moving in/out of a selection become ADDED /
DELETED as on a real server) and Table-format events for `kubectl get -w`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from devcluster import tables
from devcluster.api import ApiServer
from devcluster.errors import ApiError, gone
from devcluster.resources import Resource
from devcluster.selectors import parse_field_selector, parse_label_selector
from devcluster.store import Event, Subscriber

Send = Callable[[dict[str, Any]], Awaitable[None]]
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


class WatchOptions:
    """The query parameters of one watch request."""

    def __init__(self, query: Mapping[str, str], default_timeout: float) -> None:
        self.resource_version = query.get("resourceVersion") or ""
        timeout = query.get("timeoutSeconds")
        self.timeout = float(timeout) if timeout else default_timeout
        self.bookmarks = query.get("allowWatchBookmarks") in ("true", "1", "True")
        self.send_initial = query.get("sendInitialEvents") in ("true", "1", "True")
        self.label_selector = query.get("labelSelector")
        self.field_selector = query.get("fieldSelector")


async def stream(  # noqa: PLR0917 (mirrors the request's parts)
    api: ApiServer,
    resource: Resource,
    namespace: str,
    name: str,
    query: Mapping[str, str],
    send: Send,
    *,
    table_mode: str | None,
    bookmark_interval: float = 1.0,
    default_timeout: float = 1800.0,
    on_subscribe: Callable[[Subscriber], None] | None = None,
) -> None:
    """Send events until the timeout, a client disconnect or a dropped stream."""
    options = WatchOptions(query, default_timeout)
    label_match = parse_label_selector(options.label_selector)
    field_match = parse_field_selector(options.field_selector, resource.field_labels)

    def selected(obj: dict[str, Any] | None) -> bool:
        if obj is None:
            return False
        meta = obj["metadata"]
        if namespace and meta.get("namespace") != namespace:
            return False
        if name and meta.get("name") != name:
            return False
        if label_match and not label_match(meta.get("labels") or {}):
            return False
        return not (field_match and not field_match(obj))

    first_table = [True]

    def encode(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
        out = api.output(resource, obj)
        if table_mode is not None:
            out = tables.table(
                resource,
                [out],
                {"resourceVersion": obj["metadata"].get("resourceVersion", "")},
                table_mode,
                with_columns=first_table[0],
            )
            first_table[0] = False
        return {"type": event_type, "object": out}

    loop = asyncio.get_running_loop()
    subscriber = Subscriber(resource.key, loop)
    rv_text = options.resource_version
    initial: list[dict[str, Any]] = []
    with api.store.lock:
        if rv_text in ("", "0") or options.send_initial:
            backlog = api.store.subscribe(subscriber, None)
            initial, current_rv = api.store.list(
                resource.key, namespace if resource.namespaced and namespace else None
            )
        else:
            try:
                since = int(rv_text)
            except ValueError:
                raise ApiError(400, "BadRequest", f"invalid resource version: {rv_text}") from None
            backlog = api.store.subscribe(subscriber, since)
            current_rv = api.store.resource_version
    if on_subscribe is not None:
        on_subscribe(subscriber)
    try:
        if backlog is None:
            error = gone(f"too old resource version: {rv_text} ({api.store.compacted_rv + 1})")
            await send({"type": "ERROR", "object": error.status()})
            return
        for obj in initial:
            if selected(obj):
                await send(encode("ADDED", obj))
        last_rv = current_rv
        if options.send_initial and options.bookmarks:
            await send(_bookmark(resource, current_rv, initial_end=True))
        for event in backlog:
            await _send_event(event, selected, encode, send)
            last_rv = event.rv
        deadline = time.monotonic() + options.timeout
        next_bookmark = time.monotonic() + bookmark_interval
        while True:
            now = time.monotonic()
            if now >= deadline:
                return
            wait = deadline - now
            if options.bookmarks:
                wait = min(wait, max(0.0, next_bookmark - now))
            event: Event | None
            try:
                event = await asyncio.wait_for(subscriber.queue.get(), timeout=wait)
            except TimeoutError:
                if options.bookmarks and time.monotonic() >= next_bookmark:
                    await send(_bookmark(resource, max(last_rv, api.store.resource_version)))
                    next_bookmark = time.monotonic() + bookmark_interval
                continue
            if event is None:
                return  # dropped on purpose (fault injection) or server shutdown
            await _send_event(event, selected, encode, send)
            last_rv = event.rv
    finally:
        api.store.unsubscribe(subscriber)


async def _send_event(
    event: Event,
    selected: Callable[[Any], bool],
    encode: Callable[[str, dict[str, Any]], dict[str, Any]],
    send: Send,
) -> None:
    now_in = selected(event.obj)
    was_in = selected(event.old) if event.type == "MODIFIED" else now_in
    if event.type == "MODIFIED":
        if now_in and was_in:
            await send(encode("MODIFIED", event.obj))
        elif now_in:
            await send(encode("ADDED", event.obj))
        elif was_in:
            await send(encode("DELETED", event.obj))
    elif now_in:
        await send(encode(event.type, event.obj))


def _bookmark(resource: Resource, rv: int, initial_end: bool = False) -> dict[str, Any]:
    metadata: dict[str, Any] = {"resourceVersion": str(rv)}
    if initial_end:
        metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
    return {
        "type": "BOOKMARK",
        "object": {"kind": resource.kind, "apiVersion": resource.api_version, "metadata": metadata},
    }
