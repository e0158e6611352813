"""The page in a real browser (Chromium through Playwright): keyboard, live updates, storage.

Needs Playwright (a dev dependency) and Debian's chromium (installed by .ci/run); Playwright's
own browser download is not used. Either missing fails the tests loudly: they never skip.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
from playwright import sync_api
from werkzeug.serving import make_server

from tests.support.browser import headless_chromium


@pytest.fixture
def base_url(cluster_app) -> Iterator[str]:
    """The app served over HTTP by a threaded werkzeug server (long-polls need threads)."""
    server = make_server("127.0.0.1", 0, cluster_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with headless_chromium() as launched:
        yield launched


@pytest.fixture
def page(browser, base_url):
    context = browser.new_context(base_url=base_url)
    page = context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    page.on(
        "console",
        lambda message: problems.append(message.text) if message.type == "error" else None,
    )
    yield page
    context.close()
    # No script errors and no Content-Security-Policy violations on any page.
    assert problems == []


def _run_name(page) -> str:
    match = re.search(r"/runs/(run-[a-z2-7]{24})$", page.url)
    assert match, page.url
    return match.group(1)


def test_typing_indenting_and_ctrl_enter_start_a_run(page, operator):
    page.goto("/")
    code = page.get_by_label("Python code")
    code.click()
    code.press_sequentially("for i in range(3):")
    code.press("Enter")
    code.press("Tab")
    code.press_sequentially("print(i)")
    assert code.input_value() == "for i in range(3):\n    print(i)"
    code.press("Control+Enter")
    page.wait_for_url(re.compile(r"/runs/run-"))
    name = _run_name(page)
    assert operator.get(name)["spec"]["code"] == "for i in range(3):\n    print(i)"
    assert page.locator("#run-headline").inner_text() == "Waiting to start"


def test_escape_then_tab_leaves_the_code_box(page):
    page.goto("/")
    code = page.get_by_label("Python code")
    code.click()
    code.press("Escape")
    code.press("Tab")
    assert page.evaluate("document.activeElement.id") == "stdin"
    assert code.input_value() == ""


def test_the_run_page_follows_the_run_live_and_announces_the_end(page, operator):
    page.goto("/")
    page.get_by_label("Python code").fill("print('<b>hi</b>')")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/run-"))
    name = _run_name(page)
    operator.set_status(name, phase="Running")
    page.locator("#run-headline", has_text="Running").wait_for(timeout=10_000)
    operator.set_status(
        name, phase="Succeeded", reason="Completed", exitCode=0, stdout="<b>hi</b>\n"
    )
    page.locator("#run-headline", has_text="Finished").wait_for(timeout=10_000)
    assert page.locator("#stdout").inner_text().strip() == "<b>hi</b>"
    assert page.locator("#run-announcer").inner_text() == "Finished"
    assert page.locator("#run-controls").is_hidden()
    assert page.title().startswith("Finished")


def test_recent_runs_are_listed_from_this_browser_only(page, operator):
    page.goto("/")
    page.get_by_label("Python code").fill("print('mine')")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/run-"))
    name = _run_name(page)
    page.goto("/")
    link = page.locator("#recent-list a")
    assert link.count() == 1
    assert link.get_attribute("href") == f"/runs/{name}"
    assert link.inner_text() == "print('mine')"
    page.get_by_role("button", name="Forget these runs").click()
    assert page.locator("#recent-list li").count() == 0


def test_cancel_and_edit_again(page, operator):
    page.goto("/")
    page.get_by_label("Python code").fill("import time\ntime.sleep(60)")
    page.get_by_label("Time limit").select_option("30")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/run-"))
    name = _run_name(page)
    page.get_by_role("button", name="Cancel run").click()
    page.wait_for_url(re.compile(rf"/runs/{name}$"))
    assert operator.get(name)["spec"]["cancel"] is True
    assert page.locator("#run-headline").inner_text() == "Cancelling…"
    page.get_by_role("link", name="Edit and run again").click()
    assert page.get_by_label("Python code").input_value() == "import time\ntime.sleep(60)"
    assert page.get_by_label("Time limit").input_value() == "30"


def test_the_page_fits_a_phone_screen(page):
    page.set_viewport_size({"width": 360, "height": 740})
    page.goto("/")
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
