"""JSON patch, merge patch and strategic merge patch against upstream semantics."""
from __future__ import annotations

import copy

import pytest

from pybernetes.machinery.errors import StatusError
from pybernetes.machinery.patch import json_patch, merge_patch, strategic_merge_patch

POD = "io.k8s.api.core.v1.Pod"
DEPLOY = "io.k8s.api.apps.v1.Deployment"


def pod() -> dict:
    return {"metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]},
            "spec": {"containers": [
                {"name": "a", "image": "i1", "env": [{"name": "E1", "value": "1"},
                                                     {"name": "E2", "value": "2"}],
                 "ports": [{"containerPort": 80, "protocol": "TCP"}]},
                {"name": "b", "image": "i2"}],
                "tolerations": [{"key": "k1", "operator": "Exists"}],
                "volumes": [{"name": "v", "emptyDir": {}}],
                "nodeSelector": {"disk": "ssd"}}}


def smp(patch: dict, doc: dict | None = None, name: str = POD) -> dict:
    return strategic_merge_patch(copy.deepcopy(doc or pod()), patch, name)


# ----- JSON patch ---------------------------------------------------------------------------
def test_json_patch_ops():
    doc = {"a": {"b": [1, 2]}, "c": "x"}
    out = json_patch(copy.deepcopy(doc), [
        {"op": "add", "path": "/a/b/1", "value": 9},
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "replace", "path": "/c", "value": "y"},
        {"op": "test", "path": "/c", "value": "y"},
        {"op": "copy", "from": "/c", "path": "/d"},
        {"op": "move", "from": "/d", "path": "/a/e"},
        {"op": "remove", "path": "/a/b/0"},
        {"op": "add", "path": "/k~1v", "value": {"x~y": 1}},
    ])
    assert out == {"a": {"b": [9, 2, 3], "e": "y"}, "c": "y", "k/v": {"x~y": 1}}


@pytest.mark.parametrize("op,cause", [
    ({"op": "remove", "path": "/spec/foo/bar"},
     'remove operation does not apply: doc is missing path: "/spec/foo/bar": missing value'),
    ({"op": "replace", "path": "/spec/foo", "value": 1},
     "replace operation does not apply: doc is missing key: /spec/foo: missing value"),
    ({"op": "test", "path": "/spec/x", "value": 2}, "testing value /spec/x failed: test failed"),
    ({"op": "add", "path": "/nope/x", "value": 1},
     'add operation does not apply: doc is missing path: "/nope/x": missing value'),
    ({"op": "frob", "path": "/spec"}, "Unexpected kind: frob"),
])
def test_json_patch_failures_are_422_with_cause(op, cause):
    with pytest.raises(StatusError) as ei:
        json_patch({"spec": {"x": 1}}, [op])
    e = ei.value
    assert e.code == 422 and e.reason == "Invalid"
    assert e.message == "the server rejected our request due to an error in our request"
    assert e.details["causes"] == [{"message": cause}]


def test_json_patch_is_atomic_on_copy_semantics():
    doc = {"a": [1]}
    out = json_patch(doc, [{"op": "add", "path": "/b", "value": {"x": 1}},
                           {"op": "copy", "from": "/b", "path": "/c"}])
    out["c"]["x"] = 2
    assert out["b"] == {"x": 1}  # copies are deep


# ----- merge patch --------------------------------------------------------------------------
def test_merge_patch_rfc7386_examples():
    target = {"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"},
              "tags": ["example", "sample"], "content": "This will be unchanged"}
    patch = {"title": "Hello!", "phoneNumber": "+01-123-456-7890",
             "author": {"familyName": None}, "tags": ["example"]}
    assert merge_patch(target, patch) == {
        "title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
        "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"}
    assert merge_patch({"a": "b"}, {"a": {"b": None, "c": "d"}}) == {"a": {"c": "d"}}
    assert merge_patch({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}
    assert merge_patch(["a"], {"a": "b"}) == {"a": "b"}


# ----- strategic merge patch ----------------------------------------------------------------
def test_containers_merge_by_name_keeping_live_order():
    out = smp({"spec": {"containers": [{"name": "b", "image": "new"}, {"name": "c", "image": "i3"}]}})
    assert [(c["name"], c["image"]) for c in out["spec"]["containers"]] == [
        ("a", "i1"), ("b", "new"), ("c", "i3")]
    assert out["spec"]["containers"][0]["env"]  # untouched container kept whole


def test_new_items_go_first_when_not_anchored():
    # upstream's mergeSortedSlice puts patch items not in the live list before server-only ones
    out = smp({"spec": {"containers": [{"name": "c", "image": "i3"}]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["c", "a", "b"]


def test_env_merged_by_name_ports_by_container_port():
    out = smp({"spec": {"containers": [{"name": "a", "env": [{"name": "E2", "value": "x"},
                                                             {"name": "E3", "value": "3"}],
                                        "ports": [{"containerPort": 80, "name": "http"},
                                                  {"containerPort": 443}]}]}})
    a = out["spec"]["containers"][0]
    assert a["env"] == [{"name": "E1", "value": "1"}, {"name": "E2", "value": "x"},
                        {"name": "E3", "value": "3"}]
    assert a["ports"] == [{"containerPort": 80, "protocol": "TCP", "name": "http"},
                          {"containerPort": 443}]
    assert a["image"] == "i1"


def test_lists_without_strategy_are_replaced():
    out = smp({"spec": {"tolerations": [{"key": "k2"}]}})
    assert out["spec"]["tolerations"] == [{"key": "k2"}]
    out = smp({"spec": {"containers": [{"name": "a", "args": ["x"]}]}},
              doc={"spec": {"containers": [{"name": "a", "args": ["1", "2"]}]}})
    assert out["spec"]["containers"][0]["args"] == ["x"]


def test_maps_merge_and_null_deletes():
    out = smp({"metadata": {"labels": {"a": None, "c": "3"}}, "spec": {"nodeSelector": None}})
    assert out["metadata"]["labels"] == {"b": "2", "c": "3"}
    assert "nodeSelector" not in out["spec"]
    out = smp({"spec": {"hostname": None, "newField": {"x": None, "y": 1}}})
    assert out["spec"]["newField"] == {"y": 1}  # unmatched nulls are dropped


def test_primitive_merge_list_union_and_delete_from_primitive_list():
    out = smp({"metadata": {"finalizers": ["z", "x"]}})
    assert out["metadata"]["finalizers"] == ["z", "x", "y"]
    out = smp({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}})
    assert out["metadata"]["finalizers"] == ["y"]
    out = smp({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"], "finalizers": ["q"]}})
    assert sorted(out["metadata"]["finalizers"]) == ["q", "y"]


def test_patch_delete_and_replace_directives_in_lists():
    out = smp({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["b"]
    out = smp({"spec": {"containers": [{"name": "z", "image": "q"}, {"$patch": "replace"}]}})
    assert out["spec"]["containers"] == [{"name": "z", "image": "q"}]


def test_patch_replace_and_delete_directives_in_maps():
    out = smp({"metadata": {"labels": {"$patch": "replace", "only": "me"}}})
    assert out["metadata"]["labels"] == {"only": "me"}
    out = smp({"spec": {"nodeSelector": {"$patch": "delete"}}})
    assert out["spec"]["nodeSelector"] == {}
    out = smp({"spec": {"$patch": "replace", "containers": [{"name": "x", "image": "y"}]}})
    assert out["spec"] == {"containers": [{"name": "x", "image": "y"}]}


def test_set_element_order_as_sent_by_kubectl_apply():
    out = smp({"spec": {"$setElementOrder/containers": [{"name": "b"}, {"name": "c"}, {"name": "a"}],
                        "containers": [{"name": "c", "image": "i3"}]}})
    assert [c["name"] for c in out["spec"]["containers"]] == ["b", "c", "a"]
    out = smp({"metadata": {"$setElementOrder/finalizers": ["y", "n", "x"], "finalizers": ["n"]}})
    assert out["metadata"]["finalizers"] == ["y", "n", "x"]


def test_set_element_order_mismatch_is_an_error():
    with pytest.raises(StatusError) as ei:
        smp({"spec": {"$setElementOrder/containers": [{"name": "a"}],
                      "containers": [{"name": "zz", "image": "i"}]}})
    assert "doesn't match $setElementOrder list" in ei.value.message


def test_retain_keys_on_deployment_strategy_and_volumes():
    d = {"spec": {"strategy": {"type": "RollingUpdate",
                               "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                  "template": {"spec": {"volumes": [{"name": "v", "emptyDir": {}}],
                                        "containers": [{"name": "c", "image": "i"}]}}}}
    out = smp({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}, d, DEPLOY)
    assert out["spec"]["strategy"] == {"type": "Recreate"}
    out = smp({"spec": {"template": {"spec": {"volumes": [
        {"name": "v", "$retainKeys": ["configMap", "name"], "configMap": {"name": "cm"}}]}}}},
        d, DEPLOY)
    assert out["spec"]["template"]["spec"]["volumes"] == [{"name": "v", "configMap": {"name": "cm"}}]
    with pytest.raises(StatusError) as ei:
        smp({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}, d, DEPLOY)
    assert ei.value.code == 400 and ei.value.message == "invalid patch format of retainKeys"


def test_missing_merge_key_is_an_error():
    with pytest.raises(StatusError) as ei:
        smp({"spec": {"containers": [{"image": "nginx"}]}})
    assert ei.value.message == "map: map[image:nginx] does not contain declared merge key: name"


def test_new_fields_lose_directives_and_nulls():
    out = smp({"spec": {"affinity": {"nodeAffinity": {"x": None, "$patch": "merge"}}}})
    assert out["spec"]["affinity"] == {}  # a nested map carrying $patch is dropped, as upstream
    out = smp({"spec": {"initContainers": [{"name": "i", "image": "x", "args": None}]}})
    assert out["spec"]["initContainers"] == [{"name": "i", "image": "x"}]


def test_service_ports_merge_by_port():
    svc = {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443}],
                    "selector": {"app": "a"}}}
    out = smp({"spec": {"ports": [{"port": 80, "targetPort": 9090}], "selector": {"tier": "x"}}},
              svc, "io.k8s.api.core.v1.Service")
    assert out["spec"]["ports"] == [{"port": 80, "targetPort": 9090}, {"port": 443}]
    assert out["spec"]["selector"] == {"app": "a", "tier": "x"}


def test_unknown_schema_replaces_lists_and_merges_maps():
    out = strategic_merge_patch({"a": {"x": 1}, "l": [1, 2]}, {"a": {"y": 2}, "l": [3]},
                                "no.such.Definition")
    assert out == {"a": {"x": 1, "y": 2}, "l": [3]}
