"""Which nodes a daemon pod belongs on, and how a daemon pod names its node."""
from __future__ import annotations

from pybernetes.controllers.daemonset import pod_for, should_run, target_node


def node(name, labels=None, taints=None):
    return {"metadata": {"name": name, "labels": labels or {}}, "spec": {"taints": taints or []}}


def test_node_selector_affinity_and_taints():
    assert should_run({}, node("a"))
    assert not should_run({"nodeSelector": {"disk": "ssd"}}, node("a"))
    assert should_run({"nodeSelector": {"disk": "ssd"}}, node("a", {"disk": "ssd"}))
    infra = node("b", taints=[{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}])
    assert not should_run({}, infra)
    assert should_run({"tolerations": [{"key": "dedicated", "operator": "Equal", "value": "infra",
                                        "effect": "NoSchedule"}]}, infra)
    # daemons tolerate cordoned and not-ready nodes on their own
    cordoned = node("c", taints=[{"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"},
                                 {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}])
    assert should_run({}, cordoned)
    aff = {"affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In",
                                                     "values": ["a", "b"]}]}]}}}}
    assert should_run(aff, node("d", {"zone": "b"})) and not should_run(aff, node("e", {"zone": "c"}))


def test_pod_is_pinned_by_affinity():
    ds = {"metadata": {"name": "agent", "namespace": "kube-system", "uid": "u", "generation": 2},
          "apiVersion": "apps/v1", "kind": "DaemonSet",
          "spec": {"template": {"metadata": {"labels": {"app": "agent"}},
                                "spec": {"containers": [{"name": "c", "image": "x"}]}}}}
    pod = pod_for(ds, "node-7", "abc")
    assert target_node(pod) == "node-7"
    assert pod["metadata"]["labels"] == {"app": "agent", "controller-revision-hash": "abc",
                                         "pod-template-generation": "2"}
    assert {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
            "effect": "NoExecute"} in pod["spec"]["tolerations"]
    assert target_node({"spec": {"nodeName": "n1"}}) == "n1"
