"""Fake nodes end to end: a real API server, `pybernetes kubelet --runtime fake
--fake-nodes 3`, the controller manager (node IPAM, node lifecycle, Jobs) and the
scheduler as child processes, and the real kubectl looking at what a user sees."""
from __future__ import annotations

import ipaddress
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import Cluster, Kubectl, wait_for

pytestmark = pytest.mark.kubectl
REPO = Path(__file__).resolve().parents[2]
NODES = ["fake-0", "fake-1", "fake-2"]


class Child:
    """One `pybernetes <subcommand>` process, logging into the cluster's data dir."""

    def __init__(self, cluster: Cluster, name: str, args: list[str]):
        self.log = open(Path(cluster.data_dir) / f"{name}.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "pybernetes.cli.main", *args, "--kubeconfig",
             cluster.kubeconfig], cwd=REPO, stdout=self.log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def components(cluster: Cluster) -> Iterator[dict[str, Child]]:
    kids = {
        "controller-manager": Child(cluster, "controller-manager", [
            "controller-manager", "--node-monitor-grace-period=3",
            "--node-monitor-period=0.5"]),
        "scheduler": Child(cluster, "scheduler", ["scheduler", "--leader-elect=false"]),
        "kubelet": Child(cluster, "kubelet", [
            "kubelet", "--runtime", "fake", "--node-name", "fake", "--fake-nodes", "3",
            "--heartbeat-period", "0.5", "--fake-run-seconds", "0.5"]),
    }
    try:
        yield kids
    finally:
        for kid in kids.values():
            kid.stop()


@pytest.fixture(scope="module")
def ready_nodes(kubectl: Kubectl, components) -> dict[str, dict]:
    def ready() -> dict[str, dict] | None:
        nodes = {n["metadata"]["name"]: n for n in get_json(kubectl, "nodes")["items"]}
        ok = all(condition(nodes.get(name, {}), "Ready") == "True" and
                 nodes[name]["spec"].get("podCIDR") for name in NODES)
        return nodes if ok else None
    return wait_for("3 Ready fake nodes with podCIDRs", ready, timeout=60)


def get_json(kubectl: Kubectl, *args: str) -> dict:
    return json.loads(kubectl("get", *args, "-o", "json"))


def condition(obj: dict, type_: str) -> str | None:
    return next((c.get("status") for c in (obj.get("status") or {}).get("conditions") or []
                 if c.get("type") == type_), None)


def apply_pod(kubectl: Kubectl, name: str, node: str | None = "fake-1",
              annotations: dict | None = None, **spec) -> None:
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "annotations": annotations or {}},
           "spec": {"containers": [{"name": "app", "image": "nginx:1.27"}], **spec}}
    if node:
        pod["spec"]["nodeName"] = node
    kubectl("apply", "-f", "-", input=json.dumps(pod))


def pod_row(kubectl: Kubectl, name: str) -> list[str]:
    return kubectl("get", "pod", name, "--no-headers").split()


def test_three_fake_nodes_are_ready_with_their_own_pod_cidrs(kubectl: Kubectl, ready_nodes):
    out = kubectl("get", "nodes", "-o", "wide")
    header = out.splitlines()[0].split()
    assert header[:5] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    for name in NODES:
        assert rows[name][1] == "Ready"
        assert rows[name][4] == "v1.33.0"
        assert rows[name][-1].startswith("fake://")
    cidrs = [ready_nodes[n]["spec"]["podCIDR"] for n in NODES]
    assert len(set(cidrs)) == 3
    for cidr in cidrs:
        assert ipaddress.ip_network(cidr).subnet_of(ipaddress.ip_network("10.42.0.0/16"))
        assert cidr.endswith("/24")
    node = ready_nodes["fake-0"]
    assert node["metadata"]["labels"]["kubernetes.io/hostname"] == "fake-0"
    assert node["metadata"]["labels"]["kubernetes.io/os"] == "linux"
    assert node["status"]["allocatable"]["pods"] == "110"
    described = kubectl("describe", "node", "fake-0")
    assert "KubeletReady" in described and "kubelet is posting ready status" in described


def test_bound_pod_runs_ready_with_an_ip_from_its_node(kubectl: Kubectl, ready_nodes):
    apply_pod(kubectl, "web", node="fake-1")
    kubectl("wait", "--for=condition=Ready", "pod/web", "--timeout=30s")
    row = pod_row(kubectl, "web")
    assert row[1:3] == ["1/1", "Running"]
    pod = get_json(kubectl, "pod", "web")
    st = pod["status"]
    assert ipaddress.ip_address(st["podIP"]) in ipaddress.ip_network(
        ready_nodes["fake-1"]["spec"]["podCIDR"])
    assert st["podIPs"] == [{"ip": st["podIP"]}]
    assert st["qosClass"] == "BestEffort" and st["startTime"] and st["hostIP"]
    cs = st["containerStatuses"][0]
    assert cs["ready"] and cs["started"] and "running" in cs["state"]
    assert cs["containerID"] == f"fake://{pod['metadata']['uid']}/app"
    assert {c["type"]: c["status"] for c in st["conditions"]} == {
        "PodReadyToStartContainers": "True", "Initialized": "True", "Ready": "True",
        "ContainersReady": "True", "PodScheduled": "True"}
    # a fake node serves no kubelet API: logs get a clear answer, nothing is dialled
    p = kubectl.run("logs", "web", check=False)
    assert p.returncode != 0 and 'node "fake-1" serves no kubelet API' in p.stderr


def test_scheduled_job_completes(kubectl: Kubectl, ready_nodes):
    kubectl("create", "job", "once", "--image=busybox:1.36", "--", "true")
    kubectl("wait", "--for=condition=complete", "job/once", "--timeout=60s")
    pods = get_json(kubectl, "pods", "-l", "job-name=once")["items"]
    assert [p["status"]["phase"] for p in pods] == ["Succeeded"]
    assert pods[0]["spec"]["nodeName"] in NODES
    term = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (term["exitCode"], term["reason"]) == (0, "Completed")
    assert "Completed" in kubectl("get", "pods", "-l", "job-name=once")


def test_deployment_rolls_out_across_fake_nodes(kubectl: Kubectl, ready_nodes):
    kubectl("create", "deployment", "spread", "--image=nginx:1.27", "--replicas=6")
    kubectl("rollout", "status", "deployment/spread", "--timeout=60s")
    pods = get_json(kubectl, "pods", "-l", "app=spread")["items"]
    assert len({p["spec"]["nodeName"] for p in pods}) > 1
    assert all(condition(p, "Ready") == "True" for p in pods)


def test_never_ready_pod_stays_unready(kubectl: Kubectl, ready_nodes):
    apply_pod(kubectl, "sleepy", annotations={"fake.pybernetes.io/never-ready": "true"})
    wait_for("sleepy Running", lambda: pod_row(kubectl, "sleepy")[2] == "Running")
    time.sleep(1)  # it would have been Ready by now
    assert pod_row(kubectl, "sleepy")[1:3] == ["0/1", "Running"]
    pod = get_json(kubectl, "pod", "sleepy")
    ready = next(c for c in pod["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ContainersNotReady")
    assert ready["message"] == "containers with unready status: [app]"


def test_failing_container_restarts_into_crash_loop_back_off(kubectl: Kubectl, ready_nodes):
    apply_pod(kubectl, "crashy", annotations={"fake.pybernetes.io/exit-code": "2",
                                              "fake.pybernetes.io/complete-after": "0.2"})
    wait_for("CrashLoopBackOff", lambda: pod_row(kubectl, "crashy")[2] == "CrashLoopBackOff")
    cs = get_json(kubectl, "pod", "crashy")["status"]["containerStatuses"][0]
    assert cs["restartCount"] >= 1
    assert cs["lastState"]["terminated"]["exitCode"] == 2
    assert cs["lastState"]["terminated"]["reason"] == "Error"
    assert "Back-off restarting failed container app" in kubectl("describe", "pod", "crashy")


def test_failing_pod_that_may_not_restart_fails(kubectl: Kubectl, ready_nodes):
    apply_pod(kubectl, "broken", restartPolicy="Never",
              annotations={"fake.pybernetes.io/exit-code": "1"})
    wait_for("broken Failed", lambda: pod_row(kubectl, "broken")[2] == "Error")
    assert get_json(kubectl, "pod", "broken")["status"]["phase"] == "Failed"


def test_pod_too_big_for_the_node_is_rejected(kubectl: Kubectl, ready_nodes):
    big = [{"name": "app", "image": "nginx", "resources": {"requests": {"cpu": "64"}}}]
    apply_pod(kubectl, "huge", containers=big)
    wait_for("huge rejected", lambda: pod_row(kubectl, "huge")[2] == "OutOfcpu")
    st = get_json(kubectl, "pod", "huge")["status"]
    assert st["phase"] == "Failed"
    assert st["message"] == ("Pod was rejected: Node didn't have enough resource: cpu, "
                             "requested: 64000, used: 0, capacity: 32000")


def test_deleted_pod_goes_away(kubectl: Kubectl, ready_nodes):
    apply_pod(kubectl, "doomed", node="fake-2")
    kubectl("wait", "--for=condition=Ready", "pod/doomed", "--timeout=30s")
    kubectl("delete", "pod", "doomed", "--timeout=30s")  # waits until the kubelet let it go
    gone = kubectl.run("get", "pod", "doomed", check=False)
    assert gone.returncode == 1 and "NotFound" in gone.stderr


def test_node_leases_are_renewed(kubectl: Kubectl, ready_nodes):
    def renew_time() -> str:
        return get_json(kubectl, "lease", "fake-0", "-n", "kube-node-lease")["spec"]["renewTime"]
    first = renew_time()
    lease = get_json(kubectl, "lease", "fake-0", "-n", "kube-node-lease")
    assert lease["spec"]["holderIdentity"] == "fake-0"
    assert lease["metadata"]["ownerReferences"][0]["kind"] == "Node"
    wait_for("a renewal", lambda: renew_time() != first, timeout=15)


def test_deleted_node_registers_again(kubectl: Kubectl, ready_nodes):
    old_uid = ready_nodes["fake-2"]["metadata"]["uid"]
    kubectl("delete", "node", "fake-2")

    def back() -> bool:
        got = kubectl.run("get", "node", "fake-2", "-o", "json", check=False)
        if got.returncode != 0:
            return False
        node = json.loads(got.stdout)
        return node["metadata"]["uid"] != old_uid and condition(node, "Ready") == "True" \
            and bool(node["spec"].get("podCIDR"))
    wait_for("fake-2 registered again with a podCIDR", back, timeout=30)


def test_killed_kubelet_makes_nodes_unknown_and_tainted(kubectl: Kubectl, ready_nodes,
                                                       components):
    """Last: it stops the node agent for good."""
    components["kubelet"].stop(signal.SIGKILL)

    def unreachable(name: str) -> bool:
        node = get_json(kubectl, "node", name)
        taints = {t["key"]: t["effect"] for t in node["spec"].get("taints") or []}
        return condition(node, "Ready") == "Unknown" and \
            taints.get("node.kubernetes.io/unreachable") == "NoExecute"
    wait_for("every fake node Unknown and tainted", lambda: all(unreachable(n) for n in NODES),
             timeout=30)
    rows = {line.split()[0]: line.split()[1] for line in
            kubectl("get", "nodes", "--no-headers").splitlines()}
    assert all(rows[n] == "NotReady" for n in NODES)
    described = kubectl("describe", "node", "fake-1")
    assert "NodeStatusUnknown" in described and "Kubelet stopped posting node status." in described
