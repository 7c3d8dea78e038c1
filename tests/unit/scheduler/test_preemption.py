from tests.unit.scheduler.helpers import cluster, node, place, pod, schedule


def test_preemption_picks_the_node_with_the_least_important_victims():
    fw = cluster(node("a", cpu="2"), node("b", cpu="2"),
                 pods=(pod("a-mid", cpu="2", priority=100, node_name="a"),
                       pod("b-low", cpu="1", priority=10, node_name="b"),
                       pod("b-low2", cpu="1", priority=5, node_name="b")))
    res = schedule(fw, pod("vip", cpu="1", priority=1000))
    assert res.node is None and res.nominated == "b"
    # one victim is enough; the lower-priority one goes
    assert [v.key for v in res.victims] == ["default/b-low2"]
    assert res.error.message() == "0/2 nodes are available: 2 Insufficient cpu."
    # the cache is unchanged by the dry run
    assert len(fw.cache.nodes["b"].pods) == 2 and fw.cache.nodes["b"].requested["cpu"] == 2000


def test_no_victims_when_everything_is_as_important():
    fw = cluster(node("a", cpu="1"), pods=(pod("x", cpu="1", priority=5, node_name="a"),))
    res = schedule(fw, pod("same", cpu="1", priority=5))
    assert res.nominated is None
    assert res.error.message().endswith(
        "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.")


def test_preemption_policy_never():
    fw = cluster(node("a", cpu="1"), pods=(pod("x", cpu="1", node_name="a"),))
    res = schedule(fw, pod("polite", cpu="1", priority=9, preemptionPolicy="Never"))
    assert res.nominated is None
    assert res.error.message() == ("0/1 nodes are available: 1 Insufficient cpu. "
                                   "not eligible due to preemptionPolicy=Never.")


def test_nominated_node_is_tried_first():
    fw = cluster(node("a"), node("b"), node("c"))
    p = pod("n", cpu="100m")
    p["status"]["nominatedNodeName"] = "c"
    assert place(fw, p) == "c"


def test_room_made_by_preemption_is_kept_for_the_nominated_pod():
    from pybernetes.scheduler.cache import PodInfo
    fw = cluster(node("a", cpu="1"), node("b", cpu="1"),
                 pods=(pod("hog", cpu="1", node_name="b"),))
    vip = PodInfo.of(pod("vip", cpu="1", priority=100))
    fw.cache.nominate(vip, "a")
    # an equally or less important pod must not take the nominated room
    assert schedule(fw, pod("sneaky", cpu="500m", priority=100)).node is None
    # a more important one may
    assert schedule(fw, pod("vvip", cpu="500m", priority=1000)).node == "a"
    # the nominated pod itself fits there; once assumed its nomination ends
    assert place(fw, pod("vip", cpu="1", priority=100)) == "a"
    assert fw.cache.nominated == {}
