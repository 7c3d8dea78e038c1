"""Taint-based eviction timing and the taint a node's Ready condition calls for."""
from __future__ import annotations

from pybernetes.controllers.node_lifecycle import eviction_time, last_heartbeat, wanted_taint

TAINT = {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute",
         "timeAdded": "2024-01-01T00:00:00Z"}
T0 = 1704067200.0


def pod(*tolerations):
    return {"spec": {"tolerations": list(tolerations)}}


def test_eviction_time():
    assert eviction_time(pod(), [TAINT]) == 0.0  # not tolerated: now
    tol = {"key": TAINT["key"], "operator": "Exists", "effect": "NoExecute"}
    assert eviction_time(pod(tol), [TAINT]) is None  # tolerated forever
    assert eviction_time(pod(dict(tol, tolerationSeconds=30)), [TAINT]) == T0 + 30
    assert eviction_time(pod({"operator": "Exists"}), [TAINT]) is None
    assert eviction_time(pod(), [dict(TAINT, effect="NoSchedule")]) is None


def test_wanted_taint_and_heartbeat():
    node = {"status": {"conditions": [{"type": "Ready", "status": "Unknown",
                                       "lastHeartbeatTime": "2024-01-01T00:00:00Z"}]}}
    assert wanted_taint(node) == "node.kubernetes.io/unreachable"
    node["status"]["conditions"][0]["status"] = "False"
    assert wanted_taint(node) == "node.kubernetes.io/not-ready"
    node["status"]["conditions"][0]["status"] = "True"
    assert wanted_taint(node) is None
    lease = {"spec": {"renewTime": "2024-01-01T00:00:10.000000Z"}}
    assert last_heartbeat(node, lease) == T0 + 10
    assert last_heartbeat(node, None) == T0
