"""Field ownership (managedFields) and server-side apply, against the v1.33 schemas."""
from __future__ import annotations

import pytest

from pybernetes.machinery import errors
from pybernetes.machinery import fieldpath as fp
from pybernetes.machinery import managed_fields as mf

DEPLOYMENT = fp.root("io.k8s.api.apps.v1.Deployment")
CONFIGMAP = fp.root("io.k8s.api.core.v1.ConfigMap")


def deployment(replicas: int = 1, image: str = "nginx:1", **spec) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": image}]}},
                     **spec}}


def owners(obj: dict) -> dict[tuple[str, str], set[str]]:
    return {(e.manager, e.operation): {fp.readable(p) for p in e.fields}
            for e in mf.decode(obj["metadata"].get("managedFields"))}


def test_field_sets_follow_the_schema_list_and_map_types():
    paths = {fp.readable(p) for p in fp.field_set(mf.tracked_part(deployment(), ""), DEPLOYMENT)}
    assert paths == {
        ".metadata.labels.app", ".spec.replicas",
        ".spec.selector",                                   # LabelSelector is an atomic map
        ".spec.template.metadata.labels.app",
        '.spec.template.spec.containers[name="c"]',         # keyed list item
        '.spec.template.spec.containers[name="c"].name',
        '.spec.template.spec.containers[name="c"].image'}


def test_keyed_items_use_defaulted_keys_and_sets_use_values():
    pod = fp.root("io.k8s.api.core.v1.Pod")
    obj = {"metadata": {"finalizers": ["a/b"]},
           "spec": {"containers": [{"name": "c", "ports": [{"containerPort": 80}]}]}}
    paths = fp.field_set(obj, pod)
    assert ("f:metadata", "f:finalizers", 'v:"a/b"') in paths
    assert ("f:spec", "f:containers", 'k:{"name":"c"}', "f:ports",
            'k:{"containerPort":80,"protocol":"TCP"}') in paths


def test_fields_v1_round_trip_marks_members_with_children():
    paths = fp.field_set(mf.tracked_part(deployment(), ""), DEPLOYMENT)
    encoded = fp.to_fields_v1(paths)
    item = encoded["f:spec"]["f:template"]["f:spec"]["f:containers"]['k:{"name":"c"}']
    assert item["."] == {} and item["f:image"] == {}
    assert "." not in encoded["f:spec"]
    assert fp.from_fields_v1(encoded) == paths
    with pytest.raises(ValueError):
        fp.from_fields_v1({"x:y": {}})


def test_an_update_moves_ownership_of_what_it_changed():
    created = deployment()
    mf.record_update(None, created, "kubectl-create", DEPLOYMENT)
    scaled = deployment(replicas=3)
    scaled["metadata"]["managedFields"] = created["metadata"]["managedFields"]
    mf.record_update(created, scaled, "kubectl-scale", DEPLOYMENT)
    who = owners(scaled)
    assert who[("kubectl-scale", "Update")] == {".spec.replicas"}
    assert ".spec.replicas" not in who[("kubectl-create", "Update")]


def test_apply_conflicts_with_another_managers_field_unless_forced():
    live = deployment()
    mf.record_update(None, live, "kubectl-create", DEPLOYMENT)
    with pytest.raises(errors.StatusError) as e:
        mf.apply(live, deployment(replicas=5), "ci", DEPLOYMENT)
    assert e.value.code == 409
    assert e.value.message == ('Apply failed with 1 conflict: conflict with "kubectl-create" '
                                 'using apps/v1: .spec.replicas')
    forced = mf.apply(live, deployment(replicas=5), "ci", DEPLOYMENT, force=True)
    assert forced["spec"]["replicas"] == 5
    assert ".spec.replicas" in owners(forced)[("ci", "Apply")]
    assert ".spec.replicas" not in owners(forced)[("kubectl-create", "Update")]


def test_same_value_is_shared_not_a_conflict():
    live = deployment()
    mf.record_update(None, live, "kubectl-create", DEPLOYMENT)
    shared = mf.apply(live, deployment(), "ci", DEPLOYMENT)
    who = owners(shared)
    assert ".spec.replicas" in who[("ci", "Apply")] & who[("kubectl-create", "Update")]


def test_apply_removes_what_the_manager_stopped_applying():
    first = mf.apply(None, deployment(minReadySeconds=5), "ci", DEPLOYMENT)
    second = mf.apply(first, deployment(), "ci", DEPLOYMENT)
    assert "minReadySeconds" not in second["spec"]
    # ...but not what another manager also owns
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"},
          "data": {"a": "1", "b": "2"}}
    one = mf.apply(None, cm, "one", CONFIGMAP)
    both = mf.apply(one, {**cm, "data": {"b": "2"}}, "two", CONFIGMAP)
    after = mf.apply(both, {**cm, "data": {"a": "1"}}, "one", CONFIGMAP)
    assert after["data"] == {"a": "1", "b": "2"}
    final = mf.apply(after, {**cm, "data": {}}, "two", CONFIGMAP)
    assert final["data"] == {"a": "1"}


def test_merge_keeps_list_items_by_key_and_replaces_atomic_values():
    live = deployment()
    live["spec"]["template"]["spec"]["containers"].append({"name": "sidecar", "image": "s:1"})
    config = deployment(image="nginx:2")
    merged = fp.merge(live, config, DEPLOYMENT)
    containers = merged["spec"]["template"]["spec"]["containers"]
    assert [(c["name"], c["image"]) for c in containers] == [("c", "nginx:2"), ("sidecar", "s:1")]
    config["spec"]["selector"] = {"matchExpressions": [{"key": "app", "operator": "Exists"}]}
    assert "matchLabels" not in fp.merge(live, config, DEPLOYMENT)["spec"]["selector"]


def test_manager_names_are_checked():
    with pytest.raises(errors.StatusError) as e:
        mf.check_manager("", apply_patch=True)
    assert e.value.code == 422 and "fieldManager: Required value" in e.value.message
    with pytest.raises(errors.StatusError):
        mf.check_manager("x" * 129, apply_patch=False)
    assert mf.manager_from_user_agent("kubectl/v1.33.0 (linux/amd64)") == "kubectl"


def test_fields_v1_edits_keep_membership_markers():
    tree: dict = {}
    fp.fields_v1_add(tree, ("f:data", "f:a"))
    fp.fields_v1_add(tree, ("f:data",))
    assert tree == {"f:data": {".": {}, "f:a": {}}}
    assert fp.fields_v1_remove(tree, ("f:data", "f:a"))
    assert tree == {"f:data": {}}                         # data alone, still a member
    assert not fp.fields_v1_remove(tree, ("f:spec",))
    fp.fields_v1_add(tree, ("f:spec", "f:template", "f:spec", "f:x"))
    assert fp.fields_v1_remove(tree, ("f:spec", "f:template", "f:spec", "f:x"))
    assert tree == {"f:data": {}}                         # empty parents go with it
    assert not fp.fields_v1_has(tree, ("f:spec",))


def test_a_status_write_leaves_spec_owners_alone():
    pod = fp.root("io.k8s.api.core.v1.Pod")
    old = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
           "spec": {"containers": [{"name": "c", "image": "i"}]}}
    mf.record_update(None, old, "kube-controller-manager", pod)
    new = {**old, "status": {"phase": "Running", "podIP": "10.42.0.5"}}
    mf.record_update(old, new, "kubelet", pod, "status")
    entries = {(e["manager"], e.get("subresource", "")): e for e in new["metadata"]["managedFields"]}
    assert entries[("kubelet", "status")]["fieldsV1"] == {"f:status": {"f:phase": {}, "f:podIP": {}}}
    assert entries[("kube-controller-manager", "")] is old["metadata"]["managedFields"][0]
