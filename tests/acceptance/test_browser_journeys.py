"""A person in a browser, on the whole stack: the page, the real operator, a real run pod.

Headless Debian Chromium driven by Playwright, one browser for the module (see
tests/support/browser.py). A screenshot of a finished run page is saved in artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright import sync_api

from tests.acceptance.conftest import ARTIFACTS
from tests.support.browser import headless_chromium

pytestmark = pytest.mark.timeout(600)
FINISHED = re.compile(r"Finished|Failed|Timed out|Cancelled|Stopped")


@pytest.fixture(scope="module")
def browser() -> Iterator[sync_api.Browser]:
    with headless_chromium() as launched:
        yield launched


@pytest.fixture
def page(browser, full_stack) -> Iterator[sync_api.Page]:
    context = browser.new_context(base_url=full_stack.url)
    opened = context.new_page()
    dialogs: list[str] = []
    opened.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    yield opened
    context.close()
    assert dialogs == [], "a script from the output ran in the page"


def wait_finished(page: sync_api.Page) -> None:
    page.locator("#run-headline", has_text=FINISHED).wait_for(timeout=120_000)


def test_type_a_snippet_press_ctrl_enter_and_see_42(page):
    page.goto("/")
    code = page.get_by_label("Python code")
    code.click()
    code.press_sequentially("x = 6 * 7")
    code.press("Enter")
    code.press_sequentially("print(x)")
    code.press("Control+Enter")
    page.wait_for_url(re.compile(r"/runs/run-"))
    wait_finished(page)
    assert page.locator("#stdout").inner_text().strip() == "42"
    assert page.locator("#run-exit-code").inner_text() == "0"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "run-page.png"), full_page=True)


def test_output_that_looks_like_markup_stays_text(page):
    page.goto("/")
    page.get_by_label("Python code").fill('print("</pre><script>alert(1)</script><b>bold</b>")')
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/run-"))
    wait_finished(page)
    assert page.locator("#stdout").inner_text().strip() == (
        "</pre><script>alert(1)</script><b>bold</b>"
    )
    assert page.locator("#stdout b").count() == 0
    assert page.locator("script:not([src])").count() == 0


def test_without_javascript_the_form_and_refresh_still_work(browser, full_stack):
    context = browser.new_context(base_url=full_stack.url, java_script_enabled=False)
    page = context.new_page()
    page.goto("/")
    page.locator("#code").fill("print('no script needed')")
    page.locator("#run-form button[type=submit]").first.click()
    page.wait_for_url(re.compile(r"/runs/run-"))
    for _ in range(120):  # the page refreshes itself every 2 s; reload stands in for waiting
        if FINISHED.search(page.locator("#run-headline").inner_text()):
            break
        page.wait_for_timeout(1000)
        page.reload()
    assert page.locator("#stdout").inner_text().strip() == "no script needed"
    context.close()


def test_an_oversized_snippet_keeps_the_text_and_says_why(page, full_stack):
    page.goto("/")
    too_long = "x = 1\n" * 11_000  # 66,000 characters, above the 65,536 limit
    # As if pasted: typing 66,000 characters key by key would take minutes.
    page.get_by_label("Python code").evaluate("(box, text) => { box.value = text; }", too_long)
    page.get_by_role("button", name="Run", exact=True).click()
    page.locator("#code-error").wait_for()
    assert "65,536" in page.locator("#code-error").inner_text()
    assert page.get_by_label("Python code").input_value() == too_long


def test_cancel_a_running_snippet(page):
    page.goto("/")
    page.get_by_label("Python code").fill(
        "import time\nprint('started', flush=True)\ntime.sleep(60)"
    )
    page.get_by_label("Time limit").select_option("30")
    page.get_by_role("button", name="Run", exact=True).click()
    page.wait_for_url(re.compile(r"/runs/run-"))
    page.locator("#run-headline", has_text="Running").wait_for(timeout=120_000)
    page.get_by_role("button", name="Cancel run").click()
    page.locator("#run-headline", has_text="Cancelled").wait_for(timeout=120_000)
    assert page.locator("#run-reason").inner_text() == "Cancelled"
