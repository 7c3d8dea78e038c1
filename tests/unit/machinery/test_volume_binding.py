"""Claim-to-volume matching (shared by the PV binder and the scheduler), the
scheduler's VolumeBinding decisions, the default class choice and the local-path
provisioner's volumes."""
from __future__ import annotations

from pathlib import Path

from pybernetes.admission.default_storage_class import default_class
from pybernetes.controllers.local_path_provisioner import provisioned_volume, remove_data
from pybernetes.machinery.volume_binding import find_matching_volume, node_affinity_matches
from pybernetes.scheduler.cache import PodInfo
from pybernetes.scheduler.plugins.volume_binding import (BIND_CONFLICT, NODE_CONFLICT,
                                                         UNBOUND_IMMEDIATE, VolumeBinding,
                                                         VolumeListers)
from tests.unit.scheduler.helpers import cluster, node, pod, schedule


def pvc(name: str = "data", size: str = "1Gi", cls: str = "", modes=("ReadWriteOnce",),
        **spec) -> dict:
    return {"metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": {"accessModes": list(modes), "storageClassName": cls,
                     "resources": {"requests": {"storage": size}}, **spec},
            "status": {"phase": "Pending"}}


def pv(name: str, size: str, cls: str = "", modes=("ReadWriteOnce",), labels=None,
       phase: str = "Available", on_node: str = "", **spec) -> dict:
    if on_node:
        spec["nodeAffinity"] = {"required": {"nodeSelectorTerms": [{"matchExpressions": [
            {"key": "kubernetes.io/hostname", "operator": "In", "values": [on_node]}]}]}}
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"capacity": {"storage": size}, "accessModes": list(modes),
                     "storageClassName": cls, "hostPath": {"path": f"/tmp/{name}"}, **spec},
            "status": {"phase": phase}}


def names(found: dict | None) -> str | None:
    return found["metadata"]["name"] if found else None


def test_smallest_fitting_available_volume_wins():
    vols = [pv("big", "10Gi"), pv("small", "2Gi"), pv("tiny", "500Mi"),
            pv("taken", "1Gi", claimRef={"namespace": "default", "name": "other"}),
            pv("released", "1Gi", phase="Released")]
    assert names(find_matching_volume(pvc(), vols)) == "small"


def test_class_modes_mode_and_selector_must_fit():
    assert find_matching_volume(pvc(cls="fast"), [pv("a", "5Gi")]) is None
    assert find_matching_volume(pvc(modes=("ReadWriteMany",)), [pv("a", "5Gi")]) is None
    assert find_matching_volume(pvc(volumeMode="Block"), [pv("a", "5Gi")]) is None
    sel = {"matchLabels": {"tier": "gold"}}
    vols = [pv("plain", "1Gi"), pv("gold", "5Gi", labels={"tier": "gold"})]
    assert names(find_matching_volume(pvc(selector=sel), vols)) == "gold"


def test_prebound_volume_is_taken_even_when_waiting_for_a_consumer():
    reserved = pv("mine", "1Gi", phase="Pending",
                  claimRef={"namespace": "default", "name": "data", "uid": "uid-data"})
    free = pv("free", "1Gi")
    assert names(find_matching_volume(pvc(), [free, reserved], delay=True)) == "mine"
    assert find_matching_volume(pvc(), [free], delay=True) is None  # the scheduler picks


def test_node_affinity_restricts_volumes_to_their_node():
    local = pv("local", "1Gi", on_node="n1")
    assert node_affinity_matches(local, node("n1"))
    assert not node_affinity_matches(local, node("n2"))
    assert node_affinity_matches(pv("anywhere", "1Gi"), node("n2"))
    assert find_matching_volume(pvc(), [local], node=node("n2")) is None
    assert names(find_matching_volume(pvc(), [local], node=node("n1"))) == "local"


def _listers(claims: list[dict], volumes: list[dict], classes: list[dict]) -> VolumeListers:
    by_name = {c["metadata"]["name"]: c for c in claims}
    return VolumeListers(
        pvc=lambda ns, n: by_name.get(n), pv=lambda n: next(
            (v for v in volumes if v["metadata"]["name"] == n), None),
        pvs=lambda: volumes, classes=lambda: classes,
        storage_class=lambda n: next((c for c in classes if c["metadata"]["name"] == n), None))


def _framework(claims, volumes, classes, *nodes):
    fw = cluster(*nodes)
    vb = next(p for p in fw.plugins if isinstance(p, VolumeBinding))
    vb.listers = _listers(claims, volumes, classes)
    return fw


def _using(claim_name: str) -> dict:
    return pod("app", volumes=[{"name": "d", "persistentVolumeClaim": {"claimName": claim_name}}])


WFFC = {"metadata": {"name": "local-path"}, "provisioner": "rancher.io/local-path",
        "volumeBindingMode": "WaitForFirstConsumer"}
STATIC = {"metadata": {"name": "manual"}, "provisioner": "kubernetes.io/no-provisioner",
          "volumeBindingMode": "WaitForFirstConsumer"}


def test_scheduler_follows_a_bound_volume_to_its_node():
    bound = pvc(volumeName="local")
    fw = _framework([bound], [pv("local", "1Gi", on_node="n2", phase="Bound")], [],
                    node("n1"), node("n2"))
    assert schedule(fw, _using("data")).node == "n2"
    fw = _framework([bound], [pv("local", "1Gi", on_node="n3", phase="Bound")], [],
                    node("n1"), node("n2"))
    assert schedule(fw, _using("data")).error.message().startswith(
        f"0/2 nodes are available: 2 {NODE_CONFLICT}.")


def test_scheduler_refuses_missing_and_unbound_immediate_claims():
    fw = _framework([], [], [], node("n1"))
    assert schedule(fw, _using("nope")).error.message().startswith(
        '0/1 nodes are available: persistentvolumeclaim "nope" not found.')
    fw = _framework([pvc()], [], [], node("n1"))
    assert schedule(fw, _using("data")).error.message().startswith(
        f"0/1 nodes are available: {UNBOUND_IMMEDIATE}.")


def test_wait_for_first_consumer_claims_need_a_volume_or_a_provisioner():
    fw = _framework([pvc(cls="local-path")], [], [WFFC], node("n1"), node("n2"))
    assert schedule(fw, _using("data")).node in ("n1", "n2")  # provisioned wherever
    static = [pv("on-n2", "1Gi", cls="manual", on_node="n2")]
    fw = _framework([pvc(cls="manual")], static, [STATIC], node("n1"), node("n2"))
    assert schedule(fw, _using("data")).node == "n2"
    fw = _framework([pvc(cls="manual")], [], [STATIC], node("n1"))
    assert schedule(fw, _using("data")).error.message().startswith(
        f"0/1 nodes are available: 1 {BIND_CONFLICT}.")


def test_pods_without_claims_skip_the_plugin():
    fw = _framework([], [], [], node("n1"))
    assert schedule(fw, pod("plain")).node == "n1"
    assert VolumeBinding().pre_filter({}, PodInfo.of(pod("plain")), []) is not None


def test_default_class_is_the_newest_annotated_one():
    def sc(name: str, created: str, default: bool) -> dict:
        ann = {"storageclass.kubernetes.io/is-default-class": "true"} if default else {}
        return {"metadata": {"name": name, "creationTimestamp": created, "annotations": ann}}
    assert default_class([sc("a", "2024-01-01T00:00:00Z", False)]) is None
    got = default_class([sc("old", "2024-01-01T00:00:00Z", True),
                         sc("new", "2025-01-01T00:00:00Z", True),
                         sc("plain", "2026-01-01T00:00:00Z", False)])
    assert got["metadata"]["name"] == "new"


def test_local_path_volume_and_its_removal(tmp_path: Path):
    claim = {**pvc(cls="local-path"), "metadata": {"name": "data", "namespace": "ns",
                                                   "uid": "u1", "resourceVersion": "7"}}
    sc = {"metadata": {"name": "local-path"}, "reclaimPolicy": "Delete", "parameters": {}}
    vol = provisioned_volume(claim, sc, node("n1"), "n1", str(tmp_path))
    assert vol["metadata"]["name"] == "pvc-u1"
    assert vol["spec"]["hostPath"] == {"path": str(tmp_path / "pvc-u1_ns_data"),
                                       "type": "DirectoryOrCreate"}
    assert vol["spec"]["claimRef"]["uid"] == "u1"
    assert vol["spec"]["capacity"] == {"storage": "1Gi"}
    local = provisioned_volume(claim, {**sc, "parameters": {"volumeType": "local"}},
                               None, "n1", str(tmp_path))
    assert local["spec"]["local"] == {"path": str(tmp_path / "pvc-u1_ns_data")}
    (tmp_path / "pvc-u1_ns_data").mkdir()
    (tmp_path / "pvc-u1_ns_data" / "f").write_text("x")
    assert remove_data(vol, str(tmp_path)) and not (tmp_path / "pvc-u1_ns_data").exists()
    # never a directory that is not one of ours under the storage dir
    other = {**vol, "spec": {**vol["spec"], "hostPath": {"path": str(tmp_path)}}}
    assert not remove_data(other, str(tmp_path)) and tmp_path.exists()
