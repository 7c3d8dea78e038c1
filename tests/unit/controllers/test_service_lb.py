"""ServiceLB's choices: which nodes serve a LoadBalancer Service and with which
addresses (ExternalIP before InternalIP, the Service's IP families, sorted, once)."""
from __future__ import annotations

from pybernetes.controllers.service_lb import (
    ENABLE_LB_LABEL, EXCLUDE_LABEL, is_ours, serving_nodes, wanted_ingress,
)


def node(name: str, internal: str = "", external: str = "", ready: str = "True",
         unschedulable: bool = False, labels: dict | None = None) -> dict:
    addrs = [{"type": "Hostname", "address": name}]
    if internal:
        addrs.append({"type": "InternalIP", "address": internal})
    if external:
        addrs.append({"type": "ExternalIP", "address": external})
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"unschedulable": unschedulable},
            "status": {"addresses": addrs,
                       "conditions": [{"type": "Ready", "status": ready}]}}


def lb(families: list[str] | None = None, **spec) -> dict:
    return {"metadata": {"name": "web", "namespace": "default"},
            "spec": {"type": "LoadBalancer", "ipFamilies": families or ["IPv4"], **spec}}


def ips(svc: dict, nodes: list[dict]) -> list[str]:
    return [i["ip"] for i in wanted_ingress(svc, nodes)]


def test_ready_schedulable_nodes_internal_ips_sorted():
    nodes = [node("b", "10.0.0.10"), node("a", "10.0.0.9"), node("c", "10.0.0.11", ready="False"),
             node("d", "10.0.0.12", unschedulable=True), node("e", "10.0.0.13", ready="Unknown")]
    assert wanted_ingress(lb(), nodes) == [{"ip": "10.0.0.9", "ipMode": "VIP"},
                                           {"ip": "10.0.0.10", "ipMode": "VIP"}]


def test_external_ip_wins_over_internal():
    assert ips(lb(), [node("a", "10.0.0.9", external="203.0.113.7")]) == ["203.0.113.7"]


def test_same_address_on_two_nodes_listed_once():
    assert ips(lb(), [node("a", "10.0.0.9"), node("b", "10.0.0.9")]) == ["10.0.0.9"]


def test_only_the_services_ip_families():
    nodes = [node("a", "10.0.0.9"), node("b", "fd00::9")]
    assert ips(lb(), nodes) == ["10.0.0.9"]
    assert ips(lb(["IPv6"]), nodes) == ["fd00::9"]
    assert ips(lb(["IPv4", "IPv6"]), nodes) == ["10.0.0.9", "fd00::9"]


def test_enablelb_label_restricts_and_exclude_label_removes():
    nodes = [node("a", "10.0.0.1", labels={ENABLE_LB_LABEL: "true"}),
             node("b", "10.0.0.2", labels={ENABLE_LB_LABEL: "false"}),
             node("c", "10.0.0.3")]
    assert [n["metadata"]["name"] for n in serving_nodes(nodes)] == ["a"]
    nodes = [node("a", "10.0.0.1"), node("b", "10.0.0.2", labels={EXCLUDE_LABEL: ""})]
    assert ips(lb(), nodes) == ["10.0.0.1"]


def test_no_serving_node_no_ingress():
    assert wanted_ingress(lb(), [node("a", "10.0.0.1", ready="False")]) == []


def test_which_services_are_ours():
    assert is_ours(lb())
    assert not is_ours(lb(loadBalancerClass="example.com/other"))
    assert not is_ours({"spec": {"type": "NodePort"}})
    assert not is_ours({"spec": {}})
