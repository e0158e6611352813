"""Injected faults for reliability tests, switched at run time by an admin.

Each rule aims at chosen identities (so a test's own admin kubectl is not hit) and optionally
at verbs/resources, and fails a fraction of matching requests with 500, 429 (+ Retry-After)
or 409 (on writes only: a real API server never answers a read with a conflict). Watch
streams of chosen users can be dropped. Actions such as evicting a pod or pausing the node
agent are registered by their owners through `register_action`.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from devcluster.errors import ApiError
from devcluster.requestinfo import RequestInfo

# Verbs a real API server can answer with 409 (AlreadyExists on create; a stale
# resourceVersion or a failed precondition on the others).
_CONFLICT_VERBS = frozenset({"create", "update", "patch", "delete", "deletecollection"})


@dataclass
class FaultRule:
    """Fail `fraction` of the matching requests with `status`."""

    status: int = 500
    fraction: float = 1.0
    users: list[str] = field(default_factory=list)  # empty: every non-admin user
    verbs: list[str] = field(default_factory=list)
    resources: list[str] = field(default_factory=list)  # "pods", "pods/log", "coderuns"
    retry_after: int = 1
    count: int | None = None  # stop after this many injected failures

    def matches(self, user: str, is_admin: bool, info: RequestInfo) -> bool:
        if self.users and user not in self.users:
            return False
        if not self.users and is_admin:
            return False
        if self.verbs and info.verb not in self.verbs:
            return False
        if self.status == 409 and info.verb not in _CONFLICT_VERBS:
            return False
        return not (
            self.resources
            and info.resource_path not in self.resources
            and info.resource not in self.resources
        )

    def error(self, info: RequestInfo) -> ApiError:
        if self.status == 429:
            return ApiError(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
                {"retryAfterSeconds": self.retry_after},
                {"Retry-After": str(self.retry_after)},
            )
        if self.status == 409:
            return ApiError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {info.resource} "{info.name}": '
                "the object has been modified; please apply your changes to the "
                "latest version and try again (injected fault)",
                {"name": info.name, "kind": info.resource, "group": info.group},
            )
        return ApiError(self.status, "InternalError", "Internal error occurred: injected fault")


class Faults:
    """The active rules and registered actions."""

    def __init__(self, seed: int | None = None) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._random = random.Random(seed)
        self._actions: dict[str, Callable[[dict[str, Any]], Any]] = {}

    def set_rules(self, rules: list[FaultRule]) -> None:
        with self._lock:
            self._rules = list(rules)

    def add_rule(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules.append(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules = []

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def check(self, user: str, is_admin: bool, info: RequestInfo) -> ApiError | None:
        """The error to inject for this request, if any rule fires."""
        if not self._rules:
            return None
        with self._lock:
            for rule in self._rules:
                if rule.matches(user, is_admin, info) and self._random.random() < rule.fraction:
                    if rule.count is not None:
                        if rule.count <= 0:
                            continue
                        rule.count -= 1
                    return rule.error(info)
        return None

    def register_action(self, name: str, action: Callable[[dict[str, Any]], Any]) -> None:
        """Seam for other components (the node agent: `evict-pod`, `pause-agent`)."""
        self._actions[name] = action

    def run_action(self, name: str, arguments: dict[str, Any]) -> Any:
        if name not in self._actions:
            raise KeyError(name)
        return self._actions[name](arguments)

    def action_names(self) -> list[str]:
        return sorted(self._actions)
