"""What every part of the REST layer shares: the request (`Call`), the answer (`Result`),
well-known storage keys and small helpers."""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from devcluster.auth import User
from devcluster.requestinfo import RequestInfo
from devcluster.resources import Resource

Obj = dict[str, Any]
CRD_KEY = ("apiextensions.k8s.io", "customresourcedefinitions")
NAMESPACES = ("", "namespaces")
PODS = ("", "pods")
ORPHAN = "orphan"
CRD_CLEANUP = "customresourcecleanup.apiextensions.k8s.io"
FOREGROUND = "foregroundDeletion"


def now_rfc3339(offset_seconds: float = 0) -> str:
    """Now (plus an offset) as the RFC 3339 seconds timestamp metadata uses."""
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=offset_seconds)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def clone(obj: Any) -> Any:
    """A deep copy of a JSON document (faster than copy.deepcopy for plain JSON)."""
    return json.loads(json.dumps(obj))


@dataclass
class Call:
    """One resource request, already authenticated and authorized."""

    info: RequestInfo
    resource: Resource
    query: Mapping[str, str]
    body: bytes = b""
    content_type: str = "application/json"
    user: User | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def dry_run(self) -> bool:
        return self.query.get("dryRun") == "All"

    @property
    def field_validation(self) -> str:
        return self.query.get("fieldValidation") or "Warn"


@dataclass
class Result:
    """What a handler produced: a status code and a body (object, list or Status)."""

    status: int
    body: Any
    objects: list[Obj] | None = None  # for Table conversion of lists
    list_meta: Obj | None = None
    headers: dict[str, str] = field(default_factory=dict)


def success() -> Obj:
    """The `Status` Success body subresource creations answer with."""
    return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}
