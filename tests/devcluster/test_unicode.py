"""Strings are valid Unicode once stored: unpaired surrogates become U+FFFD, as in Go."""


def test_unpaired_surrogates_in_json_escapes_are_replaced(devcluster, namespace):
    body = (
        b'{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "odd"},'
        b' "data": {"lone": "a\\ud800b", "pair": "\\ud83d\\udc0d"}}'
    )
    status, _, created = devcluster.request(
        "POST", f"/api/v1/namespaces/{namespace}/configmaps", body
    )
    assert status == 201, created
    assert created["data"] == {"lone": "a\ufffdb", "pair": "\U0001f40d"}
    status, _, read = devcluster.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/odd")
    assert read["data"]["lone"] == "a\ufffdb"
