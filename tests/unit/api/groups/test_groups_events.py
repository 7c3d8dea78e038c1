import pytest

from pybernetes.api.apps import DeploymentStrategy
from pybernetes.api.events import EventStrategy

from group_helpers import create, messages, pod_template

NEW_EVENT = {"apiVersion": "events.k8s.io/v1", "kind": "Event",
             "metadata": {"name": "web.1", "namespace": "default"},
             "eventTime": "2024-01-01T00:00:00.000000Z", "type": "Normal", "reason": "Started",
             "action": "Start", "reportingController": "example.com/ctl",
             "reportingInstance": "ctl-1", "note": "hello",
             "regarding": {"kind": "Pod", "name": "web", "namespace": "default"}}


def test_events_v1_validation():
    s = EventStrategy()
    assert s.storage_prefix() == "/registry/events/"
    assert s.validate(NEW_EVENT) == []
    bare = {"metadata": {"name": "e"}, "type": "Odd"}
    assert messages(s.validate(bare)) == [
        "eventTime: Required value", 'type: Invalid value: "": has invalid value: Odd',
        "reportingController: Required value", "reportingInstance: Required value",
        "action: Required value", "reason: Required value"]


def test_events_v1_round_trips_through_core_storage():
    core = pytest.importorskip("pybernetes.api.core.events")
    s = EventStrategy()
    stored = s.to_storage(NEW_EVENT)
    assert stored["apiVersion"] == "v1" and stored["involvedObject"]["name"] == "web"
    assert stored["message"] == "hello"
    back = s.from_storage(stored)
    for key in ("eventTime", "type", "reason", "action", "reportingController",
                "reportingInstance", "note", "regarding"):
        assert back[key] == NEW_EVENT[key], key
    assert core is not None


def test_deployment_template_gets_pod_defaults():
    pytest.importorskip("pybernetes.api.podspec")
    obj, errs = create(DeploymentStrategy(), {"metadata": {"name": "w"}, "spec": {
        "selector": {"matchLabels": {"app": "x"}}, "template": pod_template()}})
    assert errs == []
    tspec = obj["spec"]["template"]["spec"]
    assert tspec["restartPolicy"] == "Always" and tspec["dnsPolicy"] == "ClusterFirst"
    assert tspec["containers"][0]["imagePullPolicy"] == "Always"
