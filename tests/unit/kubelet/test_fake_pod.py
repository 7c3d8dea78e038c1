"""The fake runtime's pod life as arithmetic: annotations, timelines, reported status."""
from __future__ import annotations

from pybernetes.api.podspec import pod_qos_class
from pybernetes.kubelet import fake_pod
from pybernetes.kubelet.fake_pod import Behaviour, FakeRun, behaviour, fake_status
from pybernetes.kubelet.pod_status import summary

T0 = 1_800_000_000.0


def pod(annotations: dict | None = None, policy: str = "Always", **spec) -> dict:
    return {"metadata": {"name": "p", "namespace": "ns", "uid": "u-1",
                         "annotations": annotations or {}},
            "spec": {"restartPolicy": policy,
                     "containers": [{"name": "app", "image": "nginx"}], **spec}}


def test_annotations_become_behaviour():
    b = behaviour(pod({fake_pod.START_DELAY: "2", fake_pod.READY_DELAY: "1.5",
                       fake_pod.NEVER_READY: "true", fake_pod.COMPLETE_AFTER: "7",
                       fake_pod.EXIT_CODE: "3"}))
    assert b == Behaviour(2.0, 1.5, True, 7.0, 3)


def test_defaults_by_restart_policy():
    assert behaviour(pod()).complete_after is None            # Always: runs until deleted
    assert behaviour(pod(policy="Never"), 0.5).complete_after == 0.5
    assert behaviour(pod(policy="OnFailure"), 2).complete_after == 2
    assert behaviour(pod({fake_pod.EXIT_CODE: "1"}), 3).complete_after == 3


def test_unreadable_annotations_are_ignored():
    b = behaviour(pod({fake_pod.START_DELAY: "soon", fake_pod.EXIT_CODE: "x",
                       fake_pod.READY_DELAY: "-4", fake_pod.NEVER_READY: "false"}))
    assert (b.start_delay, b.ready_delay, b.exit_code, b.never_ready) == (0, 0, 0, False)


def test_delays_pending_then_running_then_ready():
    run = FakeRun(Behaviour(start_delay=2, ready_delay=3), "Always", T0)
    assert run.advance(T0) == T0 + 2 and run.phase == "Pending"
    assert run.advance(T0 + 2) == T0 + 5 and run.phase == "Running"
    assert not run.ready(T0 + 4)
    assert run.advance(T0 + 5) is None and run.ready(T0 + 5)


def test_run_to_completion_succeeds_or_fails():
    ok = FakeRun(Behaviour(complete_after=1), "Never", T0)
    assert ok.advance(T0 + 5) is None
    assert (ok.phase, ok.exit_code) == ("Succeeded", 0)
    bad = FakeRun(Behaviour(complete_after=1, exit_code=4), "Never", T0)
    bad.advance(T0 + 5)
    assert (bad.phase, bad.exit_code) == ("Failed", 4)
    on_failure_ok = FakeRun(Behaviour(complete_after=1), "OnFailure", T0)
    on_failure_ok.advance(T0 + 1)
    assert on_failure_ok.phase == "Succeeded"


def test_crashing_container_restarts_with_back_off():
    run = FakeRun(Behaviour(complete_after=1, exit_code=1), "Always", T0)
    # exits at T0+1, restarts at once; exits again at T0+2, then 10 s back-off
    assert run.advance(T0 + 2.5) == T0 + 12
    assert (run.restarts, run.backoff_until, run.phase) == (1, T0 + 12, "Running")
    assert run.last_exit == (1, T0 + 1, T0 + 2)
    run.advance(T0 + 12)
    assert run.restarts == 2 and run.backoff_until is None
    assert [fake_pod.backoff(n) for n in range(7)] == [0, 10, 20, 40, 80, 160, 300]


def test_status_of_a_running_ready_pod():
    p = pod(initContainers=[{"name": "init", "image": "busybox"}])
    run = FakeRun(Behaviour(), "Always", T0)
    run.advance(T0)
    st = fake_status(p, run, T0, "198.18.0.1", "10.42.1.2")
    assert st["phase"] == "Running" and st["podIP"] == "10.42.1.2"
    assert st["podIPs"] == [{"ip": "10.42.1.2"}] and st["hostIPs"] == [{"ip": "198.18.0.1"}]
    assert [c["type"] for c in st["conditions"]] == [
        "PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled"]
    assert all(c["status"] == "True" for c in st["conditions"])
    cs = st["containerStatuses"][0]
    assert cs["containerID"] == "fake://u-1/app" and cs["imageID"] == "fake://nginx"
    assert cs["ready"] and cs["started"] and cs["state"]["running"]["startedAt"]
    init = st["initContainerStatuses"][0]
    assert init["state"]["terminated"]["reason"] == "Completed"
    assert st["qosClass"] == "BestEffort"


def test_status_while_pending_and_after_completion():
    p = pod(policy="Never")
    run = FakeRun(Behaviour(start_delay=5, complete_after=1), "Never", T0)
    run.advance(T0)
    st = fake_status(p, run, T0, "198.18.0.1", "10.42.1.2")
    assert st["phase"] == "Pending" and "podIP" not in st
    assert st["containerStatuses"][0]["state"] == {"waiting": {"reason": "ContainerCreating"}}
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert ready["reason"] == "ContainersNotReady"
    run.advance(T0 + 10)
    st = fake_status(p, run, T0 + 10, "198.18.0.1", "10.42.1.2")
    assert st["phase"] == "Succeeded"
    ready = next(c for c in st["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "PodCompleted")
    assert st["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 0


def test_unchanged_status_keeps_transition_times_and_summary():
    p = pod()
    run = FakeRun(Behaviour(), "Always", T0)
    run.advance(T0)
    first = fake_status(p, run, T0, "198.18.0.1", "10.42.1.2")
    p["status"] = first
    again = fake_status(p, run, T0 + 30, "198.18.0.1", "10.42.1.2")
    assert again["conditions"] == first["conditions"]
    assert summary(again) == summary(first)


def test_adopting_a_running_pod_after_a_restart():
    p = pod()
    run = FakeRun(Behaviour(), "Always", T0)
    run.advance(T0)
    p["status"] = fake_status(p, run, T0, "198.18.0.1", "10.42.1.2")
    again = FakeRun.adopt(p, Behaviour(), T0 + 100)
    again.advance(T0 + 100)
    assert (again.phase, again.started_at, again.admitted_at) == ("Running", T0, T0)


def test_qos_classes():
    def spec(*resources: dict) -> dict:
        return {"containers": [{"name": f"c{i}", "resources": r} for i, r in enumerate(resources)]}
    both = {"cpu": "1", "memory": "1Gi"}
    assert pod_qos_class(spec({})) == "BestEffort"
    assert pod_qos_class(spec({"limits": both})) == "Guaranteed"
    assert pod_qos_class(spec({"limits": both, "requests": both})) == "Guaranteed"
    assert pod_qos_class(spec({"requests": {"cpu": "1"}})) == "Burstable"
    assert pod_qos_class(spec({"limits": both}, {})) == "Burstable"
    assert pod_qos_class(spec({"limits": both, "requests": {"cpu": "500m"}})) == "Burstable"
