"""Pod predicates and deletion ranking used by the ReplicaSet controller."""
from __future__ import annotations

from pybernetes.controllers import pods as podutil
from pybernetes.controllers.base import Expectations
from pybernetes.controllers.replicaset import calculate_status, pod_from_template


def pod(name, node="", phase="Running", ready=False, since="2024-01-01T00:00:00Z",
        created="2024-01-01T00:00:00Z", restarts=0, labels=None, deleting=False):
    p = {"metadata": {"name": name, "creationTimestamp": created, "labels": labels or {"app": "web"}},
         "spec": {"nodeName": node} if node else {},
         "status": {"phase": phase,
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False",
                                    "lastTransitionTime": since}],
                    "containerStatuses": [{"restartCount": restarts}]}}
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return p


def names(pods):
    return [p["metadata"]["name"] for p in pods]


def test_deletion_prefers_unscheduled_then_pending_then_not_ready():
    pods = [pod("ready", "n1", ready=True), pod("unscheduled", phase="Pending"),
            pod("pending", "n1", phase="Pending"), pod("notready", "n1")]
    assert names(podutil.pods_to_delete(pods, 4)) == ["unscheduled", "pending", "notready", "ready"]


def test_deletion_among_ready_pods_prefers_crowded_nodes_then_recent_then_restarts():
    a = pod("a", "n1", ready=True, since="2024-01-01T00:00:00Z")
    b = pod("b", "n2", ready=True, since="2024-01-01T00:00:00Z")
    c = pod("c", "n2", ready=True, since="2024-01-01T00:00:00Z")
    assert names(podutil.pods_to_delete([a, b, c], 1))[0] in ("b", "c")   # n2 has two
    young = pod("young", "n1", ready=True, since="2024-06-01T00:00:00Z")
    old = pod("old", "n2", ready=True, since="2024-01-01T00:00:00Z")
    assert names(podutil.pods_to_delete([old, young], 1)) == ["young"]
    crashy = pod("crashy", "n1", ready=True, restarts=5)
    calm = pod("calm", "n2", ready=True)
    assert names(podutil.pods_to_delete([calm, crashy], 1)) == ["crashy"]


def test_deletion_cost_annotation_ranks_cheaper_first():
    cheap, dear = pod("cheap", "n1", ready=True), pod("dear", "n2", ready=True)
    dear["metadata"]["annotations"] = {"controller.kubernetes.io/pod-deletion-cost": "100"}
    assert names(podutil.pods_to_delete([dear, cheap], 1)) == ["cheap"]


def test_available_needs_min_ready_seconds():
    p = pod("p", "n1", ready=True, since="2024-01-01T00:00:00Z")
    t0 = 1704067200
    assert podutil.is_available(p, 0, now=t0)
    assert not podutil.is_available(p, 10, now=t0 + 5)
    assert podutil.is_available(p, 10, now=t0 + 10)
    assert not podutil.is_available(pod("q", "n1"), 0)


def test_active_excludes_finished_and_deleting():
    assert podutil.is_active(pod("a"))
    assert not podutil.is_active(pod("b", phase="Succeeded"))
    assert not podutil.is_active(pod("c", phase="Failed"))
    assert not podutil.is_active(pod("d", deleting=True))


def test_slow_start_doubles():
    assert podutil.slow_start_batches(10) == [1, 2, 4, 3]
    assert podutil.slow_start_batches(1) == [1]
    assert podutil.slow_start_batches(0) == []


def test_expectations_wait_for_observed_creates_or_expire():
    clock = [0.0]
    e = Expectations(ttl=300, clock=lambda: clock[0])
    assert e.satisfied("ns/rs")
    e.expect("ns/rs", adds=2)
    assert not e.satisfied("ns/rs")
    e.creation_observed("ns/rs")
    assert not e.satisfied("ns/rs")
    e.creation_observed("ns/rs")
    assert e.satisfied("ns/rs")
    e.expect("ns/rs", dels=1)
    clock[0] = 301
    assert e.satisfied("ns/rs")  # a lost watch event does not wedge the controller


def rs(replicas=3, min_ready=0, gen=2):
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "web-abc", "namespace": "default", "uid": "u1", "generation": gen},
            "spec": {"replicas": replicas, "minReadySeconds": min_ready,
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web", "tier": "fe"},
                                               "annotations": {"x": "y"}},
                                  "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}


def test_pod_from_template_carries_controller_ref_and_generate_name():
    p = pod_from_template(rs())
    md = p["metadata"]
    assert md["generateName"] == "web-abc-" and md["labels"] == {"app": "web", "tier": "fe"}
    assert md["annotations"] == {"x": "y"}
    assert md["ownerReferences"] == [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                      "name": "web-abc", "uid": "u1", "controller": True,
                                      "blockOwnerDeletion": True}]
    assert p["spec"]["containers"][0]["image"] == "nginx"


def test_replicaset_status_counts():
    full = {"app": "web", "tier": "fe"}
    pods = [pod("a", "n1", ready=True, labels=full, since="2024-01-01T00:00:00Z"),
            pod("b", "n1", ready=True, since="2024-01-01T00:00:00Z"),
            pod("c", "n1", labels=full)]
    st = calculate_status(rs(min_ready=0), pods, now=1704067200 + 1)
    assert st == {"replicas": 3, "fullyLabeledReplicas": 2, "readyReplicas": 2,
                  "availableReplicas": 2, "observedGeneration": 2}
    st = calculate_status(rs(min_ready=60), pods, now=1704067200 + 1)
    assert "availableReplicas" not in st and st["readyReplicas"] == 2
    st = calculate_status(rs(), [], create_error="quota exceeded")
    assert st["conditions"][0]["type"] == "ReplicaFailure"
    assert st["conditions"][0]["reason"] == "FailedCreate"
