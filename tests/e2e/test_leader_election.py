"""High availability end to end: two controller-managers and two schedulers against one
API server, as an HA control plane runs them. One of each holds its kube-system Lease;
SIGKILL it and the standby takes over once the Lease runs out (15 s + a 2 s retry), and
the cluster keeps working: a ReplicaSet gets its pods, a pod gets bound. With the API
server gone, the leaders give up ("leaderelection lost") and exit non-zero."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import pytest

from tests.conftest import Cluster, Kubectl, kubectl_binary, start_cluster

pytestmark = pytest.mark.kubectl
REPO = Path(__file__).resolve().parents[2]
API_ONLY = ["--disable", "controller-manager", "--disable", "scheduler", "--disable", "kubelet"]
LEASE_DURATION, RETRY_PERIOD, RENEW_DEADLINE = 15, 2, 10  # upstream's defaults, ours too
SLACK = 5  # seconds for process scheduling and request latency on a busy machine


@dataclass
class Component:
    """One `pybernetes <command>` process with its own log file."""

    command: str
    lease: str
    index: int
    cluster: Cluster
    proc: subprocess.Popen = field(init=False)
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.cluster.data_dir / f"{self.command}-{self.index}.log"
        extra = ["--leader-elect"] if self.command == "controller-manager" else []
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "pybernetes.cli.main", self.command, "--kubeconfig",
                 self.cluster.kubeconfig, *extra, "--log-level", "info"],
                cwd=REPO, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def acquired(self) -> bool:
        return f"successfully acquired lease kube-system/{self.lease}" in self.log()

    def identity(self) -> str:
        """Its holderIdentity, read from its own log line."""
        for line in self.log().splitlines():
            if f"successfully acquired lease kube-system/{self.lease}" in line:
                return line.split(": successfully acquired")[0].rsplit(" ", 1)[1]
        raise AssertionError(f"{self.command}-{self.index} never led:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def wait_for(check: Callable[[], object], timeout: float, what: str) -> object:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.2)


def lease(kubectl: Kubectl, name: str) -> dict:
    return json.loads(kubectl("get", "lease", name, "-n", "kube-system", "-o", "json"))["spec"]


@pytest.fixture(scope="module")
def ha(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Cluster, list[Component]]]:
    c = start_cluster(tmp_path_factory.mktemp("ha"), extra=API_ONLY)
    parts = [Component(cmd, lease_name, i, c)
             for cmd, lease_name in (("controller-manager", "kube-controller-manager"),
                                     ("scheduler", "kube-scheduler"))
             for i in (1, 2)]
    try:
        yield c, parts
    finally:
        for p in parts:
            p.stop()
        c.stop()


@pytest.fixture(scope="module")
def kubectl(ha: tuple[Cluster, list[Component]]) -> Kubectl:
    binary = kubectl_binary("1.33") or kubectl_binary()
    if binary is None:
        pytest.skip("no kubectl on this machine")
    return Kubectl(binary, ha[0].kubeconfig)


def add_node(kubectl: Kubectl, name: str) -> None:
    node = {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}}}
    kubectl("apply", "-f", "-", input=json.dumps(node))
    alloc = {"cpu": "4", "memory": "8Gi", "pods": "110"}
    ready = {"type": "Ready", "status": "True", "reason": "KubeletReady",
             "lastHeartbeatTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    kubectl("patch", "node", name, "--subresource=status", "--type=merge", "-p",
            json.dumps({"status": {"capacity": alloc, "allocatable": alloc,
                                   "conditions": [ready]}}))


REPLICASET = {
    "apiVersion": "apps/v1", "kind": "ReplicaSet",
    "metadata": {"name": "after-failover", "namespace": "default"},
    "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "after-failover"}},
             "template": {"metadata": {"labels": {"app": "after-failover"}},
                          "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                   "terminationGracePeriodSeconds": 0}}}}


def test_standbys_take_over_from_killed_leaders(ha, kubectl: Kubectl) -> None:
    cluster, parts = ha
    pairs = {}
    for name in ("kube-controller-manager", "kube-scheduler"):
        pair = [p for p in parts if p.lease == name]
        leader = wait_for(lambda: [p for p in pair if p.acquired()], 30, f"a leader of {name}")
        assert len(leader) == 1, f"two leaders of {name}"
        leader = leader[0]
        standby = next(p for p in pair if p is not leader)
        spec = lease(kubectl, name)
        assert spec["holderIdentity"] == leader.identity()
        assert spec["leaseDurationSeconds"] == LEASE_DURATION
        pairs[name] = (leader, standby, spec)
    time.sleep(RETRY_PERIOD * 2)  # renewals go on; standbys stay standbys
    for name, (leader, standby, spec) in pairs.items():
        assert not standby.acquired() and standby.proc.poll() is None
        assert lease(kubectl, name)["holderIdentity"] == spec["holderIdentity"]

    killed_at = time.monotonic()
    for leader, _, _ in pairs.values():
        leader.proc.kill()  # SIGKILL: no release, the Lease just stops being renewed
        leader.proc.wait(5)
    for name, (leader, standby, before) in pairs.items():
        left = LEASE_DURATION + RETRY_PERIOD + SLACK - (time.monotonic() - killed_at)
        wait_for(lambda: lease(kubectl, name)["holderIdentity"] != before["holderIdentity"],
                 max(left, 1), f"{name} taken over")
        after = lease(kubectl, name)
        wait_for(standby.acquired, 10, f"{name}: the standby logs its takeover")
        assert after["holderIdentity"] == standby.identity()
        assert after["leaseTransitions"] == before["leaseTransitions"] + 1

    # the new leaders work: a ReplicaSet gets its pods, and the pods get a node
    kubectl("apply", "-f", "-", input=json.dumps(REPLICASET))

    def pods() -> list[dict]:
        return json.loads(kubectl("get", "pods", "-l", "app=after-failover",
                                  "-o", "json"))["items"]
    wait_for(lambda: len(pods()) == 3, 30, "the ReplicaSet's pods created")
    add_node(kubectl, "ha-node")
    wait_for(lambda: all(p["spec"].get("nodeName") == "ha-node" for p in pods()), 30,
             "the pods bound to the new node")
    rs = json.loads(kubectl("get", "rs", "after-failover", "-o", "json"))
    assert rs["status"]["replicas"] == 3

    # without an API server the leaders cannot renew: they stop and exit non-zero
    cluster.stop()
    for name, (_, standby, _) in pairs.items():
        code = standby.proc.wait(RETRY_PERIOD + RENEW_DEADLINE + SLACK + 10)
        assert code == 1, standby.log()[-3000:]
        assert "leaderelection lost" in standby.log()
