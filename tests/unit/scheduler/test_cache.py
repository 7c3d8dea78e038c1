from pybernetes.scheduler.cache import Cache, PodInfo, pod_requests

from tests.unit.scheduler.helpers import node, pod


def test_requests_sum_containers_and_take_the_largest_init_container():
    p = pod("p", cpu="100m", memory="64Mi")
    p["spec"]["containers"].append({"name": "d", "resources": {"requests": {"cpu": "200m"}}})
    p["spec"]["initContainers"] = [{"name": "i", "resources": {"requests": {"cpu": "500m",
                                                                            "memory": "32Mi"}}}]
    p["spec"]["overhead"] = {"cpu": "10m"}
    r = pod_requests(p)
    assert r["cpu"] == 510 and r["memory"] == 64 * 2**20


def test_sidecar_init_containers_add_up():
    p = pod("p", cpu="100m")
    p["spec"]["initContainers"] = [
        {"name": "side", "restartPolicy": "Always", "resources": {"requests": {"cpu": "50m"}}},
        {"name": "init", "resources": {"requests": {"cpu": "400m"}}}]
    # init runs beside the sidecar (450m); afterwards app + sidecar (150m)
    assert pod_requests(p)["cpu"] == 450


def test_assume_then_confirm_then_forget():
    c = Cache(clock=lambda: 0.0)
    c.set_node(node("n1"))
    p = pod("a", cpu="1")
    c.assume(PodInfo.of(p), "n1")
    assert c.nodes["n1"].requested["cpu"] == 1000 and c.is_assumed("default/a")
    c.forget("default/a")
    assert c.nodes["n1"].requested["cpu"] == 0 and not c.nodes["n1"].pods
    c.assume(PodInfo.of(p), "n1")
    c.add_pod({**p, "spec": {**p["spec"], "nodeName": "n1"}})   # the informer confirms it
    assert not c.is_assumed("default/a") and c.nodes["n1"].requested["cpu"] == 1000
    c.forget("default/a")                                          # no effect once confirmed
    assert "default/a" in c.nodes["n1"].pods


def test_assumed_pod_expires_after_binding_if_never_seen():
    now = [0.0]
    c = Cache(clock=lambda: now[0])
    c.set_node(node("n1"))
    c.assume(PodInfo.of(pod("a", cpu="1")), "n1")
    c.finish_binding("default/a")
    now[0] = 29
    c.expire()
    assert "default/a" in c.nodes["n1"].pods
    now[0] = 31
    c.expire()
    assert not c.nodes["n1"].pods


def test_removed_node_keeps_accounting_until_its_pods_go():
    c = Cache()
    c.set_node(node("n1"))
    c.add_pod(pod("a", cpu="1", node_name="n1"))
    c.remove_node("n1")
    assert c.node_infos() == [] and "n1" in c.nodes
    c.remove_pod("default/a")
    assert "n1" not in c.nodes
