"""Each filter and score on plain dicts, with upstream's reason strings."""
from pybernetes.scheduler.cache import PodInfo
from pybernetes.scheduler.plugins.pod_topology_spread import system_defaulted
from tests.unit.scheduler.helpers import cluster, node, place, pod, schedule

ZONE = "topology.kubernetes.io/zone"


def msg(fw, p) -> str:
    res = schedule(fw, p)
    assert res.node is None
    return res.error.message()


def test_insufficient_cpu_is_worded_like_upstream():
    fw = cluster(node("a", cpu="1"), node("b", cpu="1"), node("c", cpu="1"))
    assert msg(fw, pod("big", cpu="2")) == (
        "0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: "
        "3 No preemption victims found for incoming pod.")


def test_several_reasons_are_counted_and_sorted():
    fw = cluster(node("a", cpu="1", memory="1Gi"), node("b", cpu="4", memory="1Gi"),
                 node("c", taints=[{"key": "dedicated", "value": "db", "effect": "NoSchedule"}]),
                 node("d", pods=0))
    assert msg(fw, pod("p", cpu="2", memory="2Gi")) == (
        "0/4 nodes are available: 1 Insufficient cpu, 1 Too many pods, 1 node(s) had untolerated "
        "taint {dedicated: db}, 2 Insufficient memory. preemption: 0/4 nodes are available: "
        "1 Preemption is not helpful for scheduling, 3 No preemption victims found for incoming pod.")


def test_resources_fill_up_then_stop():
    fw = cluster(node("a", cpu="2"))
    assert place(fw, pod("p1", cpu="1")) == "a"
    assert place(fw, pod("p2", cpu="1")) == "a"
    assert "1 Insufficient cpu" in msg(fw, pod("p3", cpu="500m"))


def test_extended_resources_and_pod_count():
    n = node("gpu")
    n["status"]["allocatable"]["example.com/gpu"] = "1"
    fw = cluster(n, node("plain"))
    p = pod("g")
    p["spec"]["containers"][0]["resources"] = {"requests": {"example.com/gpu": "1"}}
    assert place(fw, p) == "gpu"
    p2 = pod("g2")
    p2["spec"]["containers"][0]["resources"] = {"requests": {"example.com/gpu": "1"}}
    assert "2 Insufficient example.com/gpu" in msg(fw, p2)
    fw = cluster(node("one", pods=1))
    place(fw, pod("x"))
    assert "1 Too many pods" in msg(fw, pod("y"))


def test_node_selector_and_required_affinity():
    fw = cluster(node("a", labels={"disk": "ssd"}), node("b", labels={"disk": "hdd", "gen": "5"}))
    assert place(fw, pod("s", nodeSelector={"disk": "ssd"})) == "a"
    aff = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "gen", "operator": "Gt", "values": ["4"]}]}]}}}
    assert place(fw, pod("g", affinity=aff)) == "b"
    assert msg(fw, pod("x", nodeSelector={"disk": "nvme"})).startswith(
        "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector. "
        "preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.")
    by_name = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
        "nodeSelectorTerms": [{"matchFields": [{"key": "metadata.name", "operator": "In",
                                                "values": ["b"]}]}]}}}
    assert place(fw, pod("f", affinity=by_name)) == "b"


def test_preferred_node_affinity_wins_the_score():
    fw = cluster(node("a"), node("b", labels={"fast": "yes"}), node("c"))
    pref = {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 50, "preference": {"matchExpressions": [{"key": "fast", "operator": "Exists"}]}}]}}
    assert all(place(fw, pod(f"p{i}", affinity=pref)) == "b" for i in range(3))


def test_taints_tolerations_and_cordon():
    t = {"key": "dedicated", "value": "db", "effect": "NoSchedule"}
    fw = cluster(node("tainted", taints=[t]), node("cordoned", unschedulable=True))
    assert "1 node(s) were unschedulable" in msg(fw, pod("p"))
    tol = [{"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]
    assert place(fw, pod("db", tolerations=tol)) == "tainted"
    assert place(fw, pod("any", tolerations=[{"operator": "Exists"}])) in ("tainted", "cordoned")


def test_prefer_no_schedule_only_lowers_the_score():
    soft = {"key": "spot", "value": "true", "effect": "PreferNoSchedule"}
    fw = cluster(node("soft", taints=[soft]), node("clean"))
    assert [place(fw, pod(f"p{i}")) for i in range(3)] == ["clean"] * 3


def test_host_ports_conflict():
    fw = cluster(node("a"), node("b"))
    ports = lambda: [{"name": "c", "image": "i", "ports": [{"containerPort": 80, "hostPort": 8080}]}]
    first = place(fw, pod("w1", containers=ports()))
    second = place(fw, pod("w2", containers=ports()))
    assert {first, second} == {"a", "b"}
    assert "2 node(s) didn't have free ports for the requested pod ports" in msg(
        fw, pod("w3", containers=ports()))


def test_least_allocated_spreads_pods():
    fw = cluster(node("a"), node("b"), node("c"))
    placed = [place(fw, pod(f"p{i}", cpu="500m", memory="512Mi")) for i in range(6)]
    assert sorted(placed) == ["a", "a", "b", "b", "c", "c"]


def test_balanced_allocation_prefers_the_even_node():
    fw = cluster(node("cpu-heavy", cpu="4", memory="8Gi"), node("even", cpu="4", memory="8Gi"),
                 pods=(pod("hog", cpu="3", memory="100Mi", node_name="cpu-heavy"),
                       pod("mem", cpu="200m", memory="6Gi", node_name="even")))
    # LeastAllocated ties the two; balance favours where cpu and memory end up alike
    assert place(fw, pod("p", cpu="1", memory="256Mi")) == "even"


def test_required_anti_affinity_one_per_node():
    fw = cluster(node("a"), node("b"))
    anti = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    got = {place(fw, pod(f"w{i}", labels={"app": "web"}, affinity=anti)) for i in range(2)}
    assert got == {"a", "b"}
    assert msg(fw, pod("w3", labels={"app": "web"}, affinity=anti)).startswith(
        "0/2 nodes are available: 2 node(s) didn't satisfy existing pods anti-affinity rules.")
    # a pod without terms is still kept away by the existing pods' anti-affinity
    assert "2 node(s) didn't satisfy existing pods anti-affinity rules" in msg(
        fw, pod("plain", labels={"app": "web"}))
    # its own anti-affinity keeps a pod away from pods that have none
    fw = cluster(node("a"), pods=(pod("db", labels={"app": "db"}, node_name="a"),))
    anti_db = {"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "db"}}, "topologyKey": "kubernetes.io/hostname"}]}}
    assert msg(fw, pod("w", affinity=anti_db)).startswith(
        "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules.")


def test_required_affinity_follows_the_first_pod_by_zone():
    fw = cluster(node("a", labels={ZONE: "z1"}), node("b", labels={ZONE: "z2"}),
                 node("c", labels={ZONE: "z2"}))
    aff = {"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "cache"}}, "topologyKey": ZONE}]}}
    first = place(fw, pod("c0", labels={"app": "cache"}, affinity=aff))   # affine to itself
    zone = fw.cache.nodes[first].labels[ZONE]
    for i in range(4):
        n = place(fw, pod(f"c{i + 1}", labels={"app": "cache"}, affinity=aff))
        assert fw.cache.nodes[n].labels[ZONE] == zone
    other = pod("x", affinity={"podAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "nothing"}}, "topologyKey": ZONE}]}})
    assert "3 node(s) didn't match pod affinity rules" in msg(fw, other)


def test_topology_spread_max_skew():
    fw = cluster(node("a", labels={ZONE: "z1"}), node("b", labels={ZONE: "z2"}), node("nolabel"))
    tsc = [{"maxSkew": 1, "topologyKey": ZONE, "whenUnsatisfiable": "DoNotSchedule",
            "labelSelector": {"matchLabels": {"app": "s"}}}]
    placed = [place(fw, pod(f"s{i}", labels={"app": "s"}, topologySpreadConstraints=tsc))
              for i in range(6)]
    assert placed.count("a") == 3 and placed.count("b") == 3
    fw2 = cluster(node("a", labels={ZONE: "z1"}, cpu="1"), node("b", labels={ZONE: "z2"}, cpu="1"),
                  pods=(pod("s0", labels={"app": "s"}, node_name="a"),
                        pod("s1", labels={"app": "s"}, node_name="a"),
                        pod("hog", cpu="1", node_name="b")))
    # z2 is full, z1 would reach skew 3 - 0 > 1
    assert msg(fw2, pod("s2", cpu="100m", labels={"app": "s"}, topologySpreadConstraints=tsc)).startswith(
        "0/2 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match pod topology spread "
        "constraints.")
    assert "1 node(s) didn't match pod topology spread constraints (missing required label)" in \
        msg(cluster(node("nolabel")), pod("s", labels={"app": "s"}, topologySpreadConstraints=tsc))


def test_node_name_plugin():
    fw = cluster(node("a"), node("b"))
    assert schedule(fw, pod("p", nodeName="b")).node == "b"


def test_replicas_of_one_controller_spread_over_big_equal_nodes():
    """On 32-CPU nodes LeastAllocated cannot tell 100m from 300m; upstream's system
    default spreading (hostname, maxSkew 3) still puts one replica per node."""
    for seed_pods in range(3):
        fw = cluster(*(node(f"n{i}", cpu="32", memory="256Gi") for i in range(3)))
        owner = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1",
                  "uid": f"rs-{seed_pods}", "controller": True}]
        placed = []
        for i in range(3):
            p = pod(f"web-{seed_pods}-{i}", labels={"app": "web"})
            p["metadata"]["ownerReferences"] = owner
            placed.append(place(fw, p))
        assert sorted(placed) == ["n0", "n1", "n2"]


def test_pods_without_a_controller_are_not_spread_by_default():
    p = PodInfo.of(pod("lonely"))
    assert p.owner_uid == "" and not system_defaulted(p)
