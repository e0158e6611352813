"""devcluster must never be the bottleneck of a benchmark: a generous throughput floor."""

from __future__ import annotations

import http.client
import json
import ssl
import time
from urllib.parse import urlparse


def test_create_and_get_throughput(devcluster, namespace):
    address = urlparse(devcluster.url)
    connection = http.client.HTTPSConnection(
        address.hostname,
        address.port,
        context=ssl.create_default_context(cafile=devcluster.ca_file),
    )
    headers = {"Authorization": f"Bearer {devcluster.token}", "Content-Type": "application/json"}
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    count = 300
    started = time.monotonic()
    for index in range(count):
        body = json.dumps({"metadata": {"name": f"perf-{index}"}, "data": {"k": "v"}})
        connection.request("POST", base, body, headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 201
        connection.request("GET", f"{base}/perf-{index}", headers=headers)
        response = connection.getresponse()
        response.read()
        assert response.status == 200
    pairs_per_second = count / (time.monotonic() - started)
    # About 1000 pairs/s on a quiet 2-core machine; the floor leaves room for a busy one.
    assert pairs_per_second > 150, f"only {pairs_per_second:.0f} create+get pairs/s"
