"""The pages without a cluster: the form, every input error, and the API server being down.

The app points at a closed port, so anything that reaches Kubernetes fails as "unavailable".
"""

import dataclasses
import re

import pytest
from webui_support import assert_well_formed, make_settings, offline_api_client

from webui import create_app
from webui.run_names import new_run_name


def test_the_form_has_labelled_fields_and_the_configured_time_limits(offline_client):
    page = offline_client.get("/")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    for field in ("code", "stdin", "timeoutSeconds"):
        assert f'<label for="{field}">' in html
        assert f'id="{field}" name="{field}"' in html
    assert 'id="run-button"' in html and 'id="recent-list"' in html
    options = [int(value) for value in re.findall(r'<option value="(\d+)"', html)]
    assert options[-1] == 60 and all(1 <= value <= 60 for value in options)
    assert re.search(r'<option value="10"\s+selected>\s*10 seconds \(default\)', html)


def test_pages_use_no_inline_script_or_style(offline_client):
    html = offline_client.get("/").get_data(as_text=True)
    assert "style=" not in html and "<style" not in html
    scripts = re.findall(r"<script([^>]*)>", html)
    assert scripts and all('src="/static/' in attributes for attributes in scripts)
    assert "http://" not in html and "https://" not in html  # nothing from a CDN


def test_static_assets_are_served_locally(offline_client):
    for name in ("app.css", "app.js", "favicon.svg"):
        response = offline_client.get(f"/static/{name}")
        assert response.status_code == 200, name
        response.close()


@pytest.mark.parametrize("path", ["/", "/runs"])
def test_empty_code_keeps_the_form_with_a_message(offline_client, path):
    response = offline_client.post(path, data={"code": "  ", "stdin": "kept input"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Type some Python code to run." in html
    assert 'aria-invalid="true"' in html
    assert "kept input</textarea>" in html


def test_code_over_the_limit_is_413_and_the_text_is_kept(offline_client, settings):
    code = "print('x')  # " + "x" * settings.limits.max_code_chars
    response = offline_client.post("/runs", data={"code": code})
    assert response.status_code == 413
    html = response.get_data(as_text=True)
    assert code.replace("'", "&#39;") in html
    assert f"the limit is {settings.limits.max_code_chars:,}" in html


def test_stdin_over_the_limit_is_413_and_the_text_is_kept(offline_client, settings):
    stdin = "y" * (settings.limits.max_stdin_chars + 1)
    response = offline_client.post("/runs", data={"code": "input()", "stdin": stdin})
    assert response.status_code == 413
    html = response.get_data(as_text=True)
    assert stdin in html and "input()</textarea>" in html


def test_a_bad_time_limit_is_422(offline_client):
    response = offline_client.post("/runs", data={"code": "pass", "timeoutSeconds": "9999"})
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert "Choose a time limit from 1 to 60 seconds." in html
    assert re.search(r'<option value="10"\s+selected>', html)  # the default, not the first


def test_a_request_over_the_size_limit_is_refused_with_a_sentence(offline_app):
    offline_app.config["MAX_CONTENT_LENGTH"] = 1000
    response = offline_app.test_client().post("/runs", data={"code": "x" * 5000})
    assert response.status_code == 413
    assert "The request is too large." in response.get_data(as_text=True)


def test_api_server_down_is_503_and_keeps_the_code(offline_client):
    code = "print('<keep me>')\n"
    response = offline_client.post(
        "/", data={"code": code, "stdin": "some input", "timeoutSeconds": "30"}
    )
    assert response.status_code == 503
    html = response.get_data(as_text=True)
    assert "not available right now" in html
    assert "print(&#39;&lt;keep me&gt;&#39;)\n</textarea>" in html
    assert "some input</textarea>" in html
    assert re.search(r'<option value="30"\s+selected>', html)


def test_a_run_page_with_the_api_server_down_is_503(offline_client):
    response = offline_client.get(f"/runs/{new_run_name()}")
    assert response.status_code == 503
    assert "Reload this page in a moment." in response.get_data(as_text=True)


@pytest.mark.parametrize(
    "path", ["/runs/hello-abcde", "/runs/run-x", "/runs/hello-abcde/live", "/nowhere"]
)
def test_names_we_never_make_are_404_without_asking_the_cluster(offline_client, path):
    response = offline_client.get(path)
    assert response.status_code == 404
    assert "text/html" in response.content_type


def test_cross_site_form_posts_are_refused(offline_client):
    response = offline_client.post(
        "/runs", data={"code": "print(1)"}, headers={"Sec-Fetch-Site": "cross-site"}
    )
    assert response.status_code == 403
    assert "came from another site" in response.get_data(as_text=True)
    response = offline_client.post(
        "/", data={"code": "print(1)"}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403


def test_same_origin_posts_are_accepted(offline_client):
    response = offline_client.post(
        "/runs",
        data={"code": "print(1)"},
        headers={"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 503  # accepted, then the (closed) API server fails


def test_run_creation_is_rate_limited_per_client_with_retry_after():
    settings = make_settings(runs_per_minute_per_client=2)
    app = create_app({"CODERUN_SETTINGS": settings, "KUBE_API_CLIENT": offline_api_client()})
    client = app.test_client()
    for _ in range(2):
        assert client.post("/runs", data={"code": "pass"}).status_code == 503
    response = client.post("/runs", data={"code": "print('kept')"})
    assert response.status_code == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 30
    html = response.get_data(as_text=True)
    assert "started 2 runs in the last minute" in html
    assert "print(&#39;kept&#39;)</textarea>" in html
    other = client.post("/runs", data={"code": "pass"}, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert other.status_code == 503  # another client has its own allowance


def test_invalid_requests_do_not_use_up_the_rate_limit():
    settings = make_settings(runs_per_minute_per_client=1)
    app = create_app({"CODERUN_SETTINGS": settings, "KUBE_API_CLIENT": offline_api_client()})
    client = app.test_client()
    for _ in range(3):
        assert client.post("/runs", data={"code": ""}).status_code == 422
    assert client.post("/runs", data={"code": "pass"}).status_code == 503


@pytest.mark.parametrize(("hops", "limited"), [(0, True), (1, False)])
def test_forwarded_addresses_count_only_behind_trusted_proxies(hops, limited):
    settings = make_settings(runs_per_minute_per_client=1, trusted_proxy_hops=hops)
    app = create_app({"CODERUN_SETTINGS": settings, "KUBE_API_CLIENT": offline_api_client()})
    client = app.test_client()
    statuses = [
        client.post(
            "/runs", data={"code": "pass"}, headers={"X-Forwarded-For": f"203.0.113.{number}"}
        ).status_code
        for number in (1, 2)
    ]
    assert statuses == ([503, 429] if limited else [503, 503])


def test_edit_again_for_a_missing_run_says_so(offline_client):
    response = offline_client.get("/?from=hello-abcde")
    assert response.status_code == 404
    assert "That run no longer exists" in response.get_data(as_text=True)


def test_settings_change_what_the_form_offers():
    limits = dataclasses.replace(make_settings().limits, max_timeout_seconds=20)
    settings = make_settings(limits=limits)
    app = create_app({"CODERUN_SETTINGS": settings, "KUBE_API_CLIENT": offline_api_client()})
    html = app.test_client().get("/").get_data(as_text=True)
    assert re.findall(r'<option value="(\d+)"', html)[-1] == "20"


def test_there_is_no_list_of_runs(offline_client):
    response = offline_client.get("/runs")
    assert response.status_code == 303 and response.headers["Location"] == "/"


def test_only_the_first_field_with_a_problem_takes_the_focus(offline_client, settings):
    stdin = "x" * (settings.limits.max_stdin_chars + 1)
    html = offline_client.post(
        "/runs", data={"code": "", "stdin": stdin, "timeoutSeconds": "0"}
    ).get_data(as_text=True)
    assert html.count("autofocus") == 1
    assert re.search(r'id="code"[^>]*autofocus', html)
    assert html.count('aria-invalid="true"') == 3
    for field in ("code", "stdin", "timeoutSeconds"):
        assert f'<li><a href="#{field}">' in html


def test_pages_are_well_formed(offline_client, settings):
    assert_well_formed(offline_client.get("/").get_data(as_text=True))
    errors = offline_client.post(
        "/runs", data={"code": "", "stdin": "x" * (settings.limits.max_stdin_chars + 1)}
    )
    assert_well_formed(errors.get_data(as_text=True))
    assert_well_formed(offline_client.get("/nowhere").get_data(as_text=True))
