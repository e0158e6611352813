"""Headless Chromium for the browser tests: Debian's build, driven by Playwright."""

from __future__ import annotations

import shutil

import pytest

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
    """The Chromium executable; fails the test loudly when it is missing (never skips)."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.fail("Chromium is missing: install Debian's chromium (.ci/run does)")
    return found
