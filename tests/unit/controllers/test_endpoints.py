"""What a Service's Endpoints and EndpointSlice list for a set of pods."""
from __future__ import annotations

from pybernetes.controllers.endpoints import endpoints_subsets, slice_groups, target_port


def svc(ports, publish=False):
    return {"metadata": {"name": "web", "namespace": "default", "uid": "s1"},
            "spec": {"selector": {"app": "web"}, "ports": ports,
                     "publishNotReadyAddresses": publish}}


def pod(name, ip, ready=True, port=8080, labels=None, phase="Running", deleting=False):
    p = {"metadata": {"name": name, "namespace": "default", "uid": f"u-{name}",
                      "labels": labels or {"app": "web"}},
         "spec": {"nodeName": "n1",
                  "containers": [{"name": "c", "ports": [{"name": "http", "containerPort": port}]}]},
         "status": {"phase": phase, "podIP": ip,
                    "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}
    if deleting:
        p["metadata"]["deletionTimestamp"] = "2024-01-01T00:00:00Z"
    return p


HTTP = [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]


def test_named_target_port_resolves_per_pod():
    assert target_port(HTTP[0], pod("a", "10.42.0.1", port=9000)) == 9000
    assert target_port({"port": 80, "targetPort": 8080}, pod("a", "1.1.1.1")) == 8080
    assert target_port({"port": 80}, pod("a", "1.1.1.1")) == 80
    assert target_port({"port": 80, "targetPort": "nope"}, pod("a", "1.1.1.1")) is None


def test_subsets_split_ready_and_group_by_ports():
    pods = [pod("a", "10.42.0.1"), pod("b", "10.42.0.2", ready=False),
            pod("c", "10.42.0.3", port=9000), pod("x", "10.42.0.9", labels={"app": "other"}),
            pod("d", "", ready=True), pod("e", "10.42.0.5", phase="Succeeded"),
            pod("f", "10.42.0.6", deleting=True)]
    subsets = endpoints_subsets(svc(HTTP), pods)
    assert len(subsets) == 2
    by_port = {s["ports"][0]["port"]: s for s in subsets}
    assert [a["ip"] for a in by_port[8080]["addresses"]] == ["10.42.0.1"]
    assert [a["ip"] for a in by_port[8080]["notReadyAddresses"]] == ["10.42.0.2"]
    assert [a["ip"] for a in by_port[9000]["addresses"]] == ["10.42.0.3"]
    assert by_port[8080]["ports"] == [{"port": 8080, "protocol": "TCP", "name": "http"}]
    assert by_port[8080]["addresses"][0]["targetRef"]["name"] == "a"


def test_publish_not_ready_addresses():
    subsets = endpoints_subsets(svc(HTTP, publish=True), [pod("b", "10.42.0.2", ready=False)])
    assert [a["ip"] for a in subsets[0]["addresses"]] == ["10.42.0.2"]


def test_slice_endpoint_conditions():
    [(ports, eps)] = slice_groups(svc(HTTP), [pod("a", "10.42.0.1"),
                                             pod("b", "10.42.0.2", ready=False)])
    assert ports == [{"name": "http", "port": 8080, "protocol": "TCP"}]
    assert [(e["addresses"], e["conditions"]["ready"]) for e in eps] == \
        [(["10.42.0.1"], True), (["10.42.0.2"], False)]
    assert eps[0]["nodeName"] == "n1" and eps[0]["targetRef"]["kind"] == "Pod"


def test_a_named_port_with_different_numbers_gets_a_slice_per_number():
    slices = slice_groups(svc(HTTP), [pod("a", "10.42.0.1"), pod("b", "10.42.0.2", port=9000),
                                      pod("c", "10.42.0.3")])
    assert [([p["port"] for p in ports], [e["addresses"][0] for e in eps])
            for ports, eps in slices] == [([8080], ["10.42.0.1", "10.42.0.3"]),
                                          ([9000], ["10.42.0.2"])]


def test_a_service_without_pods_has_one_empty_slice():
    assert slice_groups(svc(HTTP), []) == [([], [])]
