"""Deployments end to end: a real `pybernetes server`, the controller manager, and the
real kubectl. Until nodes exist, a stand-in kubelet in this module marks new pods
Running and Ready (after a short delay) so rollouts have something to wait for."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Iterator

import pytest

from pybernetes.controllers.daemonset import target_node
from tests.conftest import Cluster, Kubectl

pytestmark = pytest.mark.kubectl
REPO = Path(__file__).resolve().parents[2]
# While pybernetes.client has not landed, the manager runs on a small stand-in client.
_MAIN = ("import sys; from tests.unit.controllers.client_standin import install; install(); "
         "from pybernetes.cli.main import main; sys.exit(main(sys.argv[1:]))")


class PodReadier(threading.Thread):
    """Marks each pending pod Running and Ready `delay` seconds after it appears
    (except pods of an image named never-ready)."""

    def __init__(self, cluster: Cluster, delay: float = 0.3):
        super().__init__(daemon=True)
        self.cluster, self.delay = cluster, delay
        self.stopping = threading.Event()
        self.first_seen: dict[str, float] = {}
        self.ips = 0

    def run(self) -> None:
        while not self.stopping.wait(0.1):
            try:
                self._tick()
            except Exception:  # noqa: BLE001 - the server may be restarting; try again
                pass

    def _tick(self) -> None:
        status, body = self.cluster.json("GET", "/api/v1/pods")
        if status != 200:
            return
        now = time.monotonic()
        for pod in body.get("items") or []:
            md, st = pod["metadata"], pod.get("status") or {}
            if md.get("deletionTimestamp") or st.get("phase") in ("Running", "Succeeded", "Failed"):
                continue
            if "never-ready" in pod["spec"]["containers"][0]["image"]:
                continue  # a broken release: stays Pending
            seen = self.first_seen.setdefault(md["uid"], now)
            if now - seen < self.delay:
                continue
            ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            ready = {"type": "Ready", "status": "True", "lastTransitionTime": ts}
            exit_code = (md.get("labels") or {}).get("e2e-exit")
            if exit_code in ("0", "1"):  # a run-to-completion pod: finishes instead
                phase = "Succeeded" if exit_code == "0" else "Failed"
                done = {"type": "Ready", "status": "False", "lastTransitionTime": ts}
                self.cluster.json("PATCH", f"/api/v1/namespaces/{md['namespace']}/pods/"
                                  f"{md['name']}/status",
                                  {"status": {"phase": phase, "conditions": [done]}},
                                  content_type="application/merge-patch+json")
                continue
            self.ips += 1
            ip = f"10.42.{self.ips // 250}.{self.ips % 250 + 2}"
            patch = {"status": {"phase": "Running", "conditions": [ready], "startTime": ts,
                                "podIP": ip, "podIPs": [{"ip": ip}]}}
            self.cluster.json("PATCH", f"/api/v1/namespaces/{md['namespace']}/pods/{md['name']}"
                              "/status", patch, content_type="application/merge-patch+json")


class Manager:
    """The controller-manager child process; restartable (the chaos test kills it)."""

    def __init__(self, cluster: Cluster):
        self.cluster = cluster
        self.log = open(Path(cluster.data_dir) / "controller-manager.log", "ab")
        self.proc = self.start()

    def start(self) -> subprocess.Popen:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _MAIN, "controller-manager", "--kubeconfig",
             self.cluster.kubeconfig, "--leader-elect", "--node-monitor-grace-period=3",
             "--node-monitor-period=0.5"], cwd=REPO,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        return self.proc

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(5)

    def stop(self) -> int:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="module")
def controllers(cluster: Cluster) -> Iterator[Manager]:
    manager = Manager(cluster)
    readier = PodReadier(cluster)
    readier.start()
    try:
        yield manager
    finally:
        readier.stopping.set()
        code = manager.stop()
        readier.join(5)
    assert code == 0, "controller-manager did not stop cleanly on SIGTERM"


@pytest.fixture
def ns(kubectl: Kubectl, controllers, request) -> str:
    name = "t-" + request.node.name.replace("_", "-")[5:40].strip("-").lower()
    kubectl("create", "namespace", name)
    return name


def pods(cluster: Cluster, ns: str, selector: str = "app=web") -> list[dict]:
    status, body = cluster.json("GET", f"/api/v1/namespaces/{ns}/pods?labelSelector={selector}")
    assert status == 200, body
    return [p for p in body["items"] if not p["metadata"].get("deletionTimestamp")]


def wait_for(what, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


class Sampler(threading.Thread):
    """Samples (live pods, ready pods, images) of a namespace until stopped."""

    def __init__(self, cluster: Cluster, ns: str):
        super().__init__(daemon=True)
        self.cluster, self.ns = cluster, ns
        self.stopping = threading.Event()
        self.samples: list[tuple[int, int, frozenset]] = []

    def run(self) -> None:
        while not self.stopping.wait(0.05):
            live = pods(self.cluster, self.ns)
            ready = [p for p in live if any(c["type"] == "Ready" and c["status"] == "True"
                                            for c in (p.get("status") or {}).get("conditions") or [])]
            images = frozenset(p["spec"]["containers"][0]["image"] for p in live)
            self.samples.append((len(live), len(ready), images))

    def __enter__(self) -> "Sampler":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        self.join(5)


def rollout(kubectl: Kubectl, ns: str, name: str = "web") -> str:
    return kubectl("rollout", "status", f"deploy/{name}", "-n", ns, "--timeout=60s", timeout=70)


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
    kubectl("patch", "pod", sick, "-n", ns, "--subresource=status", "--type=merge", "-p",
            '{"status":{"conditions":[{"type":"Ready","status":"False"}]}}')
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
    assert s.samples
    assert max(n for n, _, _ in s.samples) <= 4 + 1
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
                                                     controllers):
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
    kubectl("set", "image", "deploy/web", "nginx=never-ready:1", "-n", ns)
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
    kubectl("set", "image", "deploy/web", "nginx=never-ready:1", "-n", ns)

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


def test_rollout_survives_sigkilled_controller_manager(cluster: Cluster, kubectl: Kubectl, ns: str,
                                                       controllers: Manager):
    """Idempotent reconciles: kill -9 the manager mid-rollout, restart it, repeat;
    the rollout completes with exactly the desired pods, none duplicated or lost."""
    kubectl("create", "deployment", "web", "--image=nginx:1.25", "--replicas=40", "-n", ns)
    rollout(kubectl, ns)
    kubectl("set", "image", "deploy/web", "nginx=nginx:1.26", "-n", ns)
    for delay in (0.3, 0.6, 0.9):
        time.sleep(delay)
        controllers.kill()
        controllers.start()
    rollout(kubectl, ns)
    live = wait_for("exactly 40 new pods", lambda: (ps := pods(cluster, ns)) and len(ps) == 40 and
                    {p["spec"]["containers"][0]["image"] for p in ps} == {"nginx:1.26"} and ps)
    assert len({p["metadata"]["name"] for p in live}) == 40
    time.sleep(1)  # nothing more happens after convergence
    assert len(pods(cluster, ns)) == 40
    rs = json.loads(kubectl("get", "rs", "-n", ns, "-o", "json"))["items"]
    assert sorted(r["spec"]["replicas"] for r in rs) == [0, 40]


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
                           "metadata": {"labels": {"e2e-exit": exit_code}},
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
                       "metadata": {"labels": {"e2e-exit": "0"}},
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


def test_daemonset_runs_one_pod_per_eligible_node(cluster: Cluster, kubectl: Kubectl, ns: str):
    for i, taints in enumerate(([], [], [{"key": "dedicated", "value": "infra",
                                          "effect": "NoSchedule"}])):
        kubectl("apply", "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Node",
             "metadata": {"name": f"ds-node-{i}", "labels": {"ds-test": "yes"}},
             "spec": {"taints": taints}}))
    ds = {"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"name": "agent"},
          "spec": {"selector": {"matchLabels": {"app": "agent"}},
                   "template": {"metadata": {"labels": {"app": "agent"}}, "spec": {
                       "nodeSelector": {"ds-test": "yes"},
                       "containers": [{"name": "c", "image": "agent:1"}]}}}}
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(ds))
    kubectl("rollout", "status", "ds/agent", "-n", ns, "--timeout=60s", timeout=70)

    def placement() -> dict[str, str]:
        return {target_node(p): p["spec"]["containers"][0]["image"]
                for p in pods(cluster, ns, "app=agent")}
    assert placement() == {"ds-node-0": "agent:1", "ds-node-1": "agent:1"}  # not the tainted one
    st = json.loads(kubectl("get", "ds", "agent", "-n", ns, "-o", "json"))["status"]
    assert (st["desiredNumberScheduled"], st["numberReady"], st["numberAvailable"]) == (2, 2, 2)
    kubectl("set", "image", "ds/agent", "c=agent:2", "-n", ns)
    kubectl("rollout", "status", "ds/agent", "-n", ns, "--timeout=60s", timeout=70)
    assert placement() == {"ds-node-0": "agent:2", "ds-node-1": "agent:2"}
    kubectl("label", "node", "ds-node-1", "ds-test-")
    wait_for("pod leaves the unlabelled node", lambda: set(placement()) == {"ds-node-0"})
    for i in range(3):
        kubectl("delete", "node", f"ds-node-{i}")


def test_silent_node_is_tainted_and_its_pods_evicted(cluster: Cluster, kubectl: Kubectl, ns: str):
    def stamp(micro: bool = False) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + (".000000Z" if micro else "Z")
    kubectl("apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "Node",
                                                  "metadata": {"name": "dying"}}))
    ready = {"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "ok",
             "lastHeartbeatTime": stamp(), "lastTransitionTime": stamp()}
    status, body = cluster.json("PATCH", "/api/v1/nodes/dying/status",
                                {"status": {"conditions": [ready]}},
                                content_type="application/merge-patch+json")
    assert status == 200, body
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "dying", "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": "dying", "leaseDurationSeconds": 40, "renewTime": stamp(True)}}
    kubectl("apply", "-f", "-", input=json.dumps(lease))
    tolerant = {"key": "node.kubernetes.io/unreachable", "operator": "Exists",
                "effect": "NoExecute", "tolerationSeconds": 3}
    # (without a toleration of its own a pod gets upstream's default: 300 s)
    for name, tols in (("fragile", [dict(tolerant, tolerationSeconds=0)]),
                       ("patient", [tolerant])):
        kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
             "spec": {"nodeName": "dying", "tolerations": tols,
                      "containers": [{"name": "c", "image": "nginx"}]}}))
    time.sleep(1)
    assert "unreachable" not in kubectl("get", "node", "dying", "-o", "jsonpath={.spec.taints}")
    # the heartbeats stop: after the 3 s grace period the node goes Unknown and is tainted
    wait_for("node Unknown", lambda: kubectl("get", "node", "dying", "-o",
             'jsonpath={.status.conditions[?(@.type=="Ready")].status}') == "Unknown", timeout=15)
    taints = json.loads(kubectl("get", "node", "dying", "-o", "jsonpath={.spec.taints}"))
    assert [(t["key"], t["effect"]) for t in taints] == [("node.kubernetes.io/unreachable",
                                                           "NoExecute")]
    tainted = time.monotonic()

    def evicted(name: str) -> bool:
        pod = json.loads(kubectl("get", "pod", name, "-n", ns, "-o", "json", check=False) or "{}")
        return not pod or bool(pod["metadata"].get("deletionTimestamp"))
    wait_for("fragile evicted", lambda: evicted("fragile"), timeout=10)
    assert not evicted("patient")
    wait_for("patient evicted after its toleration", lambda: evicted("patient"), timeout=10)
    assert time.monotonic() - tainted >= 1.5
    assert "Marking for deletion Pod" in kubectl("get", "events", "-n", ns)
    kubectl("delete", "node", "dying", "--wait=false")
