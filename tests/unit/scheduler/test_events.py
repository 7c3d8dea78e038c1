"""Which informer events may make a waiting pod fit (and so retry it)."""
from pybernetes.scheduler.main import node_change, pending_change

from tests.unit.scheduler.helpers import node, pod


def test_heartbeats_do_not_count_but_capacity_labels_and_taints_do():
    old = node("a")
    beat = {**old, "status": {**old["status"], "conditions": [{"type": "Ready", "status": "True"}]}}
    assert not node_change(old, beat)
    bigger = {**old, "status": {**old["status"], "allocatable": {"cpu": "64"}}}
    relabelled = {**old, "metadata": {**old["metadata"], "labels": {"disk": "ssd"}}}
    cordoned = {**old, "spec": {"unschedulable": True}}
    assert node_change(old, bigger) and node_change(old, relabelled) and node_change(old, cordoned)


def test_our_own_status_writes_do_not_requeue_a_pending_pod():
    old = pod("p")
    failed = {**old, "status": {"phase": "Pending", "conditions": [
        {"type": "PodScheduled", "status": "False", "reason": "Unschedulable"}]}}
    assert not pending_change(old, failed)
    assert pending_change(old, {**old, "spec": {**old["spec"], "nodeSelector": {"a": "b"}}})
