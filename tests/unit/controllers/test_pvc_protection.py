"""Which pods hold a claim (upstream's podUsesPVC) and which volumes are in use."""
from __future__ import annotations

from pybernetes.controllers.pv_protection import volume_in_use
from pybernetes.controllers.pvc_protection import claim_keys, pod_uses_claim, with_finalizer


def pod(node: str = "n1", **meta) -> dict:
    return {"metadata": {"name": "web", "namespace": "ns", "uid": "pod-uid", **meta},
            "spec": {"nodeName": node, "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": "data"}},
                {"name": "scratch", "ephemeral": {"volumeClaimTemplate": {"spec": {}}}},
                {"name": "tmp", "emptyDir": {}}]}}


def pvc(name: str, owner_uid: str = "") -> dict:
    md: dict = {"name": name, "namespace": "ns"}
    if owner_uid:
        md["ownerReferences"] = [{"kind": "Pod", "name": "web", "uid": owner_uid,
                                  "controller": True}]
    return {"metadata": md}


def test_claim_keys_index_both_kinds_of_claim():
    assert claim_keys(pod()) == ["ns/data", "ns/web-scratch"]


def test_scheduled_pod_holds_its_claim_whatever_its_phase():
    assert pod_uses_claim(pod(), pvc("data"))
    assert pod_uses_claim({**pod(), "status": {"phase": "Succeeded"}}, pvc("data"))
    assert not pod_uses_claim(pod(node=""), pvc("data"))
    assert not pod_uses_claim(pod(), pvc("other"))


def test_ephemeral_claim_held_only_by_its_owner_until_shut_down():
    assert pod_uses_claim(pod(), pvc("web-scratch", owner_uid="pod-uid"))
    assert not pod_uses_claim(pod(), pvc("web-scratch", owner_uid="someone-else"))
    gone = pod(deletionTimestamp="2025-01-01T00:00:00Z", deletionGracePeriodSeconds=0)
    assert not pod_uses_claim(gone, pvc("web-scratch", owner_uid="pod-uid"))
    assert pod_uses_claim(gone, pvc("data"))  # a plain claim waits for the object to go


def test_finalizer_edits_keep_the_others():
    obj = {"metadata": {"name": "x", "finalizers": ["a", "kubernetes.io/pvc-protection"]}}
    assert with_finalizer(obj, "kubernetes.io/pvc-protection", False)["metadata"][
        "finalizers"] == ["a"]
    assert with_finalizer({"metadata": {"name": "x"}}, "f", True)["metadata"][
        "finalizers"] == ["f"]


def test_only_a_bound_volume_is_in_use():
    assert volume_in_use({"status": {"phase": "Bound"}})
    assert not volume_in_use({"status": {"phase": "Released"}})
    assert not volume_in_use({})
