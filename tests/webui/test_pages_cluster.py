"""The pages with real CodeRuns in devcluster; the tests write statuses as the operator would."""

import re
import time

import pytest
from webui_support import assert_well_formed

from webui.run_names import is_run_name

XSS = "</pre><script>alert(1)</script><b>bold</b>\n"


def _start(client, **form) -> str:
    response = client.post("/runs", data=form)
    assert response.status_code == 303, response.get_data(as_text=True)
    location = response.headers["Location"]
    match = re.fullmatch(r"/runs/(run-[a-z2-7]{24})", location)
    assert match, location
    return match.group(1)


@pytest.mark.parametrize("path", ["/", "/runs"])
def test_a_form_post_creates_a_coderun_and_redirects_to_it(cluster_client, operator, path):
    response = cluster_client.post(path, data={"code": "print('hi')"})
    assert response.status_code == 303
    name = response.headers["Location"].rsplit("/", 1)[1]
    assert is_run_name(name)
    assert operator.get(name)["spec"] == {"code": "print('hi')"}


def test_form_fields_become_the_spec(cluster_client, operator):
    name = _start(cluster_client, code="print(input())\r\n", stdin="Ada\r\n", timeoutSeconds="5")
    assert operator.get(name)["spec"] == {
        "code": "print(input())\n",
        "stdin": "Ada\n",
        "timeoutSeconds": 5,
    }


def test_a_new_run_page_says_it_waits_and_refreshes_itself(cluster_client):
    name = _start(cluster_client, code="print(1)")
    page = cluster_client.get(f"/runs/{name}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert_well_formed(html)
    assert "Waiting to start" in html
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in html
    assert 'id="refresh-link"' in html and 'id="cancel-button"' in html
    assert 'data-terminal="false"' in html
    assert 'role="status" aria-live="polite"' in html
    assert "Time limit: the default, 10 seconds." in html


def test_a_queued_run_says_so(cluster_client, operator):
    name = _start(cluster_client, code="print(1)")
    operator.set_status(
        name, phase="Pending", message="Queued: waiting for capacity in the cluster."
    )
    html = cluster_client.get(f"/runs/{name}").get_data(as_text=True)
    assert "Queued: waiting for capacity in the cluster." in html
    assert '<strong id="run-headline">Queued</strong>' in html


def test_a_finished_run_shows_escaped_separate_output_and_stops_refreshing(
    cluster_client, operator
):
    name = _start(cluster_client, code=f"print({XSS.strip()!r})")
    operator.set_status(
        name,
        phase="Succeeded",
        reason="Completed",
        exitCode=0,
        durationMs=1234,
        stdout=XSS,
        stderr="warn\x1b[31m red\x1b[0m\n",
        stdoutBytes=len(XSS),
        stderrBytes=15,
        startTime="2026-12-03T10:00:01Z",
        finishedTime="2026-12-03T10:00:02.234000Z",
    )
    html = cluster_client.get(f"/runs/{name}").get_data(as_text=True)
    assert_well_formed(html)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in html
    stdout = html.index('id="stdout"')
    stderr = html.index('id="stderr"')
    assert stdout < html.index("&lt;b&gt;bold", stdout) < stderr
    assert '<span class="ansi-fg-1"> red</span>' in html[stderr:]
    assert "\x1b" not in html
    assert "Finished" in html and 'id="run-exit-code">0<' in html and "1.23 s" in html
    assert "http-equiv" not in html
    assert 'id="run-controls" class="run-controls" hidden' in html
    assert "Where the time went" in html


def test_truncated_output_shows_byte_counts(cluster_client, operator):
    name = _start(cluster_client, code="while True: print('y' * 1000)")
    operator.set_status(
        name,
        phase="Failed",
        reason="Timeout",
        exitCode=137,
        signal=9,
        stdout="y" * 1000 + "\n",
        stdoutTruncated=True,
        stdoutBytes=5_000_000,
    )
    html = cluster_client.get(f"/runs/{name}").get_data(as_text=True)
    assert "Output was cut: showing the first\n      1,001 of 5,000,000 bytes." in html
    assert "Failed: Timeout" in html


def test_cancel_sets_spec_cancel_and_returns_to_the_run(cluster_client, operator):
    name = _start(cluster_client, code="import time; time.sleep(60)")
    operator.set_status(name, phase="Running")
    response = cluster_client.post(f"/runs/{name}/cancel")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/runs/{name}"
    assert operator.get(name)["spec"]["cancel"] is True
    html = cluster_client.get(f"/runs/{name}").get_data(as_text=True)
    assert "Cancelling…" in html


def test_cancelling_a_finished_run_changes_nothing(cluster_client, operator):
    name = _start(cluster_client, code="pass")
    operator.set_status(name, phase="Succeeded")
    assert cluster_client.post(f"/runs/{name}/cancel").status_code == 303
    assert "cancel" not in operator.get(name)["spec"]


def test_a_deleted_run_is_404(cluster_client, operator):
    name = _start(cluster_client, code="pass")
    operator.delete(name)
    response = cluster_client.get(f"/runs/{name}")
    assert response.status_code == 404
    assert "This run does not exist." in response.get_data(as_text=True)
    assert cluster_client.post(f"/runs/{name}/cancel").status_code == 404
    assert cluster_client.get(f"/runs/{name}/live?wait=1").status_code == 404


def test_edit_and_run_again_fills_the_form(cluster_client):
    name = _start(cluster_client, code="print('<again>')", stdin="x", timeoutSeconds="5")
    html = cluster_client.get(f"/runs/{name}").get_data(as_text=True)
    assert f'href="/?from={name}"' in html
    form = cluster_client.get(f"/?from={name}").get_data(as_text=True)
    assert "print(&#39;&lt;again&gt;&#39;)</textarea>" in form
    assert "x</textarea>" in form
    assert re.search(r'<option value="5"\s+selected>', form)


def test_live_updates_answer_when_the_run_changes(cluster_client, operator):
    name = _start(cluster_client, code="pass")
    page = cluster_client.get(f"/runs/{name}").get_data(as_text=True)
    version = re.search(r'data-version="(\d+)"', page).group(1)
    operator.later(0.5, lambda: operator.set_status(name, phase="Running"))
    started = time.monotonic()
    live = cluster_client.get(f"/runs/{name}/live?rv={version}&wait=10")
    assert time.monotonic() - started < 5
    html = live.get_data(as_text=True)
    assert live.status_code == 200 and html.lstrip().startswith("{#") is False
    assert_well_formed(html)
    assert 'id="run-live"' in html and "<html" not in html
    assert 'data-phase="Running"' in html and f'data-version="{version}"' not in html


def test_live_updates_end_at_the_configured_wait(cluster, runs_namespace):
    from webui_support import make_settings

    from webui import create_app

    app = create_app(
        {
            "KUBECONFIG": cluster.kubeconfig,
            "CODERUN_SETTINGS": make_settings(runs_namespace=runs_namespace, max_wait_seconds=1),
        }
    )
    client = app.test_client()
    try:
        name = _start(client, code="pass")
        version = re.search(
            r'data-version="(\d+)"', client.get(f"/runs/{name}").get_data(as_text=True)
        ).group(1)
        started = time.monotonic()
        live = client.get(f"/runs/{name}/live?rv={version}&wait=600")
        assert 0.9 < time.monotonic() - started < 3
        assert f'data-version="{version}"' in live.get_data(as_text=True)
    finally:
        app.extensions["coderun"].watch.stop()


def test_edit_again_keeps_a_time_limit_the_form_does_not_offer(cluster_client):
    created = cluster_client.post("/api/runs", json={"code": "pass", "timeoutSeconds": 7})
    name = created.get_json()["name"]
    form = cluster_client.get(f"/?from={name}").get_data(as_text=True)
    assert re.search(r'<option value="7"\s+selected>', form)
