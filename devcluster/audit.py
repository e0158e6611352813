"""The audit log: who did what, with which result, and which RBAC rule allowed it.

Entries go to a JSON-lines file (when configured) and stay queryable in process, so tests can
prove an identity's RBAC is sufficient (no 403) and minimal (every rule used).
"""

from __future__ import annotations

import datetime
import json
import threading
from typing import Any, TextIO


class AuditLog:
    """Append-only; bounded in memory, complete on disk."""

    def __init__(self, path: str | None = None, keep: int = 50000) -> None:
        self._lock = threading.Lock()
        self._entries: list[dict[str, Any]] = []
        self._keep = keep
        self._file: TextIO | None = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115

    def record(self, entry: dict[str, Any]) -> None:
        entry.setdefault("time", datetime.datetime.now(datetime.UTC).isoformat())
        with self._lock:
            self._entries.append(entry)
            if len(self._entries) > self._keep:
                del self._entries[: len(self._entries) - self._keep]
            if self._file is not None:
                self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
                self._file.flush()

    def entries(self, user: str | None = None) -> list[dict[str, Any]]:
        """Entries so far, optionally only one user's."""
        with self._lock:
            return [e for e in self._entries if user is None or e.get("user") == user]

    def rules_used(self, user: str) -> set[tuple[str, str, int]]:
        """(binding, role, rule index) triples that allowed this user's requests.

        Compare with the rules the user's roles hold to prove RBAC minimal.
        """
        return {
            (
                e["authorization"]["binding"],
                e["authorization"]["role"],
                e["authorization"]["ruleIndex"],
            )
            for e in self.entries(user)
            if e.get("allowed") and e.get("authorization")
        }

    def denied(self, user: str) -> list[dict[str, Any]]:
        """This user's requests answered 403 (RBAC insufficient if any)."""
        return [e for e in self.entries(user) if e.get("code") == 403]

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None
