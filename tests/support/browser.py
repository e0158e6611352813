"""Headless Chromium for the browser tests: Debian's (or CODERUN_CHROMIUM's), via Playwright."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright import sync_api

CHROMIUM_ENV = "CODERUN_CHROMIUM"
# No background traffic: this machine reaches no network but the package mirrors.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str:
    """The Chromium executable; fails the test loudly when it is missing (never skips).

    ``CODERUN_CHROMIUM`` names another Chromium or Chrome binary (CI uses the runner's Chrome).
    """
    override = os.environ.get(CHROMIUM_ENV, "").strip()
    if override:
        found = shutil.which(override)
        if found is None:
            pytest.fail(f"{CHROMIUM_ENV}={override!r} is not an executable Chromium or Chrome")
        return found
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail(
            f"Chromium is missing: install Debian's chromium (.ci/run does), "
            f"or name a Chromium or Chrome binary in {CHROMIUM_ENV}"
        )
    return found


@contextmanager
def headless_chromium() -> Iterator[sync_api.Browser]:
    """One headless Chromium for a test module.

    Playwright's sync API holds the thread's event loop while a browser is open, so a browser
    lives for one module at most: tests elsewhere may run asyncio themselves.
    """
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path(), headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()
