"""Probes: alive always; ready once the CodeRun API has been served."""


def test_healthz_answers_without_a_cluster(offline_client):
    response = offline_client.get("/healthz")
    assert (response.status_code, response.get_data(as_text=True)) == (200, "ok\n")


def test_readyz_is_503_when_the_api_server_is_down(offline_client):
    response = offline_client.get("/readyz")
    assert response.status_code == 503
    assert "cannot be reached" in response.get_data(as_text=True)


def test_readyz_is_200_when_the_coderun_api_is_served(cluster_client):
    response = cluster_client.get("/readyz")
    assert (response.status_code, response.get_data(as_text=True)) == (200, "ready\n")
