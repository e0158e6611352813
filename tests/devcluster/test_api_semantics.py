"""Object semantics through the official Python client and raw HTTP: metadata, errors,
updates, patches, status, dry run, selectors, pagination and deletecollection."""

from __future__ import annotations

import kubernetes
import pytest
from kubernetes.client import ApiException


def cm(name: str, data: dict[str, str] | None = None, **meta: object) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, **meta},
        "data": data or {"a": "1"},
    }


def test_metadata_set_by_the_server(devcluster, namespace, core):
    created = core.create_namespaced_config_map(namespace, cm("m1"))
    assert created.metadata.uid
    assert created.metadata.creation_timestamp is not None
    assert created.metadata.generation == 1
    second = core.create_namespaced_config_map(namespace, cm("m2"))
    assert int(second.metadata.resource_version) > int(created.metadata.resource_version)
    generated = core.create_namespaced_config_map(
        namespace, {"metadata": {"generateName": "gen-"}, "data": {}}
    )
    assert generated.metadata.name.startswith("gen-") and len(generated.metadata.name) == 9


def test_create_answers_201_and_errors_are_status_objects(devcluster, namespace):
    status, _, body = devcluster.request(
        "POST", f"/api/v1/namespaces/{namespace}/configmaps", cm("s1")
    )
    assert status == 201
    status, _, body = devcluster.request(
        "POST", f"/api/v1/namespaces/{namespace}/configmaps", cm("s1")
    )
    assert (status, body["reason"], body["kind"]) == (409, "AlreadyExists", "Status")
    assert body["message"] == 'configmaps "s1" already exists'
    status, _, body = devcluster.request("GET", f"/api/v1/namespaces/{namespace}/configmaps/x")
    assert (status, body["reason"], body["message"]) == (
        404,
        "NotFound",
        'configmaps "x" not found',
    )
    status, _, body = devcluster.request(
        "POST", f"/api/v1/namespaces/{namespace}/configmaps", cm("Bad_Name")
    )
    assert (status, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "p"},
        "spec": {"containers": [{"image": "x"}]},
    }
    status, _, body = devcluster.request("POST", f"/api/v1/namespaces/{namespace}/pods", pod)
    assert status == 422
    assert [c["field"] for c in body["details"]["causes"]] == ["spec.containers[0].name"]
    assert body["message"].startswith('Pod "p" is invalid: spec.containers[0].name: Required')


def test_update_with_stale_resource_version_conflicts(namespace, core):
    created = core.create_namespaced_config_map(namespace, cm("u1"))
    created.data = {"a": "2"}
    updated = core.replace_namespaced_config_map("u1", namespace, created)
    assert int(updated.metadata.resource_version) > int(created.metadata.resource_version)
    created.data = {"a": "3"}  # still carries the old resourceVersion
    with pytest.raises(ApiException) as caught:
        core.replace_namespaced_config_map("u1", namespace, created)
    assert caught.value.status == 409
    assert "the object has been modified" in caught.value.body


def test_generation_counts_spec_changes_only(devcluster, namespace):
    apps = kubernetes.client.AppsV1Api(devcluster.api_client())
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "g"},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"a": "b"}},
            "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]},
            },
        },
    }
    apps.create_namespaced_deployment(namespace, deployment)
    labelled = apps.patch_namespaced_deployment(
        "g", namespace, {"metadata": {"labels": {"x": "y"}}}
    )
    assert labelled.metadata.generation == 1
    status = apps.patch_namespaced_deployment_status("g", namespace, {"status": {"replicas": 5}})
    assert status.metadata.generation == 1 and status.status.replicas == 5
    scaled = apps.patch_namespaced_deployment("g", namespace, {"spec": {"replicas": 3}})
    assert scaled.metadata.generation == 2
    # The main endpoint ignores status; the status endpoint ignores spec.
    ignored = apps.patch_namespaced_deployment("g", namespace, {"status": {"replicas": 9}})
    assert ignored.status.replicas == 5
    spec_via_status = apps.patch_namespaced_deployment_status(
        "g", namespace, {"spec": {"replicas": 7}}
    )
    assert spec_via_status.spec.replicas == 3


def test_patch_flavours(devcluster, namespace):
    path = f"/api/v1/namespaces/{namespace}/pods"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "pp", "labels": {"a": "1"}},
        "spec": {"containers": [{"name": "one", "image": "i1"}, {"name": "two", "image": "i2"}]},
    }
    assert devcluster.request("POST", path, pod)[0] == 201
    # Strategic merge: containers merge by name.
    status, _, body = devcluster.request(
        "PATCH",
        f"{path}/pp",
        {"spec": {"containers": [{"name": "two", "image": "i3"}]}},
        content_type="application/strategic-merge-patch+json",
    )
    assert status == 200, body
    assert [(c["name"], c["image"]) for c in body["spec"]["containers"]] == [
        ("one", "i1"),
        ("two", "i3"),
    ]
    # Merge patch: lists are replaced, null deletes.
    status, _, body = devcluster.request(
        "PATCH",
        f"{path}/pp",
        {"metadata": {"labels": {"a": None, "b": "2"}}},
        content_type="application/merge-patch+json",
    )
    assert body["metadata"]["labels"] == {"b": "2"}
    status, _, body = devcluster.request(
        "PATCH",
        f"{path}/pp",
        [{"op": "replace", "path": "/metadata/labels/b", "value": "3"}],
        content_type="application/json-patch+json",
    )
    assert body["metadata"]["labels"] == {"b": "3"}
    status, _, body = devcluster.request(
        "PATCH",
        f"{path}/pp",
        [{"op": "test", "path": "/metadata/labels/b", "value": "x"}],
        content_type="application/json-patch+json",
    )
    assert status == 422


def test_server_side_apply_removes_fields_the_manager_dropped(devcluster, namespace):
    path = f"/api/v1/namespaces/{namespace}/configmaps/ssa?fieldManager=tool"
    applied = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "ssa"},
        "data": {"a": "1", "b": "2"},
    }
    status, _, body = devcluster.request(
        "PATCH", path, applied, content_type="application/apply-patch+yaml"
    )
    assert status == 201, body
    applied["data"] = {"a": "1"}
    status, _, body = devcluster.request(
        "PATCH", path, applied, content_type="application/apply-patch+yaml"
    )
    assert status == 200 and body["data"] == {"a": "1"}
    assert body["metadata"]["managedFields"][0]["manager"] == "tool"


def test_dry_run_stores_nothing(devcluster, namespace):
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    status, _, body = devcluster.request("POST", base + "?dryRun=All", cm("dry"))
    assert status == 201 and body["metadata"]["name"] == "dry"
    assert devcluster.request("GET", f"{base}/dry")[0] == 404
    devcluster.request("POST", base, cm("wet"))
    devcluster.request("DELETE", f"{base}/wet?dryRun=All")
    assert devcluster.request("GET", f"{base}/wet")[0] == 200


def test_field_validation_strict_and_warn(devcluster, namespace):
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    body = cm("fv")
    body["extra"] = 1
    status, _, answer = devcluster.request("POST", base + "?fieldValidation=Strict", body)
    assert status == 400 and 'unknown field "extra"' in answer["message"]
    status, headers, answer = devcluster.request("POST", base + "?fieldValidation=Warn", body)
    assert status == 201 and "extra" not in answer
    assert 'unknown field \\"extra\\"' in headers["Warning"]


def test_selectors_on_list(devcluster, namespace, core):
    for name, tier in (("a", "front"), ("b", "back"), ("c", "front")):
        core.create_namespaced_config_map(namespace, cm(name, labels={"tier": tier}))
    front = core.list_namespaced_config_map(namespace, label_selector="tier=front")
    assert [i.metadata.name for i in front.items] == ["a", "c"]
    not_front = core.list_namespaced_config_map(namespace, label_selector="tier notin (front)")
    assert [i.metadata.name for i in not_front.items] == ["b"]
    by_name = core.list_namespaced_config_map(namespace, field_selector="metadata.name=b")
    assert [i.metadata.name for i in by_name.items] == ["b"]
    pod = {"metadata": {"name": "sel"}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
    core.create_namespaced_pod(namespace, pod)
    pending = core.list_namespaced_pod(namespace, field_selector="status.phase=Pending")
    assert [p.metadata.name for p in pending.items] == ["sel"]
    assert not core.list_namespaced_pod(namespace, field_selector="spec.nodeName=n1").items
    with pytest.raises(ApiException) as caught:
        core.list_namespaced_config_map(namespace, field_selector="data.a=1")
    assert caught.value.status == 400 and "field label not supported" in caught.value.body


def test_pagination_and_deletecollection(namespace, core):
    for index in range(7):
        core.create_namespaced_config_map(namespace, cm(f"page-{index}", labels={"batch": "x"}))
    names, token = [], None
    while True:
        page = core.list_namespaced_config_map(namespace, limit=3, _continue=token)
        names += [i.metadata.name for i in page.items]
        token = page.metadata._continue
        if not token:
            break
    assert names == [f"page-{i}" for i in range(7)]
    core.delete_collection_namespaced_config_map(namespace, label_selector="batch=x")
    assert not core.list_namespaced_config_map(namespace, label_selector="batch=x").items


def test_table_output(devcluster, namespace):
    devcluster.request("POST", f"/api/v1/namespaces/{namespace}/configmaps", cm("t"))
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    status, _, table = devcluster.request(
        "GET", f"/api/v1/namespaces/{namespace}/configmaps", headers={"Accept": accept}
    )
    assert status == 200 and table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Data", "Age"]
    assert table["rows"][0]["cells"][:2] == ["t", 1]
    assert table["rows"][0]["object"]["kind"] == "PartialObjectMetadata"
    _, _, single = devcluster.request(
        "GET", f"/api/v1/namespaces/{namespace}/configmaps/t", headers={"Accept": accept}
    )
    assert single["kind"] == "Table" and len(single["rows"]) == 1


def test_discovery_openapi_and_health(devcluster):
    for path in ("/healthz", "/readyz", "/livez"):
        status, _, body = devcluster.request("GET", path, token="")
        assert (status, body) == (200, "ok")
    status, _, version = devcluster.request("GET", "/version", token="")
    assert status == 200 and version["major"] == "1"
    assert devcluster.request("GET", "/api", token="")[0] == 401
    _, _, groups = devcluster.request("GET", "/apis")
    names = {g["name"] for g in groups["groups"]}
    assert {
        "apps",
        "rbac.authorization.k8s.io",
        "coordination.k8s.io",
        "policy",
        "autoscaling",
        "networking.k8s.io",
        "apiextensions.k8s.io",
        "events.k8s.io",
    } <= names
    _, _, resources = devcluster.request("GET", "/api/v1")
    listed = {r["name"] for r in resources["resources"]}
    assert {
        "pods",
        "pods/log",
        "pods/status",
        "pods/eviction",
        "serviceaccounts/token",
        "namespaces",
        "nodes",
        "events",
        "configmaps",
        "secrets",
        "services",
        "resourcequotas",
        "limitranges",
    } <= listed
    _, _, index = devcluster.request("GET", "/openapi/v3")
    url = index["paths"]["apis/apps/v1"]["serverRelativeURL"]
    _, _, document = devcluster.request("GET", url)
    assert "io.k8s.api.apps.v1.Deployment" in document["components"]["schemas"]
    accept = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    status, headers, aggregated = devcluster.request("GET", "/apis", headers={"Accept": accept})
    assert aggregated["kind"] == "APIGroupDiscoveryList"
    assert "as=APIGroupDiscoveryList" in headers["Content-Type"]


def test_strategic_merge_replace_strategy_and_directives(devcluster, namespace):
    base = f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets"
    pdb = {
        "metadata": {"name": "b"},
        "spec": {"minAvailable": 1, "selector": {"matchLabels": {"a": "1", "b": "2"}}},
    }
    devcluster.request("POST", base, pdb)
    _, _, body = devcluster.request(
        "PATCH",
        f"{base}/b",
        {"spec": {"selector": {"matchLabels": {"c": "3"}}}},
        content_type="application/strategic-merge-patch+json",
    )
    assert body["spec"]["selector"] == {"matchLabels": {"c": "3"}}
    pods = f"/api/v1/namespaces/{namespace}/pods"
    devcluster.request(
        "POST",
        pods,
        {
            "metadata": {"name": "d"},
            "spec": {"containers": [{"name": "one", "image": "i"}, {"name": "two", "image": "i"}]},
        },
    )
    _, _, body = devcluster.request(
        "PATCH",
        f"{pods}/d",
        {"metadata": {"finalizers": ["x/y"]}},
        content_type="application/strategic-merge-patch+json",
    )
    _, _, body = devcluster.request(
        "PATCH",
        f"{pods}/d",
        {"metadata": {"$deleteFromPrimitiveList/finalizers": ["x/y"]}},
        content_type="application/strategic-merge-patch+json",
    )
    assert not body["metadata"].get("finalizers")


def test_eviction_and_binding(devcluster, namespace):
    pods = f"/api/v1/namespaces/{namespace}/pods"
    devcluster.request(
        "POST",
        pods,
        {
            "metadata": {"name": "e", "labels": {"app": "e"}},
            "spec": {"containers": [{"name": "c", "image": "i"}]},
        },
    )
    status, _, body = devcluster.request(
        "POST",
        f"{pods}/e/binding",
        {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": "e"},
            "target": {"kind": "Node", "name": "devcluster-node-1"},
        },
    )
    assert status == 201, body
    _, _, pod = devcluster.request("GET", f"{pods}/e")
    assert pod["spec"]["nodeName"] == "devcluster-node-1"
    assert {"type": "PodScheduled", "status": "True"}.items() <= pod["status"]["conditions"][
        0
    ].items()
    status, _, _ = devcluster.request(
        "POST",
        f"{pods}/e/binding",
        {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": "e"},
            "target": {"kind": "Node", "name": "devcluster-node-2"},
        },
    )
    assert status == 409
    # A running, ready pod protected by a PDB cannot be evicted.
    devcluster.request(
        "PATCH",
        f"{pods}/e/status",
        {"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}},
        content_type="application/merge-patch+json",
    )
    devcluster.request(
        "POST",
        f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets",
        {
            "metadata": {"name": "keep"},
            "spec": {"minAvailable": 1, "selector": {"matchLabels": {"app": "e"}}},
        },
    )
    eviction = {
        "apiVersion": "policy/v1",
        "kind": "Eviction",
        "metadata": {"name": "e"},
        "deleteOptions": {"gracePeriodSeconds": 0},
    }
    status, _, body = devcluster.request("POST", f"{pods}/e/eviction", eviction)
    assert (status, body["reason"]) == (429, "TooManyRequests")
    devcluster.request(
        "DELETE", f"/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets/keep"
    )
    status, _, _ = devcluster.request("POST", f"{pods}/e/eviction", eviction)
    assert status == 201
    assert devcluster.request("GET", f"{pods}/e")[0] == 404


def test_partial_object_metadata_and_delete_preconditions(devcluster, namespace):
    base = f"/api/v1/namespaces/{namespace}/configmaps"
    _, _, created = devcluster.request("POST", base, cm("pm"))
    accept = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io"
    _, _, listed = devcluster.request("GET", base, headers={"Accept": accept})
    assert listed["kind"] == "PartialObjectMetadataList"
    assert listed["items"][0]["metadata"]["name"] == "pm" and "data" not in listed["items"][0]
    status, _, body = devcluster.request(
        "DELETE", f"{base}/pm", {"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}}
    )
    assert status == 409 and "Precondition failed" in body["message"]
    status, _, body = devcluster.request(
        "DELETE", f"{base}/pm", {"preconditions": {"uid": created["metadata"]["uid"]}}
    )
    assert status == 200 and body["status"] == "Success"


def test_openapi_v2_json(devcluster):
    status, _, document = devcluster.request("GET", "/openapi/v2")
    assert status == 200 and document["swagger"] == "2.0"
    assert "io.k8s.api.core.v1.Pod" in document["definitions"]


def test_methods_a_resource_does_not_allow(devcluster, namespace):
    base = f"/api/v1/namespaces/{namespace}"
    devcluster.request(
        "POST",
        f"{base}/pods",
        {"metadata": {"name": "m"}, "spec": {"containers": [{"name": "c", "image": "i"}]}},
    )
    for method, path in (
        ("GET", f"{base}/pods/m/eviction"),
        ("PUT", f"{base}/pods/m/log"),
        ("PUT", f"{base}/configmaps"),
        ("DELETE", "/api/v1/namespaces"),
    ):
        status, _, body = devcluster.request(method, path, {})
        assert (status, body["reason"]) == (405, "MethodNotAllowed"), (method, path)
