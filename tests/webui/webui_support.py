"""Helpers shared by the web UI tests (imported by name: pytest puts this folder on the path)."""

from __future__ import annotations

import dataclasses
import socket
import threading
from collections.abc import Callable
from html.parser import HTMLParser
from typing import Any

import kubernetes

from coderun_operator import api_bounds
from coderun_operator.settings import WebSettings, load_web_settings


def make_settings(**changes: Any) -> WebSettings:
    """Default web settings (from an empty environment) with some fields changed."""
    return dataclasses.replace(load_web_settings({}), **changes)


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def offline_api_client() -> kubernetes.client.ApiClient:
    """An API client pointing at a closed port: every call fails as if the API were down."""
    configuration = kubernetes.client.Configuration()
    configuration.host = f"http://127.0.0.1:{closed_port()}"
    configuration.retries = 0
    return kubernetes.client.ApiClient(configuration)


class FakeOperator:
    """Plays the operator's part: writes statuses through the status subresource."""

    def __init__(self, api_client: kubernetes.client.ApiClient, namespace: str) -> None:
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.namespace = namespace

    def get(self, name: str) -> dict[str, Any]:
        return self.custom.get_namespaced_custom_object(
            api_bounds.API_GROUP, api_bounds.API_VERSION, self.namespace, api_bounds.PLURAL, name
        )

    def set_status(self, name: str, **status: Any) -> dict[str, Any]:
        return self.custom.patch_namespaced_custom_object_status(
            api_bounds.API_GROUP,
            api_bounds.API_VERSION,
            self.namespace,
            api_bounds.PLURAL,
            name,
            {"status": status},
            _content_type="application/merge-patch+json",
        )

    def delete(self, name: str) -> None:
        self.custom.delete_namespaced_custom_object(
            api_bounds.API_GROUP, api_bounds.API_VERSION, self.namespace, api_bounds.PLURAL, name
        )

    def later(self, seconds: float, action: Callable[[], Any]) -> None:
        """Runs ``action`` in a thread after ``seconds`` (an operator acting while we wait)."""
        timer = threading.Timer(seconds, action)
        timer.daemon = True
        timer.start()


_VOID_ELEMENTS = frozenset({"meta", "link", "input", "br", "img", "hr", "wbr", "source"})


class _TagChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.open: list[str] = []
        self.ids: list[str] = []
        self.problems: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.ids += [value or "" for name, value in attrs if name == "id"]
        if any(name.startswith("on") or name == "style" for name, _ in attrs):
            self.problems.append(f"inline script or style on <{tag}>")
        if tag not in _VOID_ELEMENTS:
            self.open.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.open or self.open[-1] != tag:
            self.problems.append(f"</{tag}> closes <{self.open[-1] if self.open else None}>")
        else:
            self.open.pop()


def assert_well_formed(html: str) -> None:
    """Every tag is closed in order, ids are unique, no inline handlers or styles."""
    checker = _TagChecker()
    checker.feed(html)
    checker.close()
    assert checker.problems == [], checker.problems
    assert checker.open == [], checker.open
    duplicates = {name for name in checker.ids if checker.ids.count(name) > 1}
    assert not duplicates, duplicates
