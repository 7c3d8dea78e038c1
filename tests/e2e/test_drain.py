"""kubectl drain against PodDisruptionBudgets, end to end: a real `pybernetes server`, the
controller manager (Deployment, ReplicaSet and disruption controllers) and the real kubectl
(1.33 and 1.27). A stand-in node agent in this module plays the kubelets of two Node objects
the test creates: it binds new pods to a schedulable node through pods/binding, reports them
Running and Ready, confirms the deletion of terminating pods and keeps the nodes' heartbeats.

The story: three replicas on node A under a budget of minAvailable 2; draining A evicts them
one at a time (the eviction subresource answers 429 while the budget is spent), the
Deployment recreates each on node B, and at no moment are fewer than two pods Ready."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import Cluster, Kubectl, kubectl_binary, start_cluster, wait_for

pytestmark = pytest.mark.kubectl
REPO = Path(__file__).resolve().parents[2]
MERGE = "application/merge-patch+json"
_MAIN = "import sys; from pybernetes.cli.main import main; sys.exit(main(sys.argv[1:]))"


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """A server whose own controller manager, scheduler and node (where it has them) are
    off: this module runs the controller manager itself and plays the nodes."""
    from pybernetes.cli import server
    extra = [a for c in getattr(server, "OPTIONAL", ()) for a in ("--disable", c)]
    c = start_cluster(tmp_path_factory.mktemp("drain"), extra=extra)
    try:
        yield c
    finally:
        c.stop()


class NodeAgent(threading.Thread):
    """The kubelets of `nodes` (and a one-line scheduler): bind, start, stop, heartbeat."""

    def __init__(self, cluster: Cluster):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.nodes: dict[str, str] = {}  # node -> the namespace whose pods it takes
        self.stopping = threading.Event()
        self.ips = 0

    def run(self) -> None:
        beat = 0.0
        while not self.stopping.wait(0.1):
            try:
                if time.monotonic() - beat > 1.0:
                    self._heartbeat()
                    beat = time.monotonic()
                self._tick()
            except Exception:  # noqa: BLE001 - a transient failure: try again next tick
                pass

    def _heartbeat(self) -> None:
        for node in list(self.nodes):
            self.cluster.json("PATCH", f"/api/v1/nodes/{node}/status", {"status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "kubelet is posting ready status",
                                "lastHeartbeatTime": now(), "lastTransitionTime": now()}]}},
                content_type=MERGE)

    def _schedulable(self, ns: str) -> list[str]:
        out = []
        for node in [n for n, owner in list(self.nodes.items()) if owner == ns]:
            status, body = self.cluster.json("GET", f"/api/v1/nodes/{node}")
            if status == 200 and not (body.get("spec") or {}).get("unschedulable"):
                out.append(node)
        return out

    def _tick(self) -> None:
        status, body = self.cluster.json("GET", "/api/v1/pods")
        if status != 200:
            return
        for pod in body["items"]:
            md, spec = pod["metadata"], pod["spec"]
            base = f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}"
            node = spec.get("nodeName")
            if node and node not in self.nodes:
                continue  # not ours
            if md.get("deletionTimestamp"):
                if node:  # the kubelet has stopped the containers: the pod may go
                    self.cluster.request("DELETE", base, {"gracePeriodSeconds": 0,
                                                          "preconditions": {"uid": md["uid"]}})
            elif not node:
                self._bind(base, md)
            elif (pod.get("status") or {}).get("phase") != "Running":
                self._start(base)

    def _bind(self, base: str, md: dict) -> None:
        targets = self._schedulable(md["namespace"])
        if targets:
            self.cluster.json("POST", f"{base}/binding", {
                "apiVersion": "v1", "kind": "Binding", "metadata": {"name": md["name"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": targets[0]}})

    def _start(self, base: str) -> None:
        self.ips += 1
        ip = f"10.42.{self.ips // 250}.{self.ips % 250 + 2}"
        self.cluster.json("PATCH", f"{base}/status", {"status": {
            "phase": "Running", "startTime": now(), "podIP": ip, "podIPs": [{"ip": ip}],
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": now()}]}},
            content_type=MERGE)


@pytest.fixture(scope="module")
def agent(cluster: Cluster) -> Iterator[NodeAgent]:
    log = open(Path(cluster.data_dir) / "controller-manager.log", "ab")
    manager = subprocess.Popen(
        [sys.executable, "-c", _MAIN, "controller-manager", "--kubeconfig", cluster.kubeconfig,
         "--controllers", "deployment,replicaset,disruption,garbagecollector"], cwd=REPO,
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    node_agent = NodeAgent(cluster)
    node_agent.start()
    try:
        yield node_agent
    finally:
        node_agent.stopping.set()
        node_agent.join(5)
        manager.terminate()
        try:
            code = manager.wait(15)
        except subprocess.TimeoutExpired:
            manager.kill()
            code = manager.wait(5)
        log.close()
    assert code == 0, "controller-manager did not stop cleanly on SIGTERM"


def add_node(cluster: Cluster, agent: NodeAgent, name: str, ns: str) -> None:
    status, body = cluster.json("POST", "/api/v1/nodes", {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "e2e": "drain"}},
        "status": {"conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": now(),
                                   "lastTransitionTime": now()}]}})
    assert status == 201, body
    agent.nodes[name] = ns


def web_pods(cluster: Cluster, ns: str) -> list[dict]:
    status, body = cluster.json("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector=app=web")
    assert status == 200, body
    return body["items"]


def ready_on(cluster: Cluster, ns: str, node: str) -> list[str]:
    return [p["metadata"]["name"] for p in web_pods(cluster, ns)
            if p["spec"].get("nodeName") == node and not p["metadata"].get("deletionTimestamp")
            and any(c["type"] == "Ready" and c["status"] == "True"
                    for c in p["status"].get("conditions") or [])]


class ReadySampler(threading.Thread):
    """The fewest Ready, not-terminating web pods seen while it runs."""

    def __init__(self, cluster: Cluster, ns: str):
        super().__init__(daemon=True)
        self.cluster, self.ns = cluster, ns
        self.stopping = threading.Event()
        self.fewest: int | None = None

    def run(self) -> None:
        while not self.stopping.wait(0.05):
            try:
                pods = web_pods(self.cluster, self.ns)
            except Exception:  # noqa: BLE001
                continue
            n = sum(1 for p in pods if not p["metadata"].get("deletionTimestamp") and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in p["status"].get("conditions") or []))
            self.fewest = n if self.fewest is None else min(self.fewest, n)


def table(out: str) -> list[list[str]]:
    return [re.split(r"\s{2,}", line.strip()) for line in out.strip().splitlines()]


def pdb_row(k: Kubectl, ns: str) -> list[str]:
    rows = table(k("get", "pdb", "-n", ns))
    assert rows[0] == ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"]
    return rows[1]


@pytest.mark.parametrize("version", ["1.33", "1.27"])
def test_drain_respects_the_disruption_budget(cluster: Cluster, agent: NodeAgent,
                                              version: str) -> None:
    binary = kubectl_binary(version)
    if binary is None:
        pytest.skip(f"no kubectl {version} on this machine")
    k = Kubectl(binary, cluster.kubeconfig)
    tag = version.replace(".", "")
    ns, node_a, node_b = f"drain-{tag}", f"node-{tag}-a", f"node-{tag}-b"
    k("create", "namespace", ns)
    add_node(cluster, agent, node_a, ns)
    add_node(cluster, agent, node_b, ns)

    # everything starts on A: B is cordoned
    assert f"node/{node_b} cordoned" in k("cordon", node_b)
    assert k("get", "node", node_b, "-o", "jsonpath={.spec.unschedulable}") == "true"
    k("create", "deployment", "web", "--image=registry.local/web:1", "--replicas=3", "-n", ns)
    k("create", "poddisruptionbudget", "web-pdb", "--selector=app=web", "--min-available=2",
      "-n", ns)
    wait_for("three Ready pods on A", lambda: len(ready_on(cluster, ns, node_a)) == 3)
    row = wait_for("the budget to allow one disruption",
                   lambda: (r := pdb_row(k, ns))[3] == "1" and r)
    assert row[:4] == ["web-pdb", "2", "N/A", "1"]
    status = json.loads(k("get", "pdb", "web-pdb", "-n", ns, "-o", "json"))["status"]
    assert (status["currentHealthy"], status["desiredHealthy"], status["expectedPods"]) == \
        (3, 2, 3)
    cond = next(c for c in status["conditions"] if c["type"] == "DisruptionAllowed")
    assert (cond["status"], cond["reason"]) == ("True", "SufficientPods")

    assert f"node/{node_b} uncordoned" in k("uncordon", node_b)
    assert k("get", "node", node_b, "-o", "jsonpath={.spec.unschedulable}") == ""
    sampler = ReadySampler(cluster, ns)
    sampler.start()
    try:
        p = k.run("drain", node_a, "--ignore-daemonsets", "--delete-emptydir-data",
                  "--timeout=120s", timeout=150)
    finally:
        sampler.stopping.set()
        sampler.join(5)
    assert f"node/{node_a} cordoned" in p.stdout
    assert p.stdout.count("evicted") == 3, p.stdout
    assert f"node/{node_a} drained" in p.stdout
    # the budget held the second eviction back until a replacement was Ready on B
    assert "Cannot evict pod as it would violate the pod's disruption budget." in p.stderr
    assert sampler.fewest is not None and sampler.fewest >= 2, sampler.fewest

    assert k("get", "node", node_a, "-o", "jsonpath={.spec.unschedulable}") == "true"
    wait_for("three Ready pods on B", lambda: len(ready_on(cluster, ns, node_b)) == 3)
    assert ready_on(cluster, ns, node_a) == []
    wait_for("the budget to recover", lambda: pdb_row(k, ns)[3] == "1")
    assert f"node/{node_a} uncordoned" in k("uncordon", node_a)


def test_eviction_refused_by_kubectl_drain_without_spare_budget(cluster: Cluster,
                                                                 agent: NodeAgent,
                                                                 kubectl: Kubectl) -> None:
    """maxUnavailable 0: nothing may go; drain gives up at its timeout, the pod stays."""
    k = kubectl
    ns, node = "drain-stuck", "node-stuck"
    k("create", "namespace", ns)
    add_node(cluster, agent, node, ns)
    k("create", "deployment", "web", "--image=registry.local/web:1", "--replicas=1", "-n", ns)
    k("create", "pdb", "web-pdb", "--selector=app=web", "--max-unavailable=0", "-n", ns)
    wait_for("the pod Ready", lambda: len(ready_on(cluster, ns, node)) == 1)
    wait_for("the budget computed", lambda: pdb_row(k, ns)[:4] == ["web-pdb", "N/A", "0", "0"])
    p = k.run("drain", node, "--ignore-daemonsets", "--timeout=4s", check=False)
    assert p.returncode != 0
    assert "Cannot evict pod as it would violate the pod's disruption budget." in p.stderr
    assert len(ready_on(cluster, ns, node)) == 1
    k("uncordon", node)
