"""ResourceQuota and LimitRange against a real API server, with the resourcequota
controller running in a real controller-manager process: quotas are charged at
admission (403s worded as upstream's), defaults land on pods, concurrent creates never
overshoot, and usage comes back when pods are deleted or finish."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from tests.conftest import Cluster, Kubectl, wait_for

REPO = Path(__file__).resolve().parents[2]

COMPUTE_QUOTA = {"pods": "4", "requests.cpu": "1", "requests.memory": "1Gi",
                 "limits.cpu": "2", "limits.memory": "2Gi"}


@pytest.fixture(scope="module")
def controller_manager(cluster: Cluster) -> Iterator[subprocess.Popen]:
    log = open(cluster.data_dir / "controller-manager.log", "ab")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pybernetes.cli.main", "controller-manager", "--kubeconfig",
         cluster.kubeconfig, "--controllers", "resourcequota"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture
def ns(cluster: Cluster, controller_manager, request) -> str:
    name = "q-" + request.node.name.replace("_", "-")[5:45].strip("-").lower()
    status, body = cluster.json("POST", "/api/v1/namespaces", {"metadata": {"name": name}})
    assert status == 201, body
    return name


def pod(name: str, cpu: str = "100m", memory: str = "128Mi", cpu_limit: str = "200m",
        memory_limit: str = "256Mi", **spec: Any) -> dict:
    resources: dict = {"requests": {}, "limits": {}}
    for kind, key, value in (("requests", "cpu", cpu), ("requests", "memory", memory),
                             ("limits", "cpu", cpu_limit), ("limits", "memory", memory_limit)):
        if value:
            resources[kind][key] = value
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "busybox",
                                     "resources": {k: v for k, v in resources.items() if v}}],
                     **spec}}


def bare_pod(name: str) -> dict:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"containers": [{"name": "app", "image": "busybox"}]}}


def create_quota(cluster: Cluster, ns: str, name: str, hard: dict, **spec: Any) -> dict:
    status, body = cluster.json("POST", f"/api/v1/namespaces/{ns}/resourcequotas",
                                {"metadata": {"name": name}, "spec": {"hard": hard, **spec}})
    assert status == 201, body
    return wait_used(cluster, ns, name, lambda used: set(used) == set(hard))


def quota_used(cluster: Cluster, ns: str, name: str) -> dict:
    status, body = cluster.json("GET", f"/api/v1/namespaces/{ns}/resourcequotas/{name}")
    assert status == 200, body
    return (body.get("status") or {}).get("used") or {}


def wait_used(cluster: Cluster, ns: str, name: str, want: Callable[[dict], bool]) -> dict:
    return wait_for(f"quota {name} usage", lambda: (u := quota_used(cluster, ns, name))
                    and want(u) and u)


def create(cluster: Cluster, ns: str, obj: dict, resource: str = "pods",
           query: str = "") -> tuple[int, dict]:
    return cluster.json("POST", f"/api/v1/namespaces/{ns}/{resource}{query}", obj)


def forbidden(body: dict) -> str:
    assert body["kind"] == "Status" and body["reason"] == "Forbidden" and body["code"] == 403, body
    return body["message"]


# ----- ResourceQuota --------------------------------------------------------------------


def test_compute_quota_admits_four_pods_and_refuses_the_fifth(cluster: Cluster, ns: str):
    used = create_quota(cluster, ns, "compute-quota", COMPUTE_QUOTA)
    assert used == {"pods": "0", "requests.cpu": "0", "requests.memory": "0",
                    "limits.cpu": "0", "limits.memory": "0"}
    for i in range(1, 5):
        status, body = create(cluster, ns, pod(f"pod{i}"))
        assert status == 201, body
    # admission charged the quota as each pod came in
    assert quota_used(cluster, ns, "compute-quota") == {
        "pods": "4", "requests.cpu": "400m", "requests.memory": "512Mi",
        "limits.cpu": "800m", "limits.memory": "1Gi"}
    status, body = create(cluster, ns, pod("pod5"))
    assert status == 403
    assert forbidden(body) == ('pods "pod5" is forbidden: exceeded quota: compute-quota, '
                               "requested: pods=1, used: pods=4, limited: pods=4")
    assert body["details"] == {"name": "pod5", "kind": "pods"}
    status, body = cluster.json("GET", f"/api/v1/namespaces/{ns}/pods/pod5")
    assert status == 404


def test_quota_names_every_resource_that_would_go_over(cluster: Cluster, ns: str):
    create_quota(cluster, ns, "compute-quota", COMPUTE_QUOTA)
    status, body = create(cluster, ns, pod("greedy", cpu="2", cpu_limit="3"))
    assert status == 403
    assert forbidden(body) == (
        'pods "greedy" is forbidden: exceeded quota: compute-quota, '
        "requested: limits.cpu=3,requests.cpu=2, used: limits.cpu=0,requests.cpu=0, "
        "limited: limits.cpu=2,requests.cpu=1")
    # nothing was charged for the refused pod
    assert quota_used(cluster, ns, "compute-quota")["requests.cpu"] == "0"


def test_quota_on_cpu_and_memory_requires_them_on_every_container(cluster: Cluster, ns: str):
    create_quota(cluster, ns, "compute-quota", COMPUTE_QUOTA)
    status, body = create(cluster, ns, bare_pod("bare"))
    assert status == 403
    assert forbidden(body) == (
        'pods "bare" is forbidden: failed quota: compute-quota: must specify limits.cpu for: '
        "app; limits.memory for: app; requests.cpu for: app; requests.memory for: app")
    status, body = create(cluster, ns, pod("half", cpu_limit="", memory_limit=""))
    assert status == 403
    assert forbidden(body).endswith("must specify limits.cpu for: app; limits.memory for: app")


def test_dry_run_is_checked_but_not_charged(cluster: Cluster, ns: str):
    create_quota(cluster, ns, "pod-quota", {"pods": "1"})
    status, body = create(cluster, ns, bare_pod("ghost"), query="?dryRun=All")
    assert status == 201, body
    assert quota_used(cluster, ns, "pod-quota") == {"pods": "0"}
    status, body = create(cluster, ns, bare_pod("real"))
    assert status == 201, body
    status, body = create(cluster, ns, bare_pod("ghost2"), query="?dryRun=All")
    assert status == 403
    assert "exceeded quota: pod-quota, requested: pods=1, used: pods=1, limited: pods=1" \
        in forbidden(body)


def test_concurrent_creates_never_exceed_the_quota(cluster: Cluster, ns: str):
    create_quota(cluster, ns, "pod-quota", {"pods": "4"})
    results: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        status, _ = create(cluster, ns, bare_pod(f"racer-{i}"))
        with lock:
            results.append(status)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [201] * 4 + [403] * 6
    status, body = cluster.json("GET", f"/api/v1/namespaces/{ns}/pods")
    assert len(body["items"]) == 4
    assert quota_used(cluster, ns, "pod-quota") == {"pods": "4"}


def test_object_counts_and_service_node_ports(cluster: Cluster, ns: str):
    create_quota(cluster, ns, "objects", {"configmaps": "1", "count/secrets": "1",
                                          "services": "2", "services.nodeports": "1",
                                          "services.loadbalancers": "0"})
    assert create(cluster, ns, {"metadata": {"name": "a"}}, "configmaps")[0] == 201
    status, body = create(cluster, ns, {"metadata": {"name": "b"}}, "configmaps")
    assert forbidden(body) == ('configmaps "b" is forbidden: exceeded quota: objects, '
                               "requested: configmaps=1, used: configmaps=1, limited: configmaps=1")
    assert create(cluster, ns, {"metadata": {"name": "s1"}, "type": "Opaque"}, "secrets")[0] == 201
    status, body = create(cluster, ns, {"metadata": {"name": "s2"}}, "secrets")
    assert "requested: count/secrets=1, used: count/secrets=1, limited: count/secrets=1" \
        in forbidden(body)
    two_ports = {"metadata": {"name": "np"}, "spec": {"type": "NodePort", "selector": {"a": "b"},
                 "ports": [{"name": "a", "port": 80}, {"name": "b", "port": 81}]}}
    status, body = create(cluster, ns, two_ports, "services")
    assert forbidden(body) == (
        'services "np" is forbidden: exceeded quota: objects, requested: services.nodeports=2, '
        "used: services.nodeports=0, limited: services.nodeports=1")
    lb = {"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "selector": {"a": "b"},
          "ports": [{"port": 80}]}}
    status, body = create(cluster, ns, lb, "services")
    assert "requested: services.loadbalancers=1, used: services.loadbalancers=0, " \
           "limited: services.loadbalancers=0" in forbidden(body)
    ip = {"metadata": {"name": "web"}, "spec": {"selector": {"a": "b"}, "ports": [{"port": 80}]}}
    assert create(cluster, ns, ip, "services")[0] == 201
    assert quota_used(cluster, ns, "objects") == {
        "configmaps": "1", "count/secrets": "1", "services": "1", "services.nodeports": "0",
        "services.loadbalancers": "0"}


def test_scoped_quotas_count_only_their_pods(cluster: Cluster, ns: str):
    create_quota(cluster, ns, "best-effort", {"pods": "1"}, scopes=["BestEffort"])
    create_quota(cluster, ns, "high", {"pods": "1"}, scopeSelector={"matchExpressions": [
        {"scopeName": "PriorityClass", "operator": "In", "values": ["high"]}]})
    assert create(cluster, ns, bare_pod("be1"))[0] == 201
    status, body = create(cluster, ns, bare_pod("be2"))
    assert "exceeded quota: best-effort, requested: pods=1, used: pods=1, limited: pods=1" \
        in forbidden(body)
    # a pod with requests is not BestEffort: that quota does not count it
    assert create(cluster, ns, pod("burstable"))[0] == 201
    assert quota_used(cluster, ns, "best-effort") == {"pods": "1"}


# ----- the controller gives usage back --------------------------------------------------


def test_controller_releases_usage_of_deleted_and_finished_pods(cluster: Cluster, ns: str):
    create_quota(cluster, ns, "compute-quota", COMPUTE_QUOTA)
    for i in range(1, 5):
        assert create(cluster, ns, pod(f"pod{i}"))[0] == 201
    assert create(cluster, ns, pod("pod5"))[0] == 403
    status, _ = cluster.json("DELETE", f"/api/v1/namespaces/{ns}/pods/pod1")
    assert status == 200
    used = wait_used(cluster, ns, "compute-quota", lambda u: u["pods"] == "3")
    assert used == {"pods": "3", "requests.cpu": "300m", "requests.memory": "384Mi",
                    "limits.cpu": "600m", "limits.memory": "768Mi"}
    assert create(cluster, ns, pod("pod5"))[0] == 201
    # a finished pod still exists but no longer holds compute quota
    status, body = cluster.json("PATCH", f"/api/v1/namespaces/{ns}/pods/pod2/status",
                                {"status": {"phase": "Succeeded"}},
                                content_type="application/merge-patch+json")
    assert status == 200, body
    wait_used(cluster, ns, "compute-quota", lambda u: u["pods"] == "3")
    assert create(cluster, ns, pod("pod6"))[0] == 201


def test_controller_follows_spec_changes(cluster: Cluster, ns: str):
    create_quota(cluster, ns, "pod-quota", {"pods": "1"})
    assert create(cluster, ns, bare_pod("one"))[0] == 201
    status, body = cluster.json("PATCH", f"/api/v1/namespaces/{ns}/resourcequotas/pod-quota",
                                {"spec": {"hard": {"pods": "2", "count/configmaps": "5"}}},
                                content_type="application/merge-patch+json")
    assert status == 200, body
    used = wait_used(cluster, ns, "pod-quota", lambda u: "count/configmaps" in u)
    assert used == {"pods": "1", "count/configmaps": "0"}
    assert create(cluster, ns, bare_pod("two"))[0] == 201


# ----- LimitRange -------------------------------------------------------------------------

LIMITS = {"metadata": {"name": "limits"}, "spec": {"limits": [
    {"type": "Container", "default": {"cpu": "500m", "memory": "256Mi"},
     "defaultRequest": {"cpu": "100m", "memory": "128Mi"},
     "min": {"cpu": "50m"}, "max": {"cpu": "1", "memory": "1Gi"},
     "maxLimitRequestRatio": {"cpu": "10"}},
    {"type": "Pod", "max": {"memory": "1536Mi"}},
    {"type": "PersistentVolumeClaim", "min": {"storage": "1Gi"}, "max": {"storage": "10Gi"}}]}}


def test_limit_range_defaults_appear_on_new_pods(cluster: Cluster, ns: str):
    assert create(cluster, ns, LIMITS, "limitranges")[0] == 201
    spec = {"initContainers": [{"name": "setup", "image": "busybox",
                                "resources": {"limits": {"cpu": "200m"}}}]}
    status, body = create(cluster, ns, {**bare_pod("defaulted"),
                                        "spec": {**bare_pod("x")["spec"], **spec}})
    assert status == 201, body
    app = body["spec"]["containers"][0]["resources"]
    assert app == {"requests": {"cpu": "100m", "memory": "128Mi"},
                   "limits": {"cpu": "500m", "memory": "256Mi"}}
    # the init container's own cpu limit also became its request (pod defaulting)
    assert body["spec"]["initContainers"][0]["resources"] == {
        "requests": {"cpu": "200m", "memory": "128Mi"},
        "limits": {"cpu": "200m", "memory": "256Mi"}}
    assert body["metadata"]["annotations"]["kubernetes.io/limit-ranger"] == (
        "LimitRanger plugin set: cpu, memory request for container app; cpu, memory limit for "
        "container app; memory request for init container setup; memory limit for init "
        "container setup")
    assert body["status"]["qosClass"] == "Burstable"


def test_limit_range_bounds_refuse_pods_with_upstream_wording(cluster: Cluster, ns: str):
    assert create(cluster, ns, LIMITS, "limitranges")[0] == 201
    status, body = create(cluster, ns, pod("small", cpu="10m", cpu_limit="100m"))
    assert forbidden(body) == ('pods "small" is forbidden: minimum cpu usage per Container is '
                               "50m, but request is 10m")
    status, body = create(cluster, ns, pod("big", cpu="500m", cpu_limit="2"))
    assert forbidden(body) == ('pods "big" is forbidden: maximum cpu usage per Container is 1, '
                               "but limit is 2")
    status, body = create(cluster, ns, pod("spiky", cpu="50m", cpu_limit="1"))
    assert forbidden(body) == ('pods "spiky" is forbidden: cpu max limit to request ratio per '
                               "Container is 10, but provided ratio is 20.000000")
    two = pod("pair", memory="512Mi", memory_limit="800Mi")
    two["spec"]["containers"].append({**two["spec"]["containers"][0], "name": "side"})
    status, body = create(cluster, ns, two)
    assert forbidden(body) == ('pods "pair" is forbidden: maximum memory usage per Pod is '
                               "1536Mi, but limit is 1600Mi")
    status, body = create(cluster, ns, pod("both", cpu="10m", cpu_limit="2"))
    assert forbidden(body) == (
        'pods "both" is forbidden: [minimum cpu usage per Container is 50m, but request is 10m, '
        "maximum cpu usage per Container is 1, but limit is 2, cpu max limit to request ratio "
        "per Container is 10, but provided ratio is 200.000000]")
    assert create(cluster, ns, pod("fine"))[0] == 201


def test_limit_range_bounds_claims(cluster: Cluster, ns: str):
    assert create(cluster, ns, LIMITS, "limitranges")[0] == 201

    def claim(name: str, size: str) -> dict:
        return {"metadata": {"name": name}, "spec": {"accessModes": ["ReadWriteOnce"],
                "resources": {"requests": {"storage": size}}}}

    status, body = create(cluster, ns, claim("huge", "20Gi"), "persistentvolumeclaims")
    assert forbidden(body) == ('persistentvolumeclaims "huge" is forbidden: maximum storage '
                               "usage per PersistentVolumeClaim is 10Gi, but request is 20Gi")
    status, body = create(cluster, ns, claim("tiny", "100Mi"), "persistentvolumeclaims")
    assert forbidden(body) == ('persistentvolumeclaims "tiny" is forbidden: minimum storage '
                               "usage per PersistentVolumeClaim is 1Gi, but request is 100Mi")
    assert create(cluster, ns, claim("ok", "5Gi"), "persistentvolumeclaims")[0] == 201


def test_limit_range_defaults_satisfy_a_compute_quota(cluster: Cluster, ns: str):
    """The usual pairing: the LimitRange fills in what the quota insists on."""
    assert create(cluster, ns, LIMITS, "limitranges")[0] == 201
    create_quota(cluster, ns, "compute-quota", COMPUTE_QUOTA)
    assert create(cluster, ns, bare_pod("plain"))[0] == 201
    assert quota_used(cluster, ns, "compute-quota") == {
        "pods": "1", "requests.cpu": "100m", "requests.memory": "128Mi",
        "limits.cpu": "500m", "limits.memory": "256Mi"}


# ----- the real kubectl -------------------------------------------------------------------


def test_kubectl_create_describe_and_run_past_the_quota(cluster: Cluster, kubectl: Kubectl,
                                                        ns: str):
    kubectl("create", "quota", "small", "--hard=pods=2,count/configmaps=3", "-n", ns)
    wait_used(cluster, ns, "small", lambda u: len(u) == 2)
    for name in ("p1", "p2"):
        kubectl("run", name, "--image=busybox", "-n", ns)
    wait_used(cluster, ns, "small", lambda u: u["pods"] == "2")
    out = kubectl("describe", "quota", "small", "-n", ns)
    lines = [line.split() for line in out.splitlines()]
    assert ["Resource", "Used", "Hard"] in lines
    assert ["pods", "2", "2"] in lines
    assert ["count/configmaps", "0", "3"] in lines
    p = kubectl.run("run", "p3", "--image=busybox", "-n", ns, check=False)
    assert p.returncode == 1
    assert p.stderr.strip() == ('Error from server (Forbidden): pods "p3" is forbidden: '
                                "exceeded quota: small, requested: pods=1, used: pods=2, "
                                "limited: pods=2")
    got = json.loads(kubectl("get", "quota", "small", "-n", ns, "-o", "json"))
    assert got["status"]["hard"] == {"pods": "2", "count/configmaps": "3"}
    kubectl("delete", "pod", "p1", "-n", ns, "--wait=false")
    wait_used(cluster, ns, "small", lambda u: u["pods"] == "1")
    kubectl("run", "p3", "--image=busybox", "-n", ns)
