"""Watch streams: resume, selectors, timeouts, bookmarks, 410 Gone and Table events."""

from __future__ import annotations

import json
import ssl
import threading
import time
import urllib.request

import kubernetes

from devcluster.server import DevCluster


def stream(devcluster, path: str, accept: str = "application/json", seconds: float = 10):
    """Read a watch stream to its end; returns the decoded events."""
    request = urllib.request.Request(devcluster.url + path)
    request.add_header("Authorization", f"Bearer {devcluster.token}")
    request.add_header("Accept", accept)
    context = ssl.create_default_context(cafile=devcluster.ca_file)
    with urllib.request.urlopen(request, context=context, timeout=seconds) as response:
        return [json.loads(line) for line in response if line.strip()]


def cm(name: str, **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}, "data": {"a": "1"}}


def test_watch_resumes_from_a_resource_version(devcluster, namespace, core):
    first = core.create_namespaced_config_map(namespace, cm("w1"))
    core.create_namespaced_config_map(namespace, cm("w2"))
    core.delete_namespaced_config_map("w1", namespace)
    events = stream(
        devcluster,
        f"/api/v1/namespaces/{namespace}/configmaps?watch=1"
        f"&resourceVersion={first.metadata.resource_version}&timeoutSeconds=1",
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "w2"),
        ("DELETED", "w1"),
    ]
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)


def test_watch_without_version_starts_with_current_state(devcluster, namespace, core):
    core.create_namespaced_config_map(namespace, cm("now"))
    events = stream(
        devcluster, f"/api/v1/namespaces/{namespace}/configmaps?watch=true&timeoutSeconds=1"
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "now")]


def test_watch_timeout_ends_the_stream(devcluster, namespace):
    started = time.monotonic()
    stream(devcluster, f"/api/v1/namespaces/{namespace}/configmaps?watch=1&timeoutSeconds=1")
    assert 0.9 <= time.monotonic() - started < 5


def test_watch_label_selector_turns_relabels_into_added_and_deleted(devcluster, namespace, core):
    start = core.create_namespaced_config_map(namespace, cm("sel", tier="a"))
    core.patch_namespaced_config_map("sel", namespace, {"metadata": {"labels": {"tier": "b"}}})
    core.patch_namespaced_config_map("sel", namespace, {"metadata": {"labels": {"tier": "a"}}})
    events = stream(
        devcluster,
        f"/api/v1/namespaces/{namespace}/configmaps?watch=1"
        f"&labelSelector=tier%3Da&timeoutSeconds=1"
        f"&resourceVersion={start.metadata.resource_version}",
    )
    assert [e["type"] for e in events] == ["DELETED", "ADDED"]


def test_watch_bookmarks(devcluster, namespace):
    events = stream(
        devcluster,
        f"/api/v1/namespaces/{namespace}/configmaps?watch=1"
        "&allowWatchBookmarks=true&timeoutSeconds=3",
    )
    bookmarks = [e for e in events if e["type"] == "BOOKMARK"]
    assert bookmarks and bookmarks[0]["object"]["metadata"]["resourceVersion"]


def test_too_old_resource_version_is_gone():
    """Versions older than the event window get an ERROR event with 410 Expired."""
    small = DevCluster(event_window=10).start()  # a tiny window, so a few writes compact it
    try:
        client = small_client(small)
        for index in range(15):
            client.create_namespaced_config_map("default", cm(f"fill-{index}"))
        request = urllib.request.Request(
            small.url + "/api/v1/namespaces/default/configmaps?watch=1&resourceVersion=3"
        )
        request.add_header("Authorization", f"Bearer {small.admin_token}")
        context = ssl.create_default_context(cafile=small.certificates.ca_cert)
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            events = [json.loads(line) for line in response if line.strip()]
    finally:
        small.stop()
    assert len(events) == 1 and events[0]["type"] == "ERROR"
    assert events[0]["object"]["code"] == 410
    assert events[0]["object"]["reason"] == "Expired"


def small_client(cluster: DevCluster) -> kubernetes.client.CoreV1Api:
    configuration = kubernetes.client.Configuration()
    configuration.host = cluster.url
    configuration.ssl_ca_cert = cluster.certificates.ca_cert
    configuration.api_key = {"authorization": f"Bearer {cluster.admin_token}"}
    return kubernetes.client.CoreV1Api(kubernetes.client.ApiClient(configuration))


def test_table_watch_events(devcluster, namespace, core):
    start = core.create_namespaced_config_map(namespace, cm("tw"))
    core.patch_namespaced_config_map("tw", namespace, {"data": {"b": "2"}})
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    events = stream(
        devcluster,
        f"/api/v1/namespaces/{namespace}/configmaps?watch=1"
        f"&timeoutSeconds=1&resourceVersion={start.metadata.resource_version}",
        accept=accept,
    )
    assert events[0]["object"]["kind"] == "Table", events
    assert events[0]["object"]["rows"][0]["cells"][:2] == ["tw", 2]


def test_python_client_watch(devcluster, namespace, core):
    seen: list[str] = []

    def watch() -> None:
        watcher = kubernetes.watch.Watch()
        for event in watcher.stream(core.list_namespaced_config_map, namespace, timeout_seconds=2):
            seen.append(f"{event['type']}:{event['object'].metadata.name}")

    thread = threading.Thread(target=watch)
    thread.start()
    time.sleep(0.5)
    core.create_namespaced_config_map(namespace, cm("py"))
    thread.join()
    assert "ADDED:py" in seen


def test_send_initial_events_ends_with_a_bookmark(devcluster, namespace, core):
    core.create_namespaced_config_map(namespace, cm("init"))
    events = stream(
        devcluster,
        f"/api/v1/namespaces/{namespace}/configmaps?watch=1"
        "&sendInitialEvents=true&resourceVersionMatch=NotOlderThan"
        "&allowWatchBookmarks=true&timeoutSeconds=1",
    )
    assert events[0]["type"] == "ADDED" and events[0]["object"]["metadata"]["name"] == "init"
    assert events[1]["type"] == "BOOKMARK"
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_watch_field_selector_on_one_name(devcluster, namespace, core):
    start = core.create_namespaced_config_map(namespace, cm("one"))
    core.create_namespaced_config_map(namespace, cm("other"))
    core.patch_namespaced_config_map("one", namespace, {"data": {"b": "2"}})
    events = stream(
        devcluster,
        f"/api/v1/namespaces/{namespace}/configmaps?watch=1"
        f"&fieldSelector=metadata.name%3Done&timeoutSeconds=1"
        f"&resourceVersion={start.metadata.resource_version}",
    )
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("MODIFIED", "one")]
