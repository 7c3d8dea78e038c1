"""A patch is type- and field-checked where it writes (the stored rest was checked when it
was written): the answers for bad patches stay those of a whole-object check."""
from __future__ import annotations

import json

import pytest

from tests.conftest import Cluster

PODS = "/api/v1/namespaces/default/pods"
SMP = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
JSONPATCH = "application/json-patch+json"


@pytest.fixture(scope="module")
def pod(cluster: Cluster) -> str:
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"containers": [{"name": "a", "image": "nginx"},
                                    {"name": "b", "image": "nginx",
                                     "ports": [{"containerPort": 80}]}]}}
    status, made = cluster.json("POST", PODS, body)
    assert status == 201, made
    return f"{PODS}/web"


def patch(cluster: Cluster, url: str, body: object, ctype: str = SMP) -> tuple[int, dict, dict]:
    status, headers, raw = cluster.request("PATCH", url, body, content_type=ctype)
    return status, headers, json.loads(raw)


def rv(cluster: Cluster, url: str) -> str:
    return cluster.json("GET", url)[1]["metadata"]["resourceVersion"]


def test_a_wrong_type_in_a_status_patch_is_a_400_and_writes_nothing(cluster, pod) -> None:
    before = rv(cluster, pod)
    status, _, body = patch(cluster, pod + "/status", {"status": {"containerStatuses": [
        {"name": "a", "ready": True, "restartCount": "x", "image": "nginx", "imageID": ""}]}})
    assert status == 400 and body["reason"] == "BadRequest"
    assert body["message"] == (
        'Pod in version "v1" cannot be handled as a Pod: json: cannot unmarshal string into '
        "Go struct field ContainerStatus.status.containerStatuses.restartCount of type int32")
    assert rv(cluster, pod) == before


def test_nulls_a_status_patch_brings_decode_like_upstream(cluster, pod) -> None:
    status, _, body = patch(cluster, pod + "/status", {"status": {"conditions": [
        {"type": "Ready", "status": "True", "lastProbeTime": None}], "podIP": None}})
    assert status == 200, body
    ready = [c for c in body["status"]["conditions"] if c["type"] == "Ready"]
    assert ready == [{"type": "Ready", "status": "True"}]  # a null struct field is unset
    assert "podIP" not in body["status"]
    assert cluster.json("GET", pod)[1]["status"]["conditions"] == body["status"]["conditions"]


def test_unknown_fields_of_a_patch_warn_or_fail_with_their_path(cluster, pod) -> None:
    before = rv(cluster, pod)
    status, _, body = patch(cluster, pod + "?fieldValidation=Strict",
                            {"spec": {"containers": [{"name": "b", "bogus": 1}]}})
    assert status == 400
    # the path is the field's place in the patched pod (container "b" is the second)
    assert body["message"].endswith('strict decoding error: unknown field '
                                    '"spec.containers[1].bogus"')
    assert rv(cluster, pod) == before
    status, headers, body = patch(cluster, pod + "/status", {"status": {"bogus": 1}})
    assert status == 200 and "bogus" not in body["status"]
    assert 'unknown field \\"status.bogus\\"' in headers.get("Warning", ""), headers
    status, _, body = patch(cluster, pod, {"bogus": {"x": 1}}, MERGE)
    assert status == 200 and "bogus" not in body


def test_json_patches_are_checked_everywhere(cluster, pod) -> None:
    before = rv(cluster, pod)
    ops = [{"op": "copy", "from": "/metadata/name", "path": "/spec/activeDeadlineSeconds"}]
    status, _, body = patch(cluster, pod, ops, JSONPATCH)
    assert status == 400 and "activeDeadlineSeconds of type int64" in body["message"]
    assert rv(cluster, pod) == before


def test_directives_and_metadata_patches_still_apply(cluster, pod) -> None:
    status, _, body = patch(cluster, pod, {"metadata": {"labels": {"tier": "web"}}}, MERGE)
    assert status == 200 and body["metadata"]["labels"] == {"tier": "web"}
    status, _, body = patch(cluster, pod, {"$retainKeys": ["apiVersion"],
                                           "metadata": {"annotations": {"a": "b"}}})
    assert status in (200, 400, 422), body  # whatever it is, it is not a 500
    status, _, body = patch(cluster, pod, {"metadata": {
        "$setElementOrder/finalizers": ["x"], "annotations": {"c": "d"}}})
    assert status == 200 and body["metadata"]["annotations"]["c"] == "d"
