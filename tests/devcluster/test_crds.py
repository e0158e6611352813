"""CustomResourceDefinitions: serving, structural schemas, subresources, immutability."""

from __future__ import annotations

import copy
import time

GROUP = "/apis/test.devcluster.io/v1"


def widget(object_name: str, **spec) -> dict:
    return {
        "apiVersion": "test.devcluster.io/v1",
        "kind": "Widget",
        "metadata": {"name": object_name},
        "spec": {"size": 1, **spec},
    }


def test_crd_is_established_and_served(devcluster, widget_crd):
    _, _, crd = devcluster.request(
        "GET", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/widgets.test.devcluster.io"
    )
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    _, _, resources = devcluster.request("GET", GROUP)
    names = {r["name"]: r for r in resources["resources"]}
    assert names["widgets"]["shortNames"] == ["wd"]
    assert names["widgets"]["categories"] == ["all"]
    assert {"widgets/status", "widgets/scale"} <= set(names)


def test_validation_with_field_paths(devcluster, widget_crd, namespace):
    base = f"{GROUP}/namespaces/{namespace}/widgets"
    bad = widget("bad", size=0, color="green")
    status, _, body = devcluster.request("POST", base, bad)
    assert (status, body["reason"]) == (422, "Invalid")
    fields = sorted(c["field"] for c in body["details"]["causes"])
    assert fields == ["spec.color", "spec.size"]
    assert 'Widget.test.devcluster.io "bad" is invalid' in body["message"]
    missing = widget("missing")
    del missing["spec"]["size"]
    status, _, body = devcluster.request("POST", base, missing)
    assert status == 422 and body["details"]["causes"][0]["field"] == "spec.size"
    wrong_type = widget("wrongtype", size="three")
    status, _, body = devcluster.request("POST", base, wrong_type)
    assert status == 422 and "must be of type integer" in body["message"]


def test_defaulting_and_pruning(devcluster, widget_crd, namespace):
    base = f"{GROUP}/namespaces/{namespace}/widgets"
    body = widget("prune", extra={"kept": {"deep": [1, 2]}}, unknown="dropped")
    body["topLevel"] = "dropped"
    status, headers, created = devcluster.request("POST", base, body)
    assert status == 201, created
    assert created["spec"] == {"size": 1, "color": "blue", "extra": {"kept": {"deep": [1, 2]}}}
    assert "topLevel" not in created
    assert "unknown field" in headers["Warning"]
    status, _, answer = devcluster.request(
        "POST", base + "?fieldValidation=Strict", widget("strict", unknown=1)
    )
    assert status == 400 and 'unknown field "spec.unknown"' in answer["message"]


def test_status_subresource_is_separate_and_pruned(devcluster, widget_crd, namespace):
    base = f"{GROUP}/namespaces/{namespace}/widgets"
    body = widget("st")
    body["status"] = {"phase": "ignored-on-create"}
    _, _, created = devcluster.request("POST", base, body)
    assert "status" not in created
    merge = "application/merge-patch+json"
    _, _, patched = devcluster.request(
        "PATCH",
        f"{base}/st/status",
        {"status": {"phase": "Ready", "undeclared": 1}, "spec": {"size": 9}},
        content_type=merge,
    )
    assert patched["status"] == {"phase": "Ready"}
    assert patched["spec"]["size"] == 1
    assert patched["metadata"]["generation"] == 1
    _, _, main = devcluster.request(
        "PATCH",
        f"{base}/st",
        {"status": {"phase": "Nope"}, "spec": {"size": 2}},
        content_type=merge,
    )
    assert main["status"] == {"phase": "Ready"} and main["spec"]["size"] == 2
    assert main["metadata"]["generation"] == 2


def test_strategic_merge_patch_is_refused_for_custom_resources(devcluster, widget_crd, namespace):
    base = f"{GROUP}/namespaces/{namespace}/widgets"
    devcluster.request("POST", base, widget("smp"))
    status, _, body = devcluster.request(
        "PATCH",
        f"{base}/smp",
        {"spec": {"size": 2}},
        content_type="application/strategic-merge-patch+json",
    )
    assert (status, body["reason"]) == (415, "UnsupportedMediaType")


def test_immutable_field_rule(devcluster, widget_crd, namespace):
    base = f"{GROUP}/namespaces/{namespace}/widgets"
    devcluster.request("POST", base, widget("imm", name="first"))
    status, _, body = devcluster.request(
        "PATCH",
        f"{base}/imm",
        {"spec": {"name": "second"}},
        content_type="application/merge-patch+json",
    )
    assert status == 422
    assert body["details"]["causes"][0]["field"] == "spec.name"
    assert "name is immutable" in body["message"]
    status, _, _ = devcluster.request(
        "PATCH", f"{base}/imm", {"spec": {"size": 4}}, content_type="application/merge-patch+json"
    )
    assert status == 200


def test_unknown_cel_rule_is_refused_at_crd_creation(devcluster, widget_crd):
    crd = copy.deepcopy(widget_crd)
    crd["metadata"]["name"] = "gadgets.test.devcluster.io"
    crd["spec"]["names"] = {"plural": "gadgets", "kind": "Gadget"}
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"]["x-kubernetes-validations"] = [
        {"rule": "self.all(x, x > 0)", "message": "positive"}
    ]
    status, _, body = devcluster.request(
        "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd
    )
    assert status == 422
    assert "cannot evaluate this CEL rule" in body["message"]
    assert "x-kubernetes-validations[0].rule" in body["details"]["causes"][0]["field"]


def test_cel_rules_beyond_immutability(devcluster, widget_crd, namespace):
    crd = copy.deepcopy(widget_crd)
    crd["metadata"]["name"] = "doohickeys.test.devcluster.io"
    crd["spec"]["names"] = {"plural": "doohickeys", "kind": "Doohickey"}
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    schema["properties"]["spec"]["x-kubernetes-validations"] = [
        {"rule": "self.size <= 10", "message": "size is at most 10"},
        {"rule": "has(self.color) == has(oldSelf.color)", "message": "color stays"},
    ]
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    assert devcluster.request("POST", path, crd)[0] == 201
    base = f"{GROUP}/namespaces/{namespace}/doohickeys"
    body = {
        "apiVersion": "test.devcluster.io/v1",
        "kind": "Doohickey",
        "metadata": {"name": "d"},
        "spec": {"size": 11},
    }
    status, _, answer = devcluster.request("POST", base, body)
    assert status == 422 and "size is at most 10" in answer["message"]
    body["spec"]["size"] = 3
    assert devcluster.request("POST", base, body)[0] == 201
    status, _, answer = devcluster.request(
        "PATCH", f"{base}/d", {"spec": {"size": 12}}, content_type="application/merge-patch+json"
    )
    assert status == 422 and answer["details"]["causes"][0]["field"] == "spec"


def test_scale_subresource(devcluster, widget_crd, namespace):
    base = f"{GROUP}/namespaces/{namespace}/widgets"
    devcluster.request("POST", base, widget("sc", size=2))
    _, _, scale = devcluster.request("GET", f"{base}/sc/scale")
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 2
    devcluster.kubectl("-n", namespace, "scale", "widget/sc", "--replicas=5")
    _, _, obj = devcluster.request("GET", f"{base}/sc")
    assert obj["spec"]["size"] == 5


def test_deleting_the_crd_removes_its_objects(devcluster, widget_crd, namespace):
    crd = copy.deepcopy(widget_crd)
    crd["metadata"]["name"] = "gizmos.test.devcluster.io"
    crd["spec"]["names"] = {"plural": "gizmos", "kind": "Gizmo"}
    path = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    status, _, created = devcluster.request("POST", path, crd)
    assert status == 201
    assert "customresourcecleanup.apiextensions.k8s.io" in created["metadata"]["finalizers"]
    base = f"{GROUP}/namespaces/{namespace}/gizmos"
    gizmo = {
        "apiVersion": "test.devcluster.io/v1",
        "kind": "Gizmo",
        "metadata": {"name": "g", "finalizers": ["test/hold"]},
        "spec": {"size": 1},
    }
    assert devcluster.request("POST", base, gizmo)[0] == 201
    devcluster.request("DELETE", f"{path}/gizmos.test.devcluster.io")
    time.sleep(0.3)
    # The object's own finalizer holds it, and with it the CRD.
    _, _, held = devcluster.request("GET", f"{base}/g")
    assert held["metadata"]["deletionTimestamp"]
    assert devcluster.request("GET", f"{path}/gizmos.test.devcluster.io")[0] == 200
    gizmo["metadata"]["name"] = "late"
    status, _, body = devcluster.request("POST", base, gizmo)
    assert status == 405 and "terminating" in body["message"]
    devcluster.request(
        "PATCH",
        f"{base}/g",
        {"metadata": {"finalizers": None}},
        content_type="application/merge-patch+json",
    )
    deadline = time.monotonic() + 5
    while devcluster.request("GET", f"{path}/gizmos.test.devcluster.io")[0] != 404:
        assert time.monotonic() < deadline, "the CRD was never removed"
        time.sleep(0.05)
    assert devcluster.request("GET", f"{GROUP}/namespaces/{namespace}/gizmos")[0] == 404
