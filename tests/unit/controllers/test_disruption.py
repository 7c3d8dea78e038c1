"""The disruption controller's arithmetic: percentages, expected pods from controllers,
healthy counts, disruptedPods expiry and when the status needs writing."""
from __future__ import annotations

import asyncio
import time

import pytest

from pybernetes.controllers.disruption import (BudgetError, DisruptionController,
                                               count_healthy, disrupted_pod_map, new_status,
                                               scaled_value, stale_disruption_due)


def stamp(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def pod(name: str, ready: bool = True, owner: dict | None = None, deleting: bool = False,
        conditions: list | None = None) -> dict:
    md: dict = {"name": name, "namespace": "ns", "labels": {"app": "web"}}
    if owner:
        md["ownerReferences"] = [dict(owner, controller=True)]
    if deleting:
        md["deletionTimestamp"] = stamp(time.time())
    conds = [{"type": "Ready", "status": "True" if ready else "False"}] + (conditions or [])
    return {"metadata": md, "status": {"phase": "Running", "conditions": conds}}


class FakeInformer:
    def __init__(self, *objs: dict):
        self.objs = {o["metadata"]["name"]: o for o in objs}

    def get(self, ns, name):
        return self.objs.get(name)


def controller(**informers: FakeInformer) -> DisruptionController:
    c = DisruptionController.__new__(DisruptionController)  # no client: pure parts only
    for name in ("replicasets", "deployments", "statefulsets", "rcs"):
        setattr(c, name, informers.get(name, FakeInformer()))
    return c


def workload(kind: str, name: str, uid: str, replicas: int, owner: dict | None = None) -> dict:
    md: dict = {"name": name, "namespace": "ns", "uid": uid}
    if owner:
        md["ownerReferences"] = [dict(owner, controller=True)]
    return {"kind": kind, "metadata": md, "spec": {"replicas": replicas}}


def ref(kind: str, name: str, uid: str, api_version: str = "apps/v1") -> dict:
    return {"apiVersion": api_version, "kind": kind, "name": name, "uid": uid}


def run(coro):
    return asyncio.run(coro)


def test_scaled_value_rounds_percentages_up():
    assert scaled_value(2, 10) == 2
    assert scaled_value("50%", 3) == 2
    assert scaled_value("10%", 10) == 1
    assert scaled_value("0%", 7) == 0
    with pytest.raises(BudgetError):
        scaled_value("5", 10)


def test_expected_pods_come_from_the_controllers():
    dep = workload("Deployment", "web", "d1", 5)
    rs = workload("ReplicaSet", "web-1", "r1", 3, ref("Deployment", "web", "d1"))
    sts = workload("StatefulSet", "db", "s1", 2)
    rc = workload("ReplicationController", "old", "c1", 4)
    c = controller(replicasets=FakeInformer(rs), deployments=FakeInformer(dep),
                   statefulsets=FakeInformer(sts), rcs=FakeInformer(rc))
    pods = [pod("a", owner=ref("ReplicaSet", "web-1", "r1")),
            pod("b", owner=ref("ReplicaSet", "web-1", "r1")),
            pod("c", owner=ref("StatefulSet", "db", "s1")),
            pod("d", owner=ref("ReplicationController", "old", "c1", "v1"))]
    assert run(c.expected_scale(pods)) == (5 + 2 + 4, [])  # the Deployment counts, not its RS
    pdb = {"spec": {"maxUnavailable": "50%"}}
    assert run(c.expected_counts(pdb, pods)) == (11, 11 - 6, [])
    assert run(c.expected_counts({"spec": {"minAvailable": "50%"}}, pods)) == (11, 6, [])
    # an integer minAvailable needs no controllers: the pods themselves are expected
    assert run(c.expected_counts({"spec": {"minAvailable": 2}}, pods + [pod("e")])) == (5, 2, [])


def test_unknown_controllers_and_unmanaged_pods():
    c = controller()
    with pytest.raises(BudgetError, match='found no controllers for pod "a"'):
        run(c.expected_scale([pod("a", owner=ref("ReplicaSet", "gone", "x"))]))
    assert run(c.expected_scale([pod("lone")])) == (0, ["lone"])
    rs = workload("ReplicaSet", "web-1", "other-uid", 3)
    c = controller(replicasets=FakeInformer(rs))
    with pytest.raises(BudgetError):  # same name, another object: not its controller
        run(c.expected_scale([pod("a", owner=ref("ReplicaSet", "web-1", "r1"))]))


def test_healthy_pods_exclude_unready_deleting_and_approved_evictions():
    now = time.time()
    pods = [pod("a"), pod("b"), pod("c", ready=False), pod("d", deleting=True), pod("e")]
    pdb = {"status": {"disruptedPods": {"b": stamp(now - 10), "e": stamp(now - 600),
                                        "d": stamp(now), "gone": stamp(now)}}}
    kept, recheck, overdue = disrupted_pod_map(pods, pdb, now)
    assert kept == {"b": stamp(now - 10)}  # e expired, d is being deleted, gone is gone
    assert [p["metadata"]["name"] for p in overdue] == ["e"]
    assert recheck is not None and now + 100 < recheck <= now + 120
    assert count_healthy(pods, kept, now) == 2  # a and e


def test_status_is_written_only_when_it_changes():
    pdb = {"metadata": {"name": "p", "generation": 2}, "status": {}}
    out = new_status(pdb, healthy=3, desired=2, expected=3, disrupted={})
    assert out is not None
    st = out["status"]
    assert (st["currentHealthy"], st["desiredHealthy"], st["expectedPods"],
            st["disruptionsAllowed"], st["observedGeneration"]) == (3, 2, 3, 1, 2)
    cond = st["conditions"][0]
    assert (cond["type"], cond["status"], cond["reason"]) == \
        ("DisruptionAllowed", "True", "SufficientPods")
    assert "disruptedPods" not in st
    assert new_status(out, 3, 2, 3, {}) is None
    short = new_status(out, 2, 2, 3, {})
    assert short is not None and short["status"]["disruptionsAllowed"] == 0
    assert short["status"]["conditions"][0]["reason"] == "InsufficientPods"
    # a budget that expects no pods allows nothing, however healthy
    assert new_status(pdb, 3, 0, 0, {})["status"]["disruptionsAllowed"] == 0


def test_stale_disruption_target():
    old = time.time() - 300
    target = {"type": "DisruptionTarget", "status": "True", "lastTransitionTime": stamp(old)}
    due = stale_disruption_due(pod("a", conditions=[target]))
    assert due is not None and abs(due - (old + 120)) < 2
    assert stale_disruption_due(pod("a", conditions=[target], deleting=True)) is None
    assert stale_disruption_due(pod("a")) is None


def test_other_controllers_through_their_scale_subresource():
    class Client:
        async def get(self, res, name, ns, subresource=None):
            assert (res.plural, name, ns, subresource) == ("deployments", "direct", "ns", "scale")
            return {"metadata": {"name": name, "uid": "d9"}, "spec": {"replicas": 4}}

    c = controller()
    c.client = Client()
    owned = [pod("a", owner=ref("Deployment", "direct", "d9"))]
    assert run(c.expected_scale(owned)) == (4, [])
    with pytest.raises(BudgetError):  # the scale belongs to another object of that name
        run(c.expected_scale([pod("a", owner=ref("Deployment", "direct", "other"))]))
