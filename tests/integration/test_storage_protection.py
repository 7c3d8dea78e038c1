"""Storage object in-use protection against a real API server and controller-manager,
driven by the real kubectl: new claims and volumes carry the pvc-/pv-protection
finalizers (admission), a claim a scheduled pod uses stays Terminating until the pod
is gone, a volume stays Terminating while it is bound (pvc-protection and
pv-protection controllers). No scheduler or kubelet: pods name their node themselves
and are force-deleted, which is all the controllers look at."""
from __future__ import annotations

from tests.conftest import Cluster, Kubectl, apply_items, wait_for

PVC_FINALIZER = "kubernetes.io/pvc-protection"
PV_FINALIZER = "kubernetes.io/pv-protection"
CLUSTER_COMPONENTS = ("controller-manager",)   # for conftest's cluster fixture


def volume(name: str, path: str) -> dict:
    return {"apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": name},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "hostPath": {"path": path}, "storageClassName": ""}}


def claim(name: str, volume_name: str = "") -> dict:
    spec = {"accessModes": ["ReadWriteOnce"], "storageClassName": "",
            "resources": {"requests": {"storage": "1Gi"}}}
    if volume_name:
        spec["volumeName"] = volume_name
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
            "spec": spec}


def pod_using(name: str, claim_name: str, node: str = "") -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "busybox"}],
                  "volumes": [{"name": "data",
                               "persistentVolumeClaim": {"claimName": claim_name}}]}
    if node:
        spec["nodeName"] = node
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


def field(kubectl: Kubectl, what: str, jsonpath: str, ns: str = "") -> str:
    return kubectl("get", what, *(("-n", ns) if ns else ()), "-o", f"jsonpath={jsonpath}",
                   "--ignore-not-found")


def status_column(kubectl: Kubectl, what: str, ns: str = "") -> str:
    row = kubectl("get", what, *(("-n", ns) if ns else ()), "--no-headers").split()
    return row[1] if what.startswith("pvc") else row[4]


def test_new_claims_and_volumes_carry_the_protection_finalizers(kubectl: Kubectl, ns: str):
    apply_items(kubectl, ns, volume(f"{ns}-pv", "/tmp/pv-finalizer"), claim("data"))
    assert field(kubectl, "pvc/data", "{.metadata.finalizers}", ns) == f'["{PVC_FINALIZER}"]'
    assert field(kubectl, f"pv/{ns}-pv", "{.metadata.finalizers}") == f'["{PV_FINALIZER}"]'
    assert f"Finalizers:    [{PVC_FINALIZER}]" in kubectl("describe", "pvc", "data", "-n", ns)

    # a claim that lost its finalizer (made before the plugin was on) gets it back
    kubectl("patch", "pvc", "data", "-n", ns, "--type=json",
            "-p", '[{"op": "remove", "path": "/metadata/finalizers"}]')
    wait_for("the controller to put the finalizer back", lambda: field(
        kubectl, "pvc/data", "{.metadata.finalizers}", ns) == f'["{PVC_FINALIZER}"]')
    kubectl("delete", "pvc", "data", "-n", ns)
    kubectl("delete", "pv", f"{ns}-pv")


def test_claim_in_use_stays_terminating_until_its_pod_is_gone(kubectl: Kubectl, ns: str):
    pv = f"{ns}-pv"
    apply_items(kubectl, ns, volume(pv, "/tmp/pv-in-use"), claim("used", pv), claim("loose"),
          pod_using("app", "used", node="some-node"), pod_using("pending", "loose"))
    wait_for("the claim to be Bound", lambda: field(
        kubectl, "pvc/used", "{.status.phase}", ns) == "Bound")

    kubectl("delete", "pvc", "used", "-n", ns, "--wait=false")
    kubectl("delete", "pv", pv, "--wait=false")
    # an unscheduled pod does not hold its claim: "loose" goes, which also shows the
    # controller has had its look at "used" (both were deleted before "loose")
    kubectl("delete", "pvc", "loose", "-n", ns, "--timeout=60s")
    assert status_column(kubectl, "pvc/used", ns) == "Terminating"
    assert field(kubectl, "pvc/used", "{.metadata.finalizers}", ns) == f'["{PVC_FINALIZER}"]'
    assert status_column(kubectl, f"pv/{pv}") == "Terminating"   # bound to "used"

    kubectl("delete", "pod", "app", "-n", ns, "--grace-period=0", "--force")
    wait_for("the claim to be deleted once no pod uses it",
             lambda: field(kubectl, "pvc/used", "{.metadata.name}", ns) == "", timeout=60)
    # Retain: the binder releases the volume, then nothing holds it
    wait_for("the volume to be deleted once released",
             lambda: field(kubectl, f"pv/{pv}", "{.metadata.name}") == "", timeout=60)


def test_a_finished_pod_still_holds_its_claim_as_upstream(kubectl: Kubectl, cluster: Cluster,
                                                           ns: str):
    """Upstream keeps a claim while any scheduled pod naming it exists, whatever its
    phase (only generic ephemeral volumes are freed earlier)."""
    apply_items(kubectl, ns, claim("job-data"), claim("witness"),
          pod_using("done", "job-data", node="some-node"))
    code, _ = cluster.json("PATCH", f"/api/v1/namespaces/{ns}/pods/done/status",
                           {"status": {"phase": "Succeeded"}},
                           content_type="application/merge-patch+json")
    assert code == 200
    kubectl("delete", "pvc", "job-data", "-n", ns, "--wait=false")
    kubectl("delete", "pvc", "witness", "-n", ns, "--timeout=60s")
    assert status_column(kubectl, "pvc/job-data", ns) == "Terminating"
    kubectl("delete", "pod", "done", "-n", ns, "--grace-period=0", "--force")
    wait_for("the claim to go with the pod",
             lambda: field(kubectl, "pvc/job-data", "{.metadata.name}", ns) == "", timeout=60)
