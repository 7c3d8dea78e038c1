"""Node-side pieces: pod IP pools, kubelet admission, taint flags, node objects."""
from __future__ import annotations

import pytest

from pybernetes.kubelet.admission import admit
from pybernetes.kubelet.node_status import NodeConfig, node_object, parse_taint
from pybernetes.kubelet.pod_ips import PodIPPool


def test_pod_ips_skip_network_and_gateway_and_rotate():
    pool = PodIPPool("10.42.3.0/30")
    assert pool.allocate() == "10.42.3.2"
    assert pool.allocate() is None            # .3 is the broadcast address
    pool.release("10.42.3.2")
    assert pool.allocate() == "10.42.3.2"
    big = PodIPPool("10.42.0.0/24")
    a, b = big.allocate(), big.allocate()
    big.release(a)
    assert big.allocate() == "10.42.0.4"      # a freed address is not reused at once
    assert big.reserve("10.42.0.9") and not big.reserve("10.43.0.1")
    assert "10.42.0.200" in big and b == "10.42.0.3"


def node(pods: int = 2, cpu: str = "2", labels: dict | None = None) -> dict:
    return {"metadata": {"name": "n", "labels": labels or {}},
            "status": {"allocatable": {"cpu": cpu, "memory": "4Gi", "pods": str(pods)}}}


def pod(cpu: str = "", selector: dict | None = None) -> dict:
    c: dict = {"name": "app", "image": "x"}
    if cpu:
        c["resources"] = {"requests": {"cpu": cpu}}
    return {"metadata": {"name": "p"}, "spec": {"containers": [c],
                                                 "nodeSelector": selector or {}}}


def test_admission_counts_pods_and_requests():
    assert admit(pod(), node(), [pod()]) is None
    full = admit(pod(), node(pods=2), [pod(), pod()])
    assert full is not None and full.reason == "OutOfpods"
    assert full.status_message == ("Pod was rejected: Node didn't have enough resource: pods, "
                                   "requested: 1, used: 2, capacity: 2")
    cpu = admit(pod("1500m"), node(pods=10), [pod("1")])
    assert cpu is not None and cpu.reason == "OutOfcpu"
    assert cpu.message.endswith("cpu, requested: 1500, used: 1000, capacity: 2000")


def test_admission_checks_node_selector():
    assert admit(pod(selector={"disk": "ssd"}), node(labels={"disk": "ssd"}), []) is None
    no = admit(pod(selector={"disk": "ssd"}), node(), [])
    assert no is not None and no.reason == "NodeAffinity"
    assert no.message == ("Predicate NodeAffinity failed: node(s) didn't match Pod's node "
                          "affinity/selector")


def test_taint_flag_syntax():
    assert parse_taint("dedicated=gpu:NoSchedule") == {"key": "dedicated", "value": "gpu",
                                                       "effect": "NoSchedule"}
    assert parse_taint("spot:NoExecute") == {"key": "spot", "effect": "NoExecute"}
    for bad in ("nokey", "a=b:Sometimes", ":NoSchedule"):
        with pytest.raises(ValueError):
            parse_taint(bad)


def test_node_object_reports_capacity_version_and_healthy_conditions():
    cfg = NodeConfig("fake-0", "198.18.0.7", cpu="8", memory="16Gi", pods=50,
                     labels={"type": "fake-node"}, runtime_version="fake://0.1.0")
    n = node_object(cfg, "boot")
    st = n["status"]
    assert st["capacity"] == st["allocatable"] == {"cpu": "8", "memory": "16Gi", "pods": "50"}
    assert st["nodeInfo"]["kubeletVersion"] == "v1.33.0"
    assert st["nodeInfo"]["containerRuntimeVersion"] == "fake://0.1.0"
    assert st["addresses"] == [{"type": "InternalIP", "address": "198.18.0.7"},
                               {"type": "Hostname", "address": "fake-0"}]
    conds = {c["type"]: (c["status"], c["reason"]) for c in st["conditions"]}
    assert conds == {"MemoryPressure": ("False", "KubeletHasSufficientMemory"),
                     "DiskPressure": ("False", "KubeletHasNoDiskPressure"),
                     "PIDPressure": ("False", "KubeletHasSufficientPID"),
                     "Ready": ("True", "KubeletReady")}
    labels = n["metadata"]["labels"]
    assert labels["kubernetes.io/hostname"] == "fake-0" and labels["type"] == "fake-node"
