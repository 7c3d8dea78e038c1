"""Persistent volumes end to end, as on k3s: a whole `pybernetes server` (controller
manager, scheduler and two fake nodes) and the real kubectl. A claim of the default
`local-path` class waits for its first pod, the scheduler picks the node and names
it on the claim, the local-path provisioner makes a volume there and the binder binds
it; deleting the claim deletes the volume. A hand-made hostPath volume binds to a
claim at once (smallest fit), is Released when the claim goes, and a pod whose claim
is missing or cannot bind is not scheduled, with upstream's words."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import Cluster, Kubectl, apply_items, wait_for

pytestmark = pytest.mark.kubectl
NODE = "pv-node"


CLUSTER_COMPONENTS = ("controller-manager", "scheduler", "kubelet")
CLUSTER_FLAGS = ("--kubelet-runtime", "fake", "--node-name", NODE, "--kubelet-arg", "fake-nodes=2")


@pytest.fixture(scope="module", autouse=True)
def nodes_ready(kubectl: Kubectl) -> None:
    wait_for("two Ready nodes", lambda: kubectl(
        "get", "nodes", "-o", "jsonpath={.items[*].status.conditions[?(@.type=='Ready')]"
        ".status}").split() == ["True", "True"], timeout=60)


def claim(name: str, size: str = "1Gi", **spec) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": {"accessModes": ["ReadWriteOnce"],
                     "resources": {"requests": {"storage": size}}, **spec}}


def pod_with(name: str, claim_name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "c", "image": "busybox",
                                     "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                     "volumes": [{"name": "data",
                                  "persistentVolumeClaim": {"claimName": claim_name}}]}}


def host_path_volume(name: str, size: str, path: str, **spec) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                     "hostPath": {"path": path}, "storageClassName": "", **spec}}


def get(kubectl: Kubectl, *what: str, ns: str | None = None) -> dict:
    args = ["get", *what, "-o", "json"] + (["-n", ns] if ns else [])
    return json.loads(kubectl(*args))


def events(kubectl: Kubectl, ns: str, name: str) -> list[tuple[str, str]]:
    items = get(kubectl, "events", "--field-selector", f"involvedObject.name={name}",
                ns=ns)["items"]
    return [(e["reason"], e["message"]) for e in items]


def field(kubectl: Kubectl, ns: str, what: str, jsonpath: str) -> str:
    return kubectl("get", what, "-n", ns, "-o", f"jsonpath={jsonpath}")


def test_default_class_is_local_path(kubectl: Kubectl):
    out = kubectl("get", "sc")
    header, *rows = out.splitlines()
    assert header.split() == ["NAME", "PROVISIONER", "RECLAIMPOLICY", "VOLUMEBINDINGMODE",
                              "ALLOWVOLUMEEXPANSION", "AGE"]
    row = next(r for r in rows if r.startswith("local-path"))
    assert row.split()[:6] == ["local-path", "(default)", "rancher.io/local-path", "Delete",
                               "WaitForFirstConsumer", "false"]


def test_claim_waits_for_its_pod_then_is_provisioned_on_its_node(
        kubectl: Kubectl, cluster: Cluster, ns: str):
    apply_items(kubectl, ns, claim("data"))
    pvc = get(kubectl, "pvc", "data", ns=ns)
    assert pvc["spec"]["storageClassName"] == "local-path"  # DefaultStorageClass admission
    wait_for("the WaitForFirstConsumer event", lambda: (
        "WaitForFirstConsumer", "waiting for first consumer to be created before binding")
        in events(kubectl, ns, "data"))
    assert field(kubectl, ns, "pvc/data", "{.status.phase}") == "Pending"

    apply_items(kubectl, ns, pod_with("app", "data"))
    node = wait_for("the pod to be scheduled",
                    lambda: field(kubectl, ns, "pod/app", "{.spec.nodeName}"))
    pvc = get(kubectl, "pvc", "data", ns=ns)
    assert pvc["metadata"]["annotations"]["volume.kubernetes.io/selected-node"] == node
    assert pvc["status"]["phase"] == "Bound"   # the pod was bound only after its claim
    uid, volume = pvc["metadata"]["uid"], pvc["spec"]["volumeName"]
    assert volume == f"pvc-{uid}"
    assert pvc["metadata"]["annotations"]["pv.kubernetes.io/bind-completed"] == "yes"
    assert pvc["status"]["capacity"] == {"storage": "1Gi"}
    assert pvc["status"]["accessModes"] == ["ReadWriteOnce"]

    pv = get(kubectl, "pv", volume)
    assert pv["status"]["phase"] == "Bound"
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/provisioned-by"] == \
        "rancher.io/local-path"
    assert pv["spec"]["hostPath"] == {
        "path": str(Path(cluster.data_dir) / "storage" / f"pvc-{uid}_{ns}_data"),
        "type": "DirectoryOrCreate"}
    assert pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0][
        "matchExpressions"][0]["values"] == [node]
    assert pv["spec"]["claimRef"]["uid"] == uid
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"
    reasons = [r for r, _ in events(kubectl, ns, "data")]
    assert {"ExternalProvisioning", "Provisioning", "ProvisioningSucceeded"} <= set(reasons)
    assert (("ProvisioningSucceeded", f"Successfully provisioned volume {volume}")
            in events(kubectl, ns, "data"))

    header, row = kubectl("get", "pvc", "data", "-n", ns).splitlines()
    assert header.split() == ["NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS", "MODES",
                              "STORAGECLASS", "VOLUMEATTRIBUTESCLASS", "AGE"]
    assert row.split()[:7] == ["data", "Bound", volume, "1Gi", "RWO", "local-path", "<unset>"]

    # reclaim policy Delete: the claim's end is the volume's end
    kubectl("delete", "pod", "app", "-n", ns, "--grace-period=0", "--force")
    kubectl("delete", "pvc", "data", "-n", ns)
    wait_for("the provisioned volume to be deleted", lambda: volume not in kubectl(
        "get", "pv", "-o", "name"))


def test_second_pod_follows_its_volume_to_the_node(kubectl: Kubectl, ns: str):
    apply_items(kubectl, ns, claim("data"), pod_with("first", "data"))
    node = wait_for("the first pod to be scheduled",
                    lambda: field(kubectl, ns, "pod/first", "{.spec.nodeName}"))
    for i in range(3):  # with two nodes, a pod ignoring the volume would stray soon
        apply_items(kubectl, ns, pod_with(f"next-{i}", "data"))
        assert wait_for("a pod to be scheduled", lambda: field(
            kubectl, ns, f"pod/next-{i}", "{.spec.nodeName}")) == node


def test_missing_claim_keeps_the_pod_pending_until_it_exists(kubectl: Kubectl, ns: str):
    apply_items(kubectl, ns, pod_with("waiting", "later"))
    msg = '0/2 nodes are available: persistentvolumeclaim "later" not found.'
    wait_for("FailedScheduling", lambda: any(
        r == "FailedScheduling" and m.startswith(msg) for r, m in events(kubectl, ns, "waiting")))
    assert field(kubectl, ns, "pod/waiting", "{.spec.nodeName}") == ""
    apply_items(kubectl, ns, claim("later"))
    wait_for("the pod to be scheduled once its claim exists",
             lambda: field(kubectl, ns, "pod/waiting", "{.spec.nodeName}"), timeout=40)


def test_static_host_path_volume_binds_immediately_smallest_first(kubectl: Kubectl, ns: str):
    big, small = f"{ns}-big", f"{ns}-small"
    apply_items(kubectl, ns, host_path_volume(big, "5Gi", "/tmp/pv-big"),
          host_path_volume(small, "2Gi", "/tmp/pv-small"))
    wait_for("the volumes to be Available", lambda: field(
        kubectl, ns, f"pv/{small}", "{.status.phase}") == "Available")
    apply_items(kubectl, ns, claim("static", storageClassName=""))
    wait_for("the claim to be Bound", lambda: field(
        kubectl, ns, "pvc/static", "{.status.phase}") == "Bound")
    pvc = get(kubectl, "pvc", "static", ns=ns)
    assert pvc["spec"]["volumeName"] == small
    assert pvc["status"]["capacity"] == {"storage": "2Gi"}
    ann = pvc["metadata"]["annotations"]
    assert ann["pv.kubernetes.io/bind-completed"] == "yes"
    assert ann["pv.kubernetes.io/bound-by-controller"] == "yes"
    pv = get(kubectl, "pv", small)
    assert pv["status"]["phase"] == "Bound"
    assert pv["spec"]["claimRef"]["name"] == "static"
    assert pv["metadata"]["annotations"]["pv.kubernetes.io/bound-by-controller"] == "yes"
    row = kubectl("get", "pv", small, "--no-headers").split()
    assert row[:6] == [small, "2Gi", "RWO", "Retain", "Bound", f"{ns}/static"]

    apply_items(kubectl, ns, pod_with("user", "static"))
    wait_for("the pod using it to be scheduled",
             lambda: field(kubectl, ns, "pod/user", "{.spec.nodeName}"))
    kubectl("delete", "pod", "user", "-n", ns, "--grace-period=0", "--force")

    # Retain: the claim's end leaves the volume Released, not deleted
    kubectl("delete", "pvc", "static", "-n", ns)
    wait_for("the volume to be Released", lambda: field(
        kubectl, ns, f"pv/{small}", "{.status.phase}") == "Released")
    assert field(kubectl, ns, f"pv/{big}", "{.status.phase}") == "Available"
    kubectl("delete", "pv", big, small)


def test_unbound_immediate_claim_keeps_the_pod_pending(kubectl: Kubectl, ns: str):
    apply_items(kubectl, ns, claim("huge", "100Ti", storageClassName=""),
          pod_with("stuck", "huge"))
    msg = "0/2 nodes are available: pod has unbound immediate PersistentVolumeClaims."
    wait_for("FailedScheduling", lambda: any(
        r == "FailedScheduling" and m.startswith(msg) for r, m in events(kubectl, ns, "stuck")))
    assert ("FailedBinding", "no persistent volumes available for this claim and no storage "
            "class is set") in events(kubectl, ns, "huge")
