"""The scheduler end to end: a real `pybernetes server`, `pybernetes scheduler` as a
child process, nodes created by YAML with their capacity written through the status
subresource, and the real kubectl showing where pods went and why some did not."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import Cluster, Kubectl, wait_for

pytestmark = pytest.mark.kubectl
REPO = Path(__file__).resolve().parents[2]
# While pybernetes.client has not landed, the scheduler runs on the controllers' stand-in client.
NO_VICTIMS = "No preemption victims found for incoming pod"


@pytest.fixture(scope="module")
def scheduler(cluster: Cluster) -> Iterator[subprocess.Popen]:
    log = open(Path(cluster.data_dir) / "scheduler.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "pybernetes.cli.main", "scheduler", "--kubeconfig",
                             cluster.kubeconfig, "--log-level", "info"],
                            cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            code = proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(5)
        log.close()
    assert code == 0, "scheduler did not stop cleanly on SIGTERM"


@pytest.fixture
def ns(kubectl: Kubectl, scheduler, request) -> Iterator[str]:
    name = request.node.name.replace("_", "-")[:50].strip("-")
    kubectl("create", "namespace", name)
    yield name
    # no kubelet: bound pods only go when forced; then the nodes this test made
    kubectl("delete", "pods", "--all", "-n", name, "--grace-period=0", "--force", "--wait=false")
    kubectl("delete", "nodes", "-l", "e2e=scheduler", "--wait=false")


def add_node(kubectl: Kubectl, name: str, cpu: str = "2", memory: str = "4Gi", pods: int = 110,
             labels: dict | None = None, taints: list | None = None) -> None:
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"e2e": "scheduler", "kubernetes.io/hostname": name,
                                                  **(labels or {})}},
            "spec": {"taints": taints} if taints else {}}
    kubectl("apply", "-f", "-", input=json.dumps(node))
    alloc = {"cpu": cpu, "memory": memory, "pods": str(pods)}
    kubectl("patch", "node", name, "--subresource=status", "--type=merge",
            "-p", json.dumps({"status": {"capacity": alloc, "allocatable": alloc}}))


def add_pod(kubectl: Kubectl, ns: str, name: str, cpu: str = "", labels: dict | None = None,
            **spec) -> None:
    c: dict = {"name": "app", "image": "busybox"}
    if cpu:
        c["resources"] = {"requests": {"cpu": cpu}}
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": ns, "labels": labels or {}},
           "spec": {"containers": [c], "terminationGracePeriodSeconds": 0, **spec}}
    kubectl("apply", "-f", "-", input=json.dumps(pod))


def placement(kubectl: Kubectl, ns: str) -> dict[str, str]:
    out = json.loads(kubectl("get", "pods", "-n", ns, "-o", "json"))
    return {p["metadata"]["name"]: p["spec"].get("nodeName", "") for p in out["items"]}


def all_bound(kubectl: Kubectl, ns: str, names: list[str]) -> dict[str, str] | None:
    where = placement(kubectl, ns)
    return where if all(where.get(n) for n in names) else None


def test_pods_fill_nodes_by_cpu_then_wait_for_a_new_node(kubectl: Kubectl, ns: str):
    for n in ("cpu-1", "cpu-2", "cpu-3"):
        add_node(kubectl, n)
    names = [f"web-{i}" for i in range(6)]
    for name in names:
        add_pod(kubectl, ns, name, cpu="1")
    where = wait_for("six pods bound", lambda: all_bound(kubectl, ns, names))
    assert sorted(where.values()) == ["cpu-1", "cpu-1", "cpu-2", "cpu-2", "cpu-3", "cpu-3"]
    described = kubectl("describe", "pod", "web-0", "-n", ns)
    assert f"Successfully assigned {ns}/web-0 to {where['web-0']}" in described
    assert "default-scheduler" in described

    add_pod(kubectl, ns, "one-too-many", cpu="1")
    want = ("0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
            f"3 {NO_VICTIMS}.")
    described = wait_for("FailedScheduling", lambda: (
        lambda d: d if "FailedScheduling" in d else None)(
            kubectl("describe", "pod", "one-too-many", "-n", ns)))
    assert want in described.replace("\n", " ").replace("  ", " ") or want in described
    pod = json.loads(kubectl("get", "pod", "one-too-many", "-n", ns, "-o", "json"))
    cond = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert (cond["status"], cond["reason"], cond["message"]) == ("False", "Unschedulable", want)
    assert "nodeName" not in pod["spec"]

    add_node(kubectl, "cpu-4")
    wait_for("the pod to land on the new node",
             lambda: placement(kubectl, ns).get("one-too-many") == "cpu-4")


def test_node_selector_taints_and_anti_affinity(kubectl: Kubectl, ns: str):
    add_node(kubectl, "plain-1")
    add_node(kubectl, "ssd-1", labels={"disk": "ssd"})
    add_node(kubectl, "gpu-1", taints=[{"key": "gpu", "value": "true", "effect": "NoSchedule"}])
    add_pod(kubectl, ns, "needs-ssd", nodeSelector={"disk": "ssd"})
    add_pod(kubectl, ns, "not-mine", schedulerName="my-scheduler")
    add_pod(kubectl, ns, "tolerant", nodeSelector={"kubernetes.io/hostname": "gpu-1"},
            tolerations=[{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}])
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    dbs = [f"db-{i}" for i in range(2)]
    for name in dbs:
        add_pod(kubectl, ns, name, labels={"app": "db"}, affinity=anti)
    where = wait_for("pods bound", lambda: all_bound(kubectl, ns, ["needs-ssd", "tolerant", *dbs]))
    assert where["needs-ssd"] == "ssd-1" and where["tolerant"] == "gpu-1"
    # the gpu node's taint keeps the db pods on the two untainted nodes, one each
    assert sorted(where[n] for n in dbs) == ["plain-1", "ssd-1"]
    # a pod for another scheduler is left alone
    assert where["not-mine"] == ""
    assert "not-mine" not in kubectl("get", "events", "-n", ns)

    add_pod(kubectl, ns, "db-2", labels={"app": "db"}, affinity=anti)
    want = ("0/3 nodes are available: 1 node(s) had untolerated taint {gpu: true}, "
            "2 node(s) didn't satisfy existing pods anti-affinity rules.")
    pod = wait_for("db-2 unschedulable", lambda: (lambda p: p if any(
        c["type"] == "PodScheduled" and c["status"] == "False"
        for c in p["status"].get("conditions") or []) else None)(
            json.loads(kubectl("get", "pod", "db-2", "-n", ns, "-o", "json"))))
    cond = next(c for c in pod["status"]["conditions"] if c["type"] == "PodScheduled")
    assert cond["message"].startswith(want), cond["message"]


def test_higher_priority_pod_preempts(kubectl: Kubectl, ns: str):
    add_node(kubectl, "small-1", cpu="1")
    add_pod(kubectl, ns, "batch", cpu="1", priority=0)
    wait_for("batch bound", lambda: all_bound(kubectl, ns, ["batch"]))
    add_pod(kubectl, ns, "urgent", cpu="1", priority=1000)
    wait_for("urgent bound in place of batch",
             lambda: placement(kubectl, ns) == {"urgent": "small-1"}, timeout=30)
    events = kubectl("get", "events", "-n", ns, "--field-selector", "reason=Preempted")
    assert "Preempted by pod" in events and "on node small-1" in events
