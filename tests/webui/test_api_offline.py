"""The JSON API's errors without a cluster: every one is JSON with a sentence."""

import pytest
from webui_support import make_settings, offline_api_client

from webui import create_app
from webui.run_names import new_run_name


def _error(response) -> dict:
    assert response.content_type == "application/json"
    error = response.get_json()["error"]
    assert error["message"].endswith("."), error
    return error


def test_json_is_required(offline_client):
    response = offline_client.post("/api/runs", data="code=print(1)")
    assert response.status_code == 415
    assert "application/json" in _error(response)["message"]


def test_malformed_json_is_400(offline_client):
    response = offline_client.post(
        "/api/runs", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert _error(response) == {"message": "The request body is not valid JSON.", "field": None}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"code": ""}, "code"),
        ({"code": "pass", "timeoutSeconds": 0}, "timeoutSeconds"),
        ({"code": "pass", "extra": 1}, "extra"),
        ({"stdin": "x"}, "code"),
    ],
)
def test_invalid_runs_are_422_naming_the_field(offline_client, body, field):
    response = offline_client.post("/api/runs", json=body)
    assert response.status_code == 422
    assert _error(response)["field"] == field


def test_oversized_code_is_413(offline_client, settings):
    response = offline_client.post(
        "/api/runs", json={"code": "x" * (settings.limits.max_code_chars + 1)}
    )
    assert response.status_code == 413
    assert _error(response)["field"] == "code"


def test_a_body_over_the_request_limit_is_413_json(offline_app):
    offline_app.config["MAX_CONTENT_LENGTH"] = 100
    response = offline_app.test_client().post("/api/runs", json={"code": "x" * 500})
    assert response.status_code == 413
    assert "too large" in _error(response)["message"]


def test_api_server_down_is_503(offline_client):
    response = offline_client.post("/api/runs", json={"code": "print(1)"})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    _error(response)
    assert offline_client.get(f"/api/runs/{new_run_name()}").status_code == 503
    assert offline_client.post(f"/api/runs/{new_run_name()}/cancel").status_code == 503


@pytest.mark.parametrize("wait", ["soon", "-1", "nan", "inf"])
def test_a_bad_wait_is_422(offline_client, wait):
    response = offline_client.get(f"/api/runs/{new_run_name()}?wait={wait}")
    assert response.status_code == 422
    assert _error(response)["field"] == "wait"


def test_names_we_never_make_are_404(offline_client):
    assert offline_client.get("/api/runs/hello-abcde").status_code == 404
    response = offline_client.post("/api/runs/hello-abcde/cancel")
    assert response.status_code == 404
    _error(response)


def test_unknown_api_paths_and_methods_answer_json(offline_client):
    assert _error(offline_client.get("/api/nothing"))
    response = offline_client.delete("/api/runs")
    assert response.status_code == 405
    _error(response)


def test_cross_site_api_posts_are_refused(offline_client):
    response = offline_client.post(
        "/api/runs", json={"code": "print(1)"}, headers={"Origin": "https://evil.example"}
    )
    assert response.status_code == 403
    _error(response)


def test_api_run_creation_is_rate_limited():
    app = create_app(
        {
            "CODERUN_SETTINGS": make_settings(runs_per_minute_per_client=1),
            "KUBE_API_CLIENT": offline_api_client(),
        }
    )
    client = app.test_client()
    assert client.post("/api/runs", json={"code": "pass"}).status_code == 503
    response = client.post("/api/runs", json={"code": "pass"})
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) == 60
    assert "Try again in 60 seconds." in _error(response)["message"]
