"""create_app: settings from the environment, clear start-up errors, safe defaults, headers."""

import pytest
from webui_support import offline_api_client

from webui import create_app
from webui.security_headers import SECURITY_HEADERS


def test_settings_come_from_coderun_variables(monkeypatch):
    monkeypatch.setenv("CODERUN_RUNS_NAMESPACE", "my-runs")
    monkeypatch.setenv("CODERUN_MAX_CODE_CHARS", "1000")
    app = create_app({"KUBE_API_CLIENT": offline_api_client()})
    services = app.extensions["coderun"]
    assert services.settings.runs_namespace == "my-runs"
    assert services.store.namespace == "my-runs"
    # The request size limit follows the run limits: form encoding may need 12 bytes a char.
    assert app.config["MAX_CONTENT_LENGTH"] == (1000 + 65536) * 12 + 16 * 1024
    assert app.config["MAX_FORM_MEMORY_SIZE"] == app.config["MAX_CONTENT_LENGTH"]


def test_a_bad_setting_stops_start_up_with_one_sentence(monkeypatch):
    monkeypatch.setenv("CODERUN_WEB_THREADS", "lots")
    with pytest.raises(SystemExit) as excinfo:
        create_app({"KUBE_API_CLIENT": offline_api_client()})
    assert str(excinfo.value) == (
        "coderun web UI: CODERUN_WEB_THREADS must be a whole number from 1 to 256, not 'lots'."
    )


def test_a_missing_kubeconfig_stops_start_up_with_one_sentence(tmp_path):
    with pytest.raises(SystemExit) as excinfo:
        create_app({"KUBECONFIG": str(tmp_path / "missing")})
    assert str(excinfo.value).startswith("coderun web UI: Cannot use kubeconfig")


def test_debug_mode_is_never_on():
    app = create_app({"DEBUG": True, "KUBE_API_CLIENT": offline_api_client()})
    assert app.debug is False


def test_errors_never_show_a_traceback(offline_app):
    @offline_app.get("/boom")
    def boom():
        raise RuntimeError("secret detail")

    offline_app.testing = False
    response = offline_app.test_client().get("/boom")
    assert response.status_code == 500
    html = response.get_data(as_text=True)
    assert "Something went wrong" in html
    assert "secret detail" not in html and "Traceback" not in html


@pytest.mark.parametrize("path", ["/", "/nowhere", "/healthz", "/api/runs/hello"])
def test_every_answer_carries_the_security_headers(offline_client, path):
    response = offline_client.get(path)
    for name, value in SECURITY_HEADERS.items():
        assert response.headers[name] == value, name
    assert response.headers["Cache-Control"] == "no-store"
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "style-src 'self'" in csp
    assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp


def test_static_files_may_be_cached(offline_client):
    response = offline_client.get("/static/app.css")
    assert response.headers.get("Cache-Control") != "no-store"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    response.close()
