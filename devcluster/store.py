"""In-memory object storage with one increasing `resourceVersion` and a bounded event window.

Stored objects are never mutated after they are written: readers may hand them straight to the
JSON encoder, and writers always store a fresh dict. This keeps reads copy-free and fast.
This class is also the in-process API the node agent uses (get/list/put/subscribe).
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

Key = tuple[str, str]  # (group, plural)
Obj = dict[str, Any]


@dataclass(frozen=True)
class Event:
    """One change: ADDED, MODIFIED or DELETED, at resourceVersion `rv`."""

    rv: int
    type: str
    key: Key
    namespace: str
    obj: Obj
    old: Obj | None = None


class Subscriber:
    """Receives events for one resource key; events are queued onto the watcher's loop."""

    def __init__(
        self,
        key: Key | None,
        loop: asyncio.AbstractEventLoop | None = None,
        callback: Callable[[Event], None] | None = None,
    ) -> None:
        self.key = key
        self.loop = loop
        self.callback = callback
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self.closed = False

    def push(self, event: Event | None) -> None:
        if self.closed:
            return
        if self.callback is not None:
            self.callback(event)  # type: ignore[arg-type]
            return
        if self.loop is None:
            self.queue.put_nowait(event)
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            self.queue.put_nowait(event)
        else:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, event)


class Store:
    """All objects, keyed by (group, plural) then (namespace, name)."""

    def __init__(self, window: int = 10000) -> None:
        self.lock = threading.RLock()
        self._rv = 1
        self._objects: dict[Key, dict[tuple[str, str], Obj]] = collections.defaultdict(dict)
        self._by_uid: dict[str, tuple[Key, str, str]] = {}
        self._dependents: dict[str, set[tuple[Key, str, str]]] = collections.defaultdict(set)
        self._events: collections.deque[Event] = collections.deque()
        self._window = window
        self.compacted_rv = 0  # watches from before this version get 410 Gone
        self._subscribers: list[Subscriber] = []
        # Called under the lock after every write (garbage collector, quota, node agent).
        self.listeners: list[Callable[[Event], None]] = []

    # -- reading ---------------------------------------------------------------------------
    @property
    def resource_version(self) -> int:
        return self._rv

    def get(self, key: Key, namespace: str, name: str) -> Obj | None:
        return self._objects[key].get((namespace, name))

    def list(self, key: Key, namespace: str | None = None) -> tuple[list[Obj], int]:
        """Objects sorted by (namespace, name), and the version the list is consistent at."""
        with self.lock:
            bucket = self._objects[key]
            if namespace:
                items = [o for (ns, _), o in bucket.items() if ns == namespace]
            else:
                items = list(bucket.values())
            rv = self._rv
        items.sort(key=lambda o: (o["metadata"].get("namespace", ""), o["metadata"]["name"]))
        return items, rv

    def keys(self) -> list[Key]:
        return list(self._objects)

    def by_uid(self, uid: str) -> Obj | None:
        with self.lock:
            where = self._by_uid.get(uid)
            return self.get(*where) if where else None

    def dependents(self, owner_uid: str) -> list[tuple[Key, Obj]]:
        with self.lock:
            out = []
            for key, ns, name in list(self._dependents.get(owner_uid, ())):
                obj = self.get(key, ns, name)
                if obj is not None:
                    out.append((key, obj))
            return out

    def count(self) -> int:
        return sum(len(bucket) for bucket in self._objects.values())

    # -- writing ---------------------------------------------------------------------------
    def next_rv(self) -> int:
        with self.lock:
            self._rv += 1
            return self._rv

    def put(self, key: Key, obj: Obj, event_type: str, old: Obj | None = None) -> Obj:
        """Store `obj` (ADDED or MODIFIED) with a fresh resourceVersion and publish it."""
        with self.lock:
            rv = self.next_rv()
            obj["metadata"]["resourceVersion"] = str(rv)
            meta = obj["metadata"]
            ns, name = meta.get("namespace", ""), meta["name"]
            self._objects[key][(ns, name)] = obj
            if old is not None:
                self._unindex(key, old)
            self._index(key, obj)
            self._publish(Event(rv, event_type, key, ns, obj, old))
            return obj

    def remove(self, key: Key, namespace: str, name: str) -> Obj | None:
        """Delete an object for good, publishing DELETED with a new resourceVersion."""
        with self.lock:
            old = self._objects[key].pop((namespace, name), None)
            if old is None:
                return None
            self._unindex(key, old)
            rv = self.next_rv()
            final = dict(old)
            final["metadata"] = dict(old["metadata"], resourceVersion=str(rv))
            self._publish(Event(rv, "DELETED", key, namespace, final, old))
            return final

    def drop_key(self, key: Key) -> None:
        """Forget a resource entirely (its CRD is gone), publishing DELETED for each object."""
        with self.lock:
            for ns, name in list(self._objects.get(key, {})):
                self.remove(key, ns, name)

    def _index(self, key: Key, obj: Obj) -> None:
        meta = obj["metadata"]
        where = (key, meta.get("namespace", ""), meta["name"])
        self._by_uid[meta["uid"]] = where
        for ref in meta.get("ownerReferences") or ():
            self._dependents[ref.get("uid", "")].add(where)

    def _unindex(self, key: Key, obj: Obj) -> None:
        meta = obj["metadata"]
        where = (key, meta.get("namespace", ""), meta["name"])
        if self._by_uid.get(meta["uid"]) == where:
            del self._by_uid[meta["uid"]]
        for ref in meta.get("ownerReferences") or ():
            deps = self._dependents.get(ref.get("uid", ""))
            if deps is not None:
                deps.discard(where)
                if not deps:
                    del self._dependents[ref.get("uid", "")]

    def _publish(self, event: Event) -> None:
        self._events.append(event)
        if len(self._events) > self._window:
            self.compacted_rv = self._events.popleft().rv
        for subscriber in self._subscribers:
            if subscriber.key is None or subscriber.key == event.key:
                subscriber.push(event)
        for listener in self.listeners:
            listener(event)

    # -- watching --------------------------------------------------------------------------
    def subscribe(self, subscriber: Subscriber, since: int | None) -> list[Event] | None:
        """Register a subscriber; return the events after `since` (None: compacted away)."""
        with self.lock:
            if since is not None and since < self.compacted_rv:
                return None
            backlog: list[Event] = []
            if since is not None:
                backlog = [
                    e
                    for e in self._events_after(since)
                    if subscriber.key is None or e.key == subscriber.key
                ]
            self._subscribers.append(subscriber)
            return backlog

    def _events_after(self, since: int) -> Iterator[Event]:
        # Events are ordered by rv; walk from the end for the common "recent" case.
        events = self._events
        start = len(events)
        while start > 0 and events[start - 1].rv > since:
            start -= 1
        for index in range(start, len(events)):
            yield events[index]

    def unsubscribe(self, subscriber: Subscriber) -> None:
        with self.lock:
            subscriber.closed = True
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

    def close_watches(self, predicate: Callable[[Subscriber], bool] | None = None) -> int:
        """End matching watch streams (a `None` event tells the stream to finish)."""
        with self.lock:
            chosen = [s for s in self._subscribers if predicate is None or predicate(s)]
        for subscriber in chosen:
            subscriber.push(None)
        return len(chosen)
