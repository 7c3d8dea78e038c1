"""Workloads end to end on a whole cluster: `pybernetes server` with its controller
manager, scheduler and a fake-runtime kubelet simulating three nodes, driven by the
real kubectl as the classic walkthroughs do. Pods are steered through the fake
runtime's annotations (never ready, exit codes) where a walkthrough needs it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import (OPTIONAL_COMPONENTS, Cluster, Kubectl, start_cluster,
                            wait_for)

pytestmark = pytest.mark.kubectl
NODES = ["e2e-0", "e2e-1", "e2e-2"]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
NEVER_READY = {"fake.pybernetes.io/never-ready": "true"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Every component; nodes heartbeat each second and are declared dead after 3 s."""
    c = start_cluster(tmp_path_factory.mktemp("workloads"), components=OPTIONAL_COMPONENTS,
                      extra=["--node-name", "e2e", "--kubelet-runtime", "fake",
                             "--kubelet-arg", "fake-nodes=3",
                             "--kubelet-arg", "heartbeat-period=0.5",
                             "--kube-controller-manager-arg", "node-monitor-grace-period=3",
                             "--kube-controller-manager-arg", "node-monitor-period=0.5"])
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def nodes(cluster: Cluster, kubectl: Kubectl) -> list[str]:
    wait_for("3 Ready nodes", lambda: kubectl("get", "nodes", "--no-headers").count(" Ready ")
             == 3)
    return NODES


@pytest.fixture
def ns(cluster: Cluster, kubectl: Kubectl, nodes, request) -> str:
    name = "t-" + request.node.name.replace("_", "-")[5:40].strip("-").lower()
    kubectl("create", "namespace", name)
    wait_for("its default ServiceAccount", lambda: cluster.has_default_service_account(name))
    return name


def pods(cluster: Cluster, ns: str, selector: str = "app=web") -> list[dict]:
    status, body = cluster.json("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}")
    assert status == 200, body
    return [p for p in body["items"] if not p["metadata"].get("deletionTimestamp")]


class Sampler(threading.Thread):
    """Samples (live pods, ready pods, images) of a namespace until stopped."""

    def __init__(self, cluster: Cluster, ns: str):
        super().__init__(daemon=True)
        self.cluster, self.ns = cluster, ns
        self.stopping = threading.Event()
        self.samples: list[tuple[int, int, frozenset]] = []
        self.rs_totals: list[int] = []     # the ReplicaSets' spec.replicas, summed

    def run(self) -> None:
        while not self.stopping.wait(0.05):
            live = pods(self.cluster, self.ns)
            ready = [p for p in live if any(c["type"] == "Ready" and c["status"] == "True"
                                            for c in (p.get("status") or {}).get("conditions") or [])]
            images = frozenset(p["spec"]["containers"][0]["image"] for p in live)
            self.samples.append((len(live), len(ready), images))
            status, body = self.cluster.json(
                "GET", f"/apis/apps/v1/namespaces/{self.ns}/replicasets")
            if status == 200:
                self.rs_totals.append(sum((rs.get("spec") or {}).get("replicas", 0)
                                          for rs in body["items"]))

    def __enter__(self) -> "Sampler":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.join(5)


def set_never_ready_image(kubectl: Kubectl, ns: str) -> None:
    """A broken release: image never-ready:1, whose containers run but never get ready."""
    kubectl("patch", "deploy/web", "-n", ns, "-p", json.dumps(
        {"spec": {"template": {"metadata": {"annotations": NEVER_READY}, "spec": {
            "containers": [{"name": "nginx", "image": "never-ready:1"}]}}}}))


def rollout(kubectl: Kubectl, ns: str, name: str = "web") -> str:
    return kubectl("rollout", "status", f"deploy/{name}", "-n", ns, "--timeout=60s", timeout=70)


def test_walkthrough_nginx_and_hello_world(cluster: Cluster, kubectl: Kubectl, ns: str,
                                           nodes: list[str]):
    """The classic first steps: apply the examples, watch them converge, update nginx."""
    for f in ("nginx-deployment.yaml", "hello-world-deployment.yaml"):
        kubectl("apply", "-n", ns, "-f", str(EXAMPLES / f))
    rollout(kubectl, ns, "nginx-deployment")
    rollout(kubectl, ns, "hello-world")
    out = kubectl("get", "deployments,replicasets,pods", "-n", ns)
    blocks = [b.splitlines() for b in out.strip().split("\n\n")]
    assert [b[0].split() for b in blocks] == [
        ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
        ["NAME", "DESIRED", "CURRENT", "READY", "AGE"],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]]
    deploys = {r.split()[0]: r.split()[1:4] for r in blocks[0][1:]}
    assert deploys == {"deployment.apps/nginx-deployment": ["3/3", "3", "3"],
                       "deployment.apps/hello-world": ["5/5", "5", "5"]}
    assert sorted(r.split()[1:4] for r in blocks[1][1:]) == [["3", "3", "3"], ["5", "5", "5"]]
    assert len(blocks[2]) == 1 + 8 and all(r.split()[1:3] == ["1/1", "Running"]
                                           for r in blocks[2][1:])
    placed = {p["spec"]["nodeName"] for p in pods(cluster, ns, "app=nginx")}
    assert placed == set(nodes)  # three replicas, three nodes
    kubectl("set", "image", "deployment/nginx-deployment", "nginx=nginx:1.16.1", "-n", ns)
    assert "successfully rolled out" in rollout(kubectl, ns, "nginx-deployment")
    assert {p["spec"]["containers"][0]["image"]
            for p in pods(cluster, ns, "app=nginx")} == {"nginx:1.16.1"}
    kubectl("expose", "deployment", "hello-world", "--type=LoadBalancer", "--name=my-service",
            "-n", ns)
    wait_for("5 endpoints behind my-service", lambda: kubectl(
        "get", "endpoints", "my-service", "-n", ns, "-o",
        "jsonpath={.subsets[*].addresses[*].ip}").count(".") == 5 * 3)


def test_three_replicas_converge_with_events(cluster: Cluster, kubectl: Kubectl, ns: str):
    kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=3", "-n", ns)
    assert "successfully rolled out" in rollout(kubectl, ns)
    live = pods(cluster, ns)
    assert len(live) == 3
    rs = json.loads(kubectl("get", "rs", "-n", ns, "-o", "json"))["items"]
    assert len(rs) == 1
    h = rs[0]["metadata"]["labels"]["pod-template-hash"]
    assert rs[0]["metadata"]["name"] == f"web-{h}"
    assert rs[0]["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    assert all(p["metadata"]["labels"]["pod-template-hash"] == h for p in live)
    assert all(p["metadata"]["ownerReferences"][0]["name"] == f"web-{h}" for p in live)
    d = json.loads(kubectl("get", "deploy", "web", "-n", ns, "-o", "json"))
    st = d["status"]
    assert (st["replicas"], st["updatedReplicas"], st["readyReplicas"], st["availableReplicas"]) \
        == (3, 3, 3, 3)
    assert st["observedGeneration"] == d["metadata"]["generation"]
    conds = {c["type"]: c for c in st["conditions"]}
    assert conds["Available"]["reason"] == "MinimumReplicasAvailable"
    assert conds["Progressing"]["reason"] == "NewReplicaSetAvailable"
    assert d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "1"
    events = wait_for("events", lambda: (e := kubectl("get", "events", "-n", ns)) and
                      "Created pod: web-" in e and e)
    assert f"Scaled up replica set web-{h} from 0 to 3" in events
    assert "SuccessfulCreate" in events and "ScalingReplicaSet" in events
    out = kubectl("get", "deploy", "web", "-n", ns)
    assert "3/3" in out.splitlines()[1]


def test_deleted_pod_comes_back_and_scale(cluster: Cluster, kubectl: Kubectl, ns: str):
    kubectl("create", "deployment", "web", "--image=nginx", "--replicas=3", "-n", ns)
    rollout(kubectl, ns)
    victim = pods(cluster, ns)[0]["metadata"]["name"]
    kubectl("delete", "pod", victim, "-n", ns, "--wait=false")
    names = wait_for("a replacement pod", lambda: (n := {p["metadata"]["name"] for p in pods(cluster, ns)})
                     and len(n) == 3 and victim not in n and n)
    assert victim not in names
    kubectl("scale", "deploy/web", "--replicas=5", "-n", ns)
    rollout(kubectl, ns)
    assert len(pods(cluster, ns)) == 5
    # a pod that turned unready is the first to go on scale-down
    sick = pods(cluster, ns)[3]["metadata"]["name"]
    # its readiness fails from now on (the fake runtime's stand-in for a failing probe)
    kubectl("annotate", "pod", sick, "-n", ns, "fake.pybernetes.io/never-ready=true")
    wait_for("4 ready", lambda: kubectl("get", "deploy/web", "-n", ns, "-o",
                                        "jsonpath={.status.readyReplicas}") == "4")
    kubectl("scale", "deploy/web", "--replicas=4", "-n", ns)
    wait_for("4 pods", lambda: len(pods(cluster, ns)) == 4)
    assert sick not in {p["metadata"]["name"] for p in pods(cluster, ns)}
    kubectl("scale", "deploy/web", "--replicas=2", "-n", ns)
    rollout(kubectl, ns)
    wait_for("2 pods", lambda: len(pods(cluster, ns)) == 2)
    kubectl("rollout", "restart", "deploy/web", "-n", ns)
    rollout(kubectl, ns)
    assert len(json.loads(kubectl("get", "rs", "-n", ns, "-o", "json"))["items"]) == 2
    events = kubectl("get", "events", "-n", ns)
    assert "Deleted pod: web-" in events and "Scaled down replica set web-" in events


def test_rolling_update_respects_surge_and_unavailable(cluster: Cluster, kubectl: Kubectl, ns: str):
    kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=4", "-n", ns)
    kubectl("patch", "deploy/web", "-n", ns, "-p", json.dumps(
        {"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}}}))
    rollout(kubectl, ns)
    with Sampler(cluster, ns) as s:
        kubectl("set", "image", "deploy/web", "nginx=nginx:1.26", "-n", ns)
        rollout(kubectl, ns)
        time.sleep(0.3)
    assert s.samples and s.rs_totals
    # maxSurge bounds what the controller asks for: the ReplicaSets' replicas together.
    # Pods follow: for a moment an old pod its ReplicaSet is about to delete can still be
    # live beside the new one (the two ReplicaSets are synced apart, upstream too).
    assert max(s.rs_totals) <= 4 + 1
    assert max(n for n, _, _ in s.samples) <= 4 + 1 + 1
    assert min(r for _, r, _ in s.samples) >= 4 - 1
    assert any(len(imgs) == 2 for _, _, imgs in s.samples)  # old and new side by side
    assert {p["spec"]["containers"][0]["image"] for p in pods(cluster, ns)} == {"nginx:1.26"}
    rs = json.loads(kubectl("get", "rs", "-n", ns, "-o", "json"))["items"]
    sizes = sorted((r["metadata"]["annotations"]["deployment.kubernetes.io/revision"],
                    r["spec"]["replicas"]) for r in rs)
    assert sizes == [("1", 0), ("2", 4)]


def test_history_and_undo_to_revision(cluster: Cluster, kubectl: Kubectl, ns: str):
    kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=2", "-n", ns)
    rollout(kubectl, ns)
    kubectl("set", "image", "deploy/web", "nginx=nginx:1.26", "-n", ns)
    kubectl("annotate", "deploy/web", "-n", ns, "kubernetes.io/change-cause=bump to 1.26")
    rollout(kubectl, ns)
    history = kubectl("rollout", "history", "deploy/web", "-n", ns)
    lines = [ln.split() for ln in history.splitlines() if ln[:1].isdigit()]
    assert [ln[0] for ln in lines] == ["1", "2"]
    assert "bump to 1.26" in history
    assert "nginx:1.25" in kubectl("rollout", "history", "deploy/web", "-n", ns, "--revision=1")
    kubectl("rollout", "undo", "deploy/web", "--to-revision=1", "-n", ns)
    rollout(kubectl, ns)
    assert {p["spec"]["containers"][0]["image"] for p in pods(cluster, ns)} == {"nginx:1.25"}
    history = kubectl("rollout", "history", "deploy/web", "-n", ns)
    assert [ln.split()[0] for ln in history.splitlines() if ln[:1].isdigit()] == ["2", "3"]
    rs = json.loads(kubectl("get", "rs", "-n", ns, "-o", "json"))["items"]
    assert len(rs) == 2  # the old set came back; no third one
    revived = next(r for r in rs if r["spec"]["replicas"] == 2)
    assert revived["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"] == "1"


def test_recreate_never_mixes_versions(cluster: Cluster, kubectl: Kubectl, ns: str):
    kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=3", "-n", ns)
    kubectl("patch", "deploy/web", "-n", ns, "-p",
            json.dumps({"spec": {"strategy": {"type": "Recreate", "rollingUpdate": None}}}))
    rollout(kubectl, ns)
    with Sampler(cluster, ns) as s:
        kubectl("set", "image", "deploy/web", "nginx=nginx:1.26", "-n", ns)
        rollout(kubectl, ns)
    assert all(len(imgs) <= 1 for _, _, imgs in s.samples)
    assert {p["spec"]["containers"][0]["image"] for p in pods(cluster, ns)} == {"nginx:1.26"}


def test_pause_resume_and_history_limit(cluster: Cluster, kubectl: Kubectl, ns: str):
    kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=2", "-n", ns)
    kubectl("patch", "deploy/web", "-n", ns, "-p", '{"spec":{"revisionHistoryLimit":1}}')
    rollout(kubectl, ns)
    kubectl("rollout", "pause", "deploy/web", "-n", ns)
    kubectl("set", "image", "deploy/web", "nginx=nginx:1.26", "-n", ns)
    wait_for("Progressing DeploymentPaused", lambda: "DeploymentPaused" in kubectl(
        "get", "deploy/web", "-n", ns, "-o", "jsonpath={.status.conditions[*].reason}"))
    assert len(json.loads(kubectl("get", "rs", "-n", ns, "-o", "json"))["items"]) == 1
    kubectl("rollout", "resume", "deploy/web", "-n", ns)
    rollout(kubectl, ns)
    kubectl("set", "image", "deploy/web", "nginx=nginx:1.27", "-n", ns)
    rollout(kubectl, ns)
    rs = wait_for("history pruned to 1 old set", lambda: (
        items := json.loads(kubectl("get", "rs", "-n", ns, "-o", "json"))["items"]) and
        len(items) == 2 and items)
    images = sorted(r["spec"]["template"]["spec"]["containers"][0]["image"] for r in rs)
    assert images == ["nginx:1.26", "nginx:1.27"]


def test_replicaset_adopts_orphans_and_releases_relabelled_pods(cluster: Cluster, kubectl: Kubectl,
                                                                ns: str):
    manifest = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": "front", "namespace": ns},
                "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "front"}},
                         "template": {"metadata": {"labels": {"app": "front"}},
                                      "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    kubectl("run", "stray", "--image=nginx", "--labels=app=front", "-n", ns)
    kubectl("apply", "-f", "-", input=json.dumps(manifest))
    got = wait_for("2 pods, the stray adopted", lambda: (
        ps := pods(cluster, ns, "app=front")) and len(ps) == 2 and
        all(p["metadata"].get("ownerReferences") for p in ps) and ps)
    assert "stray" in {p["metadata"]["name"] for p in got}
    kubectl("label", "pod", "stray", "-n", ns, "app=gone", "--overwrite")
    wait_for("stray released and replaced", lambda: len(pods(cluster, ns, "app=front")) == 2 and
             not json.loads(kubectl("get", "pod", "stray", "-n", ns, "-o", "json"))["metadata"]
             .get("ownerReferences"))
    out = kubectl("get", "rs", "front", "-n", ns, "-o", "jsonpath={.status.replicas}/"
                  "{.status.readyReplicas}/{.status.observedGeneration}")
    wait_for("rs status", lambda: kubectl("get", "rs", "front", "-n", ns, "-o",
                                          "jsonpath={.status.readyReplicas}") == "2")
    assert out.startswith("2/")


def test_cascading_deletes(cluster: Cluster, kubectl: Kubectl, ns: str):
    for name in ("bg", "orphan", "fg"):
        kubectl("create", "deployment", name, "--image=nginx", "--replicas=2", "-n", ns)
    for name in ("bg", "orphan", "fg"):
        rollout(kubectl, ns, name)
    kubectl("delete", "deploy", "bg", "-n", ns)  # background: the collector follows up
    wait_for("bg's replica set and pods collected", lambda: not pods(cluster, ns, "app=bg") and
             not json.loads(kubectl("get", "rs", "-n", ns, "-l", "app=bg", "-o", "json"))["items"])
    kubectl("delete", "deploy", "orphan", "-n", ns, "--cascade=orphan")
    rs = json.loads(kubectl("get", "rs", "-n", ns, "-l", "app=orphan", "-o", "json"))["items"]
    assert len(rs) == 1 and not rs[0]["metadata"].get("ownerReferences")
    assert len(pods(cluster, ns, "app=orphan")) == 2
    kubectl("delete", "deploy", "fg", "-n", ns, "--cascade=foreground", "--timeout=30s",
            timeout=40)
    assert not pods(cluster, ns, "app=fg")
    assert "NotFound" in kubectl.run("get", "deploy", "fg", "-n", ns, check=False).stderr


def test_namespace_defaults_then_deletion_empties_it(cluster: Cluster, kubectl: Kubectl,
                                                     nodes):
    kubectl("create", "namespace", "doomed")
    wait_for("default service account", lambda: kubectl.run(
        "get", "serviceaccount", "default", "-n", "doomed", check=False).returncode == 0)
    ca = wait_for("root CA configmap", lambda: kubectl(
        "get", "configmap", "kube-root-ca.crt", "-n", "doomed", "-o", "jsonpath={.data.ca\\.crt}",
        check=False))
    assert ca.startswith("-----BEGIN CERTIFICATE-----")
    uid = kubectl("get", "serviceaccount", "default", "-n", "doomed", "-o", "jsonpath={.metadata.uid}")
    kubectl("delete", "serviceaccount", "default", "-n", "doomed")
    wait_for("default service account recreated", lambda: kubectl(
        "get", "serviceaccount", "default", "-n", "doomed", "-o", "jsonpath={.metadata.uid}",
        check=False) not in ("", uid))
    kubectl("create", "deployment", "web", "--image=nginx", "--replicas=2", "-n", "doomed")
    kubectl("create", "configmap", "settings", "--from-literal=a=b", "-n", "doomed")
    rollout(kubectl, "doomed")
    kubectl("delete", "namespace", "doomed", "--timeout=60s", timeout=70)
    assert "NotFound" in kubectl.run("get", "namespace", "doomed", check=False).stderr
    status, body = cluster.json("GET", "/api/v1/namespaces/doomed/pods")
    assert status == 200 and body["items"] == []


def test_stuck_rollout_exceeds_progress_deadline_and_undo_recovers(cluster: Cluster,
                                                                    kubectl: Kubectl, ns: str):
    kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=2", "-n", ns)
    kubectl("patch", "deploy/web", "-n", ns, "-p", '{"spec":{"progressDeadlineSeconds":2}}')
    rollout(kubectl, ns)
    set_never_ready_image(kubectl, ns)
    p = kubectl.run("rollout", "status", "deploy/web", "-n", ns, "--timeout=30s", check=False,
                    timeout=40)
    assert p.returncode != 0
    assert 'deployment "web" exceeded its progress deadline' in p.stderr
    d = json.loads(kubectl("get", "deploy/web", "-n", ns, "-o", "json"))
    cond = next(c for c in d["status"]["conditions"] if c["type"] == "Progressing")
    assert (cond["status"], cond["reason"]) == ("False", "ProgressDeadlineExceeded")
    assert cond["message"].endswith("has timed out progressing.")
    # maxUnavailable 25% of 2 rounds down to 0: both old pods kept serving
    assert d["status"]["availableReplicas"] == 2 and d["status"]["unavailableReplicas"] == 1
    kubectl("rollout", "undo", "deploy/web", "-n", ns)
    assert "successfully rolled out" in rollout(kubectl, ns)


def test_min_ready_seconds_delays_availability(cluster: Cluster, kubectl: Kubectl, ns: str):
    manifest = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
                "spec": {"replicas": 2, "minReadySeconds": 3,
                         "selector": {"matchLabels": {"app": "web"}},
                         "template": {"metadata": {"labels": {"app": "web"}},
                                      "spec": {"containers": [{"name": "c", "image": "nginx"}]}}}}
    started = time.monotonic()
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(manifest))
    wait_for("2 ready pods", lambda: kubectl("get", "deploy/web", "-n", ns, "-o",
                                             "jsonpath={.status.readyReplicas}") == "2")
    assert kubectl("get", "deploy/web", "-n", ns, "-o",
                   "jsonpath={.status.availableReplicas}") in ("", "0")
    rollout(kubectl, ns)
    assert time.monotonic() - started >= 3
    rs = json.loads(kubectl("get", "rs", "-n", ns, "-o", "json"))["items"][0]
    assert rs["spec"]["minReadySeconds"] == 3 and rs["status"]["availableReplicas"] == 2
    # raising minReadySeconds on a running deployment reaches its ReplicaSet
    kubectl("patch", "deploy/web", "-n", ns, "-p", '{"spec":{"minReadySeconds":5}}')
    wait_for("rs minReadySeconds 5", lambda: kubectl(
        "get", "rs", "-n", ns, "-o", "jsonpath={.items[0].spec.minReadySeconds}") == "5")


def test_scaling_mid_rollout_is_proportional(cluster: Cluster, kubectl: Kubectl, ns: str):
    kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=4", "-n", ns)
    kubectl("patch", "deploy/web", "-n", ns, "-p", json.dumps(
        {"spec": {"strategy": {"rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}}}))
    rollout(kubectl, ns)
    set_never_ready_image(kubectl, ns)

    def sizes() -> dict[str, int]:
        items = json.loads(kubectl("get", "rs", "-n", ns, "-o", "json"))["items"]
        return {r["spec"]["template"]["spec"]["containers"][0]["image"]: r["spec"]["replicas"]
                for r in items}
    # stuck: 3 old (one may be unavailable) + 2 new (4 + 1 surge)
    wait_for("stuck mid-rollout", lambda: sizes() == {"nginx:1.25": 3, "never-ready:1": 2})
    time.sleep(0.5)
    assert sizes() == {"nginx:1.25": 3, "never-ready:1": 2}
    kubectl("scale", "deploy/web", "--replicas=8", "-n", ns)
    # 8 + 1 surge = 9 allowed, the 4 extra split by size 3:2 (5.4 -> 5, 3.6 -> 4)
    wait_for("proportional scale-up", lambda: sizes() == {"nginx:1.25": 5, "never-ready:1": 4})
    events = kubectl("get", "events", "-n", ns)
    assert "from 3 to 5" in events and "from 2 to 4" in events


def test_rollout_survives_sigkilled_controller_manager_and_scheduler(cluster: Cluster,
                                                                     kubectl: Kubectl, ns: str):
    """Idempotent reconciles: kill -9 the controller manager and the scheduler again
    and again during a 200-replica rollout (the server restarts them; each new one
    waits out its predecessor's Lease); it converges with exactly the desired pods,
    none duplicated or lost."""
    kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=200", "-n", ns)
    kubectl("rollout", "status", "deploy/web", "-n", ns, "--timeout=120s", timeout=130)
    kubectl("set", "image", "deploy/web", "nginx=nginx:1.26", "-n", ns)
    killed = []
    for victim, delay in (("controller-manager", 0.5), ("scheduler", 0.5),
                          ("controller-manager", 3.0), ("scheduler", 1.0)):
        time.sleep(delay)
        pid = wait_for(f"{victim} running", lambda: cluster.component_pid(victim))
        os.kill(pid, signal.SIGKILL)
        killed.append((victim, pid))
    kubectl("rollout", "status", "deploy/web", "-n", ns, "--timeout=150s", timeout=160)
    live = wait_for("exactly 200 new pods", lambda: (ps := pods(cluster, ns)) and len(ps) == 200
                    and {p["spec"]["containers"][0]["image"] for p in ps} == {"nginx:1.26"}
                    and ps)
    assert len({p["metadata"]["name"] for p in live}) == 200
    assert all(p["spec"].get("nodeName") in NODES for p in live)
    time.sleep(1)  # nothing more happens after convergence
    assert len(pods(cluster, ns)) == 200
    rs = json.loads(kubectl("get", "rs", "-n", ns, "-o", "json"))["items"]
    assert sorted(r["spec"]["replicas"] for r in rs) == [0, 200]
    for victim, pid in killed:  # the supervisor brought up new ones
        assert cluster.component_pid(victim) not in (None, pid)


def test_service_endpoints_follow_ready_pods(cluster: Cluster, kubectl: Kubectl, ns: str):
    docs = [{"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
             "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                      "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [
                          {"name": "c", "image": "nginx",
                           "ports": [{"name": "http", "containerPort": 8080}]}]}}}},
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
             "spec": {"selector": {"app": "web"},
                      "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}}]
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List",
                                                            "items": docs}))
    rollout(kubectl, ns)
    ips = sorted(p["status"]["podIP"] for p in pods(cluster, ns))

    def endpoint_ips() -> list[str]:
        ep = json.loads(kubectl("get", "endpoints", "web", "-n", ns, "-o", "json", check=False)
                        or "{}")
        return sorted(a["ip"] for s in ep.get("subsets") or [] for a in s.get("addresses") or [])
    wait_for("3 endpoints", lambda: endpoint_ips() == ips)
    out = kubectl("get", "endpoints", "web", "-n", ns)
    assert ":8080" in out
    slices = json.loads(kubectl("get", "endpointslices", "-n", ns, "-l",
                                "kubernetes.io/service-name=web", "-o", "json"))["items"]
    assert len(slices) == 1 and slices[0]["ports"][0]["port"] == 8080
    assert sorted(e["addresses"][0] for e in slices[0]["endpoints"]) == ips
    kubectl("scale", "deploy/web", "--replicas=1", "-n", ns)
    wait_for("1 endpoint", lambda: len(endpoint_ips()) == 1)
    kubectl("delete", "service", "web", "-n", ns)
    wait_for("endpoints and slices gone", lambda: "NotFound" in kubectl.run(
        "get", "endpoints", "web", "-n", ns, check=False).stderr and not json.loads(kubectl(
            "get", "endpointslices", "-n", ns, "-o", "json"))["items"])


def job_manifest(name: str, exit_code: str, **spec) -> str:
    return json.dumps({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
                       "spec": {**spec, "template": {
                           "metadata": {"annotations": {
                               "fake.pybernetes.io/exit-code": exit_code}},
                           "spec": {"restartPolicy": "Never",
                                    "containers": [{"name": "c", "image": "busybox"}]}}}})


def test_jobs_complete_fail_and_expire(cluster: Cluster, kubectl: Kubectl, ns: str):
    kubectl("apply", "-n", ns, "-f", "-", input=job_manifest("pi", "0", completions=4,
                                                               parallelism=2))
    kubectl("wait", "--for=condition=complete", "job/pi", "-n", ns, "--timeout=30s", timeout=40)
    job = json.loads(kubectl("get", "job", "pi", "-n", ns, "-o", "json"))
    assert job["status"]["succeeded"] == 4 and "active" not in job["status"]
    assert job["status"]["completionTime"] and job["status"]["startTime"]
    assert [c["type"] for c in job["status"]["conditions"]] == ["SuccessCriteriaMet", "Complete"]
    assert "1/1" not in kubectl("get", "job", "pi", "-n", ns)  # COMPLETIONS shows 4/4
    assert "4/4" in kubectl("get", "job", "pi", "-n", ns)
    events = kubectl("get", "events", "-n", ns)
    assert "Created pod: pi-" in events and "Job completed" in events

    kubectl("apply", "-n", ns, "-f", "-", input=job_manifest("idx", "0", completions=3,
                                                               parallelism=3,
                                                               completionMode="Indexed"))
    kubectl("wait", "--for=condition=complete", "job/idx", "-n", ns, "--timeout=30s", timeout=40)
    assert kubectl("get", "job", "idx", "-n", ns, "-o",
                   "jsonpath={.status.completedIndexes}") == "0-2"
    names = {p["metadata"]["name"].rsplit("-", 1)[0] for p in pods(cluster, ns, "job-name=idx")}
    assert names == {"idx-0", "idx-1", "idx-2"}

    kubectl("apply", "-n", ns, "-f", "-", input=job_manifest("bad", "1", backoffLimit=1))
    kubectl("wait", "--for=condition=failed", "job/bad", "-n", ns, "--timeout=30s", timeout=40)
    job = json.loads(kubectl("get", "job", "bad", "-n", ns, "-o", "json"))
    assert job["status"]["failed"] == 2
    failed = next(c for c in job["status"]["conditions"] if c["type"] == "Failed")
    assert failed["reason"] == "BackoffLimitExceeded"

    kubectl("apply", "-n", ns, "-f", "-", input=job_manifest("brief", "0", ttlSecondsAfterFinished=1))
    kubectl("wait", "--for=delete", "job/brief", "-n", ns, "--timeout=30s", timeout=40)


def test_cronjob_fires_on_the_minute(cluster: Cluster, kubectl: Kubectl, ns: str):
    cj = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "tick"},
          "spec": {"schedule": "* * * * *", "concurrencyPolicy": "Forbid",
                   "jobTemplate": {"spec": {"template": {
                       "spec": {"restartPolicy": "Never",
                                "containers": [{"name": "c", "image": "busybox"}]}}}}}}
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(cj))
    jobs = wait_for("a job from the schedule", lambda: json.loads(kubectl(
        "get", "jobs", "-n", ns, "-o", "json"))["items"], timeout=75)
    job = jobs[0]
    assert job["metadata"]["ownerReferences"][0]["name"] == "tick"
    scheduled = job["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"]
    assert scheduled.endswith(":00Z")
    minutes = int(datetime.fromisoformat(scheduled.replace("Z", "+00:00")).timestamp() // 60)
    assert job["metadata"]["name"] == f"tick-{minutes}"
    kubectl("wait", "--for=condition=complete", f"job/{job['metadata']['name']}", "-n", ns,
            "--timeout=30s", timeout=40)
    wait_for("lastSuccessfulTime", lambda: kubectl(
        "get", "cronjob", "tick", "-n", ns, "-o", "jsonpath={.status.lastSuccessfulTime}"))
    st = json.loads(kubectl("get", "cronjob", "tick", "-n", ns, "-o", "json"))["status"]
    assert st["lastScheduleTime"] == scheduled and "active" not in st
    assert f"Created job tick-{minutes}" in kubectl("get", "events", "-n", ns)


def test_statefulset_orders_pods_keeps_claims_and_partitions(cluster: Cluster, kubectl: Kubectl,
                                                             ns: str):
    sts = {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
           "spec": {"replicas": 3, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                    "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [
                        {"name": "c", "image": "postgres:15"}]}},
                    "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": "1Gi"}}}}]}}
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(sts))
    kubectl("rollout", "status", "sts/db", "-n", ns, "--timeout=60s", timeout=70)
    live = sorted(pods(cluster, ns, "app=db"), key=lambda p: p["metadata"]["name"])
    assert [p["metadata"]["name"] for p in live] == ["db-0", "db-1", "db-2"]
    created = [p["metadata"]["creationTimestamp"] for p in live]
    started = [p["status"]["startTime"] for p in live]
    assert created[1] >= started[0] and created[2] >= started[1]  # each waited for the last
    assert live[1]["spec"]["hostname"] == "db-1" and live[1]["spec"]["subdomain"] == "db"
    claims = {v["persistentVolumeClaim"]["claimName"] for p in live for v in p["spec"]["volumes"]
              if "persistentVolumeClaim" in v}
    assert claims == {"data-db-0", "data-db-1", "data-db-2"}
    pvcs = kubectl("get", "pvc", "-n", ns, "-o", "name")
    assert all(f"persistentvolumeclaim/{c}" in pvcs for c in claims)

    kubectl("patch", "sts/db", "-n", ns, "-p",
            '{"spec":{"updateStrategy":{"rollingUpdate":{"partition":1}}}}')
    kubectl("set", "image", "sts/db", "c=postgres:16", "-n", ns)
    kubectl("rollout", "status", "sts/db", "-n", ns, "--timeout=60s", timeout=70)
    images = {p["metadata"]["name"]: p["spec"]["containers"][0]["image"]
              for p in pods(cluster, ns, "app=db")}
    assert images == {"db-0": "postgres:15", "db-1": "postgres:16", "db-2": "postgres:16"}
    revs = json.loads(kubectl("get", "controllerrevisions", "-n", ns, "-o", "json"))["items"]
    assert sorted(r["revision"] for r in revs) == [1, 2]

    kubectl("scale", "sts/db", "--replicas=1", "-n", ns)
    wait_for("scaled to db-0", lambda: [p["metadata"]["name"]
                                        for p in pods(cluster, ns, "app=db")] == ["db-0"])
    assert "data-db-2" in kubectl("get", "pvc", "-n", ns, "-o", "name")  # claims are kept


def test_daemonset_runs_one_pod_per_eligible_node(cluster: Cluster, kubectl: Kubectl,
                                                  ns: str, nodes: list[str]):
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {
                       "containers": [{"name": "c", "image": "agent:1"}]}}}}
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(ds))
    kubectl("rollout", "status", "ds/agent", "-n", ns, "--timeout=60s", timeout=70)

    def placement() -> dict[str, str]:
        return {p["spec"]["nodeName"]: p["spec"]["containers"][0]["image"]
                for p in pods(cluster, ns, "app=agent") if p["status"].get("phase") == "Running"}
    assert placement() == {n: "agent:1" for n in nodes}  # every fake node
    out = kubectl("get", "ds", "agent", "-n", ns).splitlines()
    assert out[0].split() == ["NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                              "NODE", "SELECTOR", "AGE"]
    assert out[1].split()[1:6] == ["3", "3", "3", "3", "3"]
    kubectl("set", "image", "ds/agent", "c=agent:2", "-n", ns)
    kubectl("rollout", "status", "ds/agent", "-n", ns, "--timeout=60s", timeout=70)
    assert wait_for("agent:2 everywhere", lambda: placement() == {n: "agent:2" for n in nodes})
    # a node selector narrows it: the pod leaves the node that lacks the label
    kubectl("label", "node", nodes[0], nodes[1], "ds-test=yes")
    try:
        kubectl("patch", "ds/agent", "-n", ns, "-p",
                '{"spec":{"template":{"spec":{"nodeSelector":{"ds-test":"yes"}}}}}')
        wait_for("pods only on labelled nodes", lambda: set(placement()) == set(nodes[:2]))
    finally:
        kubectl("label", "node", nodes[0], nodes[1], "ds-test-")


def test_dead_node_pods_are_evicted_and_replaced_elsewhere(cluster: Cluster, kubectl: Kubectl,
                                                           ns: str, nodes: list[str]):
    """A fifth fake node runs in its own kubelet process; its pods tolerate an
    unreachable node for 3 s. Kill that kubelet: the node goes Unknown, is tainted,
    its pods are evicted after the toleration and replaced on the live nodes."""
    log = open(cluster.data_dir / "dying-kubelet.log", "ab")
    kubelet = subprocess.Popen(
        [sys.executable, "-m", "pybernetes.cli.main", "kubelet", "--runtime", "fake",
         "--kubeconfig", cluster.kubeconfig, "--node-name", "dying", "--heartbeat-period", "0.5"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for("node dying Ready", lambda: kubectl(
            "get", "node", "dying", "-o", 'jsonpath={.status.conditions[?(@.type=="Ready")]'
            '.status}', check=False) == "True")
        for n in nodes:  # everything lands on the doomed node first
            kubectl("cordon", n)
        kubectl("create", "deployment", "web", "--image=nginx", "--replicas=3", "-n", ns)
        kubectl("patch", "deploy/web", "-n", ns, "-p", json.dumps({"spec": {"template": {"spec": {
            "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                             "effect": "NoExecute", "tolerationSeconds": 3}]}}}}))
        rollout(kubectl, ns)
        doomed = {p["metadata"]["name"] for p in pods(cluster, ns)}
        assert {p["spec"]["nodeName"] for p in pods(cluster, ns)} == {"dying"}
        for n in nodes:
            kubectl("uncordon", n)
        kubelet.kill()
        kubelet.wait(10)
        killed = time.monotonic()
        wait_for("node Unknown", lambda: kubectl("get", "node", "dying", "-o",
                 'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == "Unknown",
                 timeout=15)
        taints = json.loads(kubectl("get", "node", "dying", "-o", "jsonpath={.spec.taints}"))
        assert ("node.kubernetes.io/unreachable", "NoExecute") in \
            [(t["key"], t["effect"]) for t in taints]
        replaced = wait_for("3 ready replacements on live nodes", lambda: (
            ps := [p for p in pods(cluster, ns) if p["metadata"]["name"] not in doomed])
            and len(ps) == 3 and all(p["spec"].get("nodeName") in nodes and
                                     p["status"].get("phase") == "Running" for p in ps) and ps,
            timeout=30)
        assert len(replaced) == 3
        assert time.monotonic() - killed >= 3  # grace period + toleration, not at once
        assert "Marking for deletion Pod" in kubectl("get", "events", "-n", ns)
        rollout(kubectl, ns)
    finally:
        if kubelet.poll() is None:
            kubelet.kill()
            kubelet.wait(10)
        log.close()
        for n in nodes:
            kubectl("uncordon", n, check=False)
        kubectl("delete", "node", "dying", "--wait=false", check=False)
