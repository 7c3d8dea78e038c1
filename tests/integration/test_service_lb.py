"""ServiceLB through a whole `pybernetes server` (controller manager + two simulated
nodes) and the real kubectl: the seeds' `kubectl expose --type=LoadBalancer` gets
the nodes' addresses as EXTERNAL-IP (not <pending>), PORT(S) reads `8080:NNNNN/TCP`,
the list follows cordoned nodes, another class's Service stays pending, and a
Service that stops being a LoadBalancer loses its ingress."""
from __future__ import annotations

import json
import re

import pytest

from pybernetes.kubelet.fake import node_ip
from tests.conftest import Cluster, Kubectl, kubectl_binary, start_cluster, wait_for

pytestmark = pytest.mark.kubectl
NODES = ["lb-0", "lb-1"]   # the fake kubelet names its nodes <node-name>-<i>


CLUSTER_COMPONENTS = ("controller-manager", "scheduler", "kubelet")
CLUSTER_FLAGS = ("--node-name", "lb", "--kubelet-runtime", "fake", "--kubelet-arg", "fake-nodes=2")


@pytest.fixture(scope="module")
def kc(kubectl: Kubectl) -> Kubectl:
    wait_for("2 Ready nodes",
             lambda: kubectl("get", "nodes", "--no-headers").count(" Ready ") == 2, 60)
    return kubectl


def ingress(kc: Kubectl, name: str) -> list[dict]:
    svc = json.loads(kc("get", "svc", name, "-o", "json"))
    return (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []


def row(kc: Kubectl, name: str) -> list[str]:
    return kc("get", "svc", name, "--no-headers").split()


def node_ips(*names: str) -> list[str]:
    return sorted((node_ip(n) for n in names), key=lambda ip: tuple(map(int, ip.split("."))))


def test_expose_loadbalancer_shows_the_node_addresses(kc: Kubectl) -> None:
    kc("create", "deployment", "hello-world", "--image=registry.example/hello:1",
       "--port=8080")
    kc("expose", "deployment", "hello-world", "--type=LoadBalancer", "--name=my-service")
    want = node_ips(*NODES)
    wait_for("EXTERNAL-IP filled in", lambda: row(kc, "my-service")[3] != "<pending>", 30)
    name, type_, cluster_ip, external, ports = row(kc, "my-service")[:5]
    assert (name, type_) == ("my-service", "LoadBalancer")
    assert external == ",".join(sorted(want))   # the column sorts as strings (upstream)
    assert re.fullmatch(r"8080:3\d{4}/TCP", ports), ports
    assert ingress(kc, "my-service") == [{"ip": ip, "ipMode": "VIP"} for ip in want]
    header = kc("get", "svc", "my-service").splitlines()[0].split()
    assert header == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"]
    events = kc("get", "events", "--field-selector", "involvedObject.name=my-service")
    assert "EnsuredLoadBalancer" in events


def test_a_cordoned_node_leaves_and_comes_back(kc: Kubectl) -> None:
    kc("create", "service", "loadbalancer", "cordon-lb", "--tcp=82:82")
    wait_for("both nodes serve", lambda: [i["ip"] for i in ingress(kc, "cordon-lb")]
             == node_ips(*NODES), 30)
    kc("cordon", NODES[0])
    try:
        wait_for("only lb-1 serves", lambda: [i["ip"] for i in ingress(kc, "cordon-lb")]
                 == node_ips(NODES[1]), 30)
    finally:
        kc("uncordon", NODES[0])
    wait_for("both serve again", lambda: [i["ip"] for i in ingress(kc, "cordon-lb")]
             == node_ips(*NODES), 30)


def test_another_load_balancer_class_stays_pending(kc: Kubectl) -> None:
    svc = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "other-lb"},
           "spec": {"type": "LoadBalancer", "loadBalancerClass": "example.com/elsewhere",
                    "selector": {"app": "other"}, "ports": [{"port": 80}]}}
    kc("apply", "-f", "-", input=json.dumps(svc))
    # a Service created after other-lb is reconciled after it: once a fresh LB
    # Service is filled in, the classed one has been seen and left alone
    kc("create", "service", "loadbalancer", "marker", "--tcp=81:81")
    wait_for("marker filled in", lambda: ingress(kc, "marker"), 30)
    assert row(kc, "other-lb")[3] == "<pending>"
    assert ingress(kc, "other-lb") == []


def test_no_longer_a_load_balancer_loses_its_ingress(kc: Kubectl) -> None:
    kc("create", "service", "loadbalancer", "was-lb", "--tcp=8080:80")
    wait_for("ingress filled in", lambda: ingress(kc, "was-lb"), 30)
    kc("patch", "svc", "was-lb", "-p", json.dumps({"spec": {"type": "NodePort"}}))
    wait_for("ingress cleared", lambda: not ingress(kc, "was-lb"), 30)
    name, type_, _, external, ports = row(kc, "was-lb")[:5]
    assert (type_, external) == ("NodePort", "<none>")
    assert re.fullmatch(r"8080:3\d{4}/TCP", ports), ports


def test_service_lb_can_be_turned_off(tmp_path) -> None:
    """k3s' `--disable servicelb` (the controller manager runs without service-lb)."""
    c = start_cluster(tmp_path / "no-lb", components=("controller-manager", "kubelet"),
                      extra=["--node-name", "nolb", "--kubelet-runtime", "fake",
                             "--disable", "servicelb"])
    try:
        kc = Kubectl(kubectl_binary("1.33") or kubectl_binary() or "kubectl", c.kubeconfig)
        wait_for("a Ready node", lambda: " Ready " in kc("get", "nodes", "--no-headers"), 60)
        kc("create", "service", "loadbalancer", "web", "--tcp=80:80")
        kc("create", "deployment", "marker", "--image=registry.example/x:1")
        # the deployment controller runs in the same process: once it acted, so
        # would have service-lb
        wait_for("the marker's ReplicaSet", lambda: kc("get", "rs", "-o", "name"), 30)
        assert row(kc, "web")[3] == "<pending>"
        assert "service-lb" not in _started(c)
    finally:
        c.stop()


def _started(c: Cluster) -> str:
    log = (c.data_dir / "logs" / "controller-manager.log").read_text()
    return next(line for line in log.splitlines() if "controllers started" in line)
