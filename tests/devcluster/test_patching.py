"""Patch semantics on plain dicts: strategic merge directives, merge patch, JSON patch, apply."""

from __future__ import annotations

import pytest

from devcluster import patching
from devcluster.errors import ApiError

POD = {"$ref": "#/$defs/io.k8s.api.core.v1.Pod"}


def pod(*containers: dict) -> dict:
    return {"metadata": {"name": "p"}, "spec": {"containers": list(containers)}}


def test_strategic_merge_list_by_key_and_delete_directive():
    original = pod({"name": "a", "image": "1"}, {"name": "b", "image": "2"})
    patch = {
        "spec": {
            "containers": [{"name": "b", "$patch": "delete"}, {"name": "c", "image": "3"}],
            "$setElementOrder/containers": [{"name": "a"}, {"name": "c"}],
        }
    }
    merged = patching.strategic_merge(original, patch, POD)
    assert merged["spec"]["containers"] == [
        {"name": "a", "image": "1"},
        {"name": "c", "image": "3"},
    ]


def test_strategic_merge_atomic_lists_and_null_deletes():
    original = pod({"name": "a", "image": "1", "args": ["x", "y"], "workingDir": "/w"})
    patch = {"spec": {"containers": [{"name": "a", "args": ["z"], "workingDir": None}]}}
    merged = patching.strategic_merge(original, patch, POD)
    assert merged["spec"]["containers"] == [{"name": "a", "image": "1", "args": ["z"]}]


def test_strategic_merge_retain_keys_and_replace():
    original = {"spec": {"strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1}}}}
    patch = {"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}
    schema = {"$ref": "#/$defs/io.k8s.api.apps.v1.Deployment"}
    assert patching.strategic_merge(original, patch, schema)["spec"]["strategy"] == {
        "type": "Recreate"
    }
    replaced = patching.strategic_merge(original, {"spec": {"$patch": "replace", "x": 1}}, schema)
    assert replaced["spec"] == {"x": 1}


def test_merge_patch_rfc7386():
    assert patching.merge_patch(
        {"a": {"b": 1, "c": 2}, "d": [1]}, {"a": {"b": None, "e": 3}, "d": [2]}
    ) == {"a": {"c": 2, "e": 3}, "d": [2]}


def test_json_patch_operations_and_failures():
    doc = {"a": [1, 2], "b": {"c": 1}}
    patched = patching.json_patch(
        doc,
        [
            {"op": "add", "path": "/a/-", "value": 3},
            {"op": "move", "from": "/b/c", "path": "/d"},
            {"op": "copy", "from": "/d", "path": "/e"},
            {"op": "test", "path": "/e", "value": 1},
        ],
    )
    assert patched == {"a": [1, 2, 3], "b": {}, "d": 1, "e": 1}
    assert doc == {"a": [1, 2], "b": {"c": 1}}  # the original is untouched
    with pytest.raises(ApiError) as caught:
        patching.json_patch(doc, [{"op": "replace", "path": "/missing", "value": 1}])
    assert caught.value.code == 422


def test_apply_field_sets_use_list_map_keys():
    applied = pod({"name": "a", "image": "1"})
    fields = patching.field_set(applied, POD)
    assert fields["f:spec"]["f:containers"] == {
        'k:{"name":"a"}': {".": {}, "f:name": {}, "f:image": {}}
    }
    live = pod({"name": "a", "image": "1"}, {"name": "b", "image": "2"})
    previous = patching.field_set(live, POD)
    merged = patching.apply_merge(live, applied, POD)
    patching.remove_unapplied(merged, previous, fields)
    assert merged["spec"]["containers"] == [{"name": "a", "image": "1"}]
