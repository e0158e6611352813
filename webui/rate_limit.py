"""Limits how many runs one client may start per minute (a token bucket per client address).

The limiter lives in one process. With several gunicorn workers and several replicas behind a
load balancer, each keeps its own count, so a client that is spread over them can start up to
(workers x replicas) times the limit; the limit stops a single busy client, it is not a quota.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

# Forget clients whose bucket is full again once this many are tracked, so memory stays bounded.
_PRUNE_AT = 10_000


def client_key(address: str) -> str:
    """The key a client is counted under: its IPv4 address, or its IPv6 /64 network.

    One IPv6 host usually holds a whole /64, so counting single addresses would let it start
    runs without limit.
    """
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Allows ``per_minute`` runs per client, refilled evenly, with bursts up to the limit."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def _refill(self, bucket: _Bucket, now: float) -> None:
        bucket.tokens = min(self.per_minute, bucket.tokens + (now - bucket.updated) * self._rate)
        bucket.updated = now

    def try_acquire(self, client: str) -> int:
        """Takes one run for ``client``: 0 when allowed, else the seconds until one is allowed."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.get(client)
            if bucket is None:
                if len(self._buckets) >= _PRUNE_AT:
                    self._prune(now)
                bucket = self._buckets[client] = _Bucket(float(self.per_minute), now)
            self._refill(bucket, now)
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0
            return max(1, math.ceil((1 - bucket.tokens) / self._rate))

    def _prune(self, now: float) -> None:
        for client, bucket in list(self._buckets.items()):
            self._refill(bucket, now)
            if bucket.tokens >= self.per_minute:
                del self._buckets[client]
        if len(self._buckets) >= _PRUNE_AT:
            # Many busy clients (or many addresses from one): forget the least recent half.
            by_age = sorted(self._buckets.items(), key=lambda item: item[1].updated)
            for client, _ in by_age[: len(by_age) // 2]:
                del self._buckets[client]
