"""Deployment rollout arithmetic, checked against upstream's documented examples."""
from __future__ import annotations

import pytest

from pybernetes.controllers import rollout as ru


def deploy(replicas=10, surge="25%", unavailable="25%", type_="RollingUpdate", gen=1, **status):
    spec = {"replicas": replicas, "strategy": {"type": type_}, "selector": {"matchLabels": {"a": "b"}},
            "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c"}]}},
            "progressDeadlineSeconds": 600}
    if type_ == "RollingUpdate":
        spec["strategy"]["rollingUpdate"] = {"maxSurge": surge, "maxUnavailable": unavailable}
    return {"metadata": {"name": "web", "namespace": "default", "generation": gen, "uid": "d1"},
            "spec": spec, "status": status}


def rs(name, replicas, available=0, created="2024-01-01T00:00:00Z", ready=None, actual=None, **ann):
    return {"metadata": {"name": name, "creationTimestamp": created,
                         "annotations": {k.replace("_", "."): v for k, v in ann.items()}},
            "spec": {"replicas": replicas},
            "status": {"replicas": replicas if actual is None else actual,
                       "availableReplicas": available,
                       "readyReplicas": available if ready is None else ready}}


@pytest.mark.parametrize("replicas,surge,unavailable,want", [
    (10, "25%", "25%", (3, 2)),      # surge rounds up, unavailable down
    (3, "25%", "25%", (1, 0)),
    (4, "50%", "50%", (2, 2)),
    (5, 2, 1, (2, 1)),
    (5, 0, 0, (0, 1)),               # both zero: one may be unavailable
    (1, "0%", "0%", (0, 1)),
])
def test_fenceposts_round_surge_up_and_unavailable_down(replicas, surge, unavailable, want):
    assert ru.fenceposts(deploy(replicas, surge, unavailable)) == want


def test_max_unavailable_is_capped_and_zero_for_recreate():
    assert ru.max_unavailable(deploy(2, 0, 5)) == 2
    assert ru.max_unavailable(deploy(3, type_="Recreate")) == 0
    assert ru.max_surge(deploy(3, type_="Recreate")) == 0


def test_new_replica_set_grows_within_surge():
    d = deploy(10, 3, 2)
    old, new = rs("old", 10, 10), rs("new", 0)
    assert ru.new_rs_replicas(d, [old, new], new) == 3       # 10 + 3 surge
    old2, new2 = rs("old", 8, 8), rs("new", 3)
    assert ru.new_rs_replicas(d, [old2, new2], new2) == 5    # total 11 -> room 2
    assert ru.new_rs_replicas(d, [rs("o", 10, 10), rs("n", 3)], rs("n", 3)) == 3  # at 13 already
    assert ru.new_rs_replicas(deploy(4, type_="Recreate"), [], rs("n", 0)) == 4


def test_old_replica_sets_go_down_only_as_availability_allows():
    d = deploy(10, 3, 2)
    old, new = rs("old", 10, 10), rs("new", 3, 0)
    # total 13, min available 8, 3 new pods not available yet -> 2 may go
    assert ru.max_old_scale_down(d, [old, new], new) == 2
    assert ru.plan_scale_down_old(d, [old, new], [old]) == {"old": 8}


def test_unhealthy_old_pods_are_cleaned_up_first_oldest_set_first():
    a = rs("a", 3, 1, created="2024-01-01T00:00:00Z")
    b = rs("b", 4, 2, created="2024-01-02T00:00:00Z")
    assert ru.plan_cleanup_unhealthy([b, a], 3) == {"a": 1, "b": 3}
    assert ru.plan_cleanup_unhealthy([b, a], 1) == {"a": 2}


def test_proportional_scaling_spreads_by_size():
    # mid-rollout of 10 replicas (maxSurge 3): 8 old + 5 new, both annotated max 13.
    # Scaled to 15, 18 pods are allowed: the 5 extra split 8:5 -> +3 and +2.
    old = rs("old", 8, 8, created="2024-01-01T00:00:00Z")
    new = rs("new", 5, 0, created="2024-01-02T00:00:00Z")
    for r in (old, new):
        r["metadata"]["annotations"] = {ru.MAX_REPLICAS: "13"}
    assert ru.plan_proportional(deploy(15, 3, 2), [old, new]) == {"old": 11, "new": 7}
    assert ru.plan_proportional(deploy(0, 3, 2), [old, new]) == {"old": 0, "new": 0}
    # scaling down to 5 (allowed 8): smallest first, leftovers to the first
    assert sum(ru.plan_proportional(deploy(5, 3, 2), [old, new]).values()) == 8


def test_template_hash_is_stable_and_depends_on_template_and_collisions():
    t = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}
    h = ru.template_hash(t)
    assert h == ru.template_hash({"spec": t["spec"], "metadata": t["metadata"]})  # key order
    assert ru.template_hash(t, 1) != h
    t2 = {**t, "spec": {"containers": [{"name": "c", "image": "y"}]}}
    assert ru.template_hash(t2) != h
    assert set(h) <= set("bcdfghjklmnpqrstvwxz2456789") and 1 <= len(h) <= 10
    # FNV-1a 32 of b"a" is 0xe40c292c (the published test vector)
    assert ru.fnv32a(b"a") == 0xE40C292C


def test_same_template_ignores_the_hash_label():
    a = {"metadata": {"labels": {"app": "web", ru.HASH_LABEL: "abc"}}, "spec": {"x": 1}}
    b = {"metadata": {"labels": {"app": "web"}}, "spec": {"x": 1}}
    assert ru.same_template(a, b)
    assert not ru.same_template(a, {"metadata": {"labels": {"app": "web"}}, "spec": {"x": 2}})
    assert a["metadata"]["labels"][ru.HASH_LABEL] == "abc"  # inputs untouched


def test_new_rs_annotations_copy_change_cause_and_keep_revision_history():
    d = deploy(3)
    d["metadata"]["annotations"] = {ru.CHANGE_CAUSE: "kubectl set image", ru.REVISION: "2",
                                    "kubectl.kubernetes.io/last-applied-configuration": "{}"}
    new = {"metadata": {"name": "n"}}
    assert ru.set_new_rs_annotations(d, new, 1, exists=False)
    ann = new["metadata"]["annotations"]
    assert ann[ru.CHANGE_CAUSE] == "kubectl set image" and ann[ru.REVISION] == "1"
    assert "kubectl.kubernetes.io/last-applied-configuration" not in ann
    assert ann[ru.DESIRED_REPLICAS] == "3" and ann[ru.MAX_REPLICAS] == "4"
    # a rollback back to this template: it becomes revision 3 and remembers 1
    assert ru.set_new_rs_annotations(d, new, 3, exists=True)
    assert ann[ru.REVISION] == "3" and ann[ru.REVISION_HISTORY] == "1"
    assert not ru.set_new_rs_annotations(d, new, 3, exists=True)


def test_status_and_available_condition():
    d = deploy(3, 1, 1, gen=4)
    new, old = rs("new", 2, 1), rs("old", 2, 2)
    st = ru.calculate_status(d, [old, new], new)
    assert st["replicas"] == 4 and st["updatedReplicas"] == 2 and st["availableReplicas"] == 3
    assert st["unavailableReplicas"] == 1 and st["observedGeneration"] == 4
    cond = ru.get_condition(st, "Available")
    assert (cond["status"], cond["reason"]) == ("True", "MinimumReplicasAvailable")
    st = ru.calculate_status(d, [rs("new", 3, 1)], None)
    assert ru.get_condition(st, "Available")["reason"] == "MinimumReplicasUnavailable"


def test_set_condition_keeps_transition_time_while_status_holds():
    st = {}
    c1 = ru.new_condition("Progressing", "True", "ReplicaSetUpdated", "m")
    c1["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    ru.set_condition(st, c1)
    ru.set_condition(st, ru.new_condition("Progressing", "True", "NewReplicaSetAvailable", "done"))
    cond = ru.get_condition(st, "Progressing")
    assert cond["reason"] == "NewReplicaSetAvailable"
    assert cond["lastTransitionTime"] == "2020-01-01T00:00:00Z"


def test_progress_deadline_times_out():
    d = deploy(3)
    d["spec"]["progressDeadlineSeconds"] = 10
    st = {"conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                          "lastUpdateTime": "2024-01-01T00:00:00Z"}]}
    assert ru.timed_out(d, st, now=1704067200 + 11)
    assert not ru.timed_out(d, st, now=1704067200 + 5)
    st["conditions"][0]["reason"] = "NewReplicaSetAvailable"
    assert not ru.timed_out(d, st, now=1704067200 + 11)


def test_complete_needs_every_count_and_the_generation():
    d = deploy(3, gen=2)
    done = {"updatedReplicas": 3, "replicas": 3, "availableReplicas": 3, "observedGeneration": 2}
    assert ru.is_complete(d, done)
    assert not ru.is_complete(d, {**done, "observedGeneration": 1})
    assert not ru.is_complete(d, {**done, "replicas": 4})
