"""Cluster DNS through a whole `pybernetes server` (controller manager, scheduler, a
simulated node and the dns component on loopback, forwarding to a fake upstream on
loopback) and the real kubectl; queries with dnspython over UDP and TCP, the way a
pod's resolver asks."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import urllib.request
from typing import Iterator

import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from pybernetes.dns.fake_upstream import FakeUpstream
from tests.conftest import Cluster, Kubectl, start_cluster, wait_for

pytestmark = pytest.mark.kubectl
D = "cluster.local"
UPSTREAM = {("example.test.", "A"): ["192.0.2.1"], ("db.example.test.", "A"): ["192.0.2.7"]}

MANIFESTS = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: hello}
spec:
  replicas: 2
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers:
      - name: hello
        image: registry.example/hello:1
        ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: hello}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: nginx}
spec:
  clusterIP: None
  selector: {app: nginx}
  ports: [{name: web, port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: nginx
  replicas: 2
  selector: {matchLabels: {app: nginx}}
  template:
    metadata: {labels: {app: nginx}}
    spec:
      containers:
      - name: nginx
        image: registry.example/nginx:1
        ports: [{name: web, containerPort: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: ext}
spec:
  type: ExternalName
  externalName: db.example.test
"""


class ThreadedUpstream:
    """The fake upstream resolver on its own event loop in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.fake = asyncio.run_coroutine_threadsafe(
            FakeUpstream(UPSTREAM).start(), self.loop).result(10)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.fake.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture(scope="module")
def upstream() -> Iterator[ThreadedUpstream]:
    up = ThreadedUpstream()
    try:
        yield up
    finally:
        up.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, upstream) -> Iterator[Cluster]:
    c = start_cluster(tmp_path_factory.mktemp("dns"),
                      components=("controller-manager", "scheduler", "kubelet", "dns"),
                      extra=["--node-name", "dnsnode", "--kubelet-runtime", "fake",
                             "--dns-arg", "bind-address=127.0.0.1", "--dns-arg", "dns-port=0",
                             "--dns-arg", "metrics-port=0",
                             "--dns-arg", f"upstream=127.0.0.1:{upstream.fake.port}"])
    try:
        yield c
    finally:
        c.stop()


@pytest.fixture(scope="module")
def kc(kubectl: Kubectl) -> Kubectl:
    return kubectl   # conftest's, on this module's cluster


def dns_port(kc: Kubectl) -> int:
    """Where the kube-dns Service's EndpointSlice says the server listens."""
    def port() -> int:
        p = kc.run("-n", "kube-system", "get", "endpointslice", "-l",
                   "kubernetes.io/service-name=kube-dns", "-o", "json", check=False)
        items = json.loads(p.stdout or "{}").get("items") or []
        ports = [pt["port"] for s in items for pt in s.get("ports") or []
                 if pt.get("name") == "dns"]
        return ports[0] if ports else 0
    return wait_for("the kube-dns EndpointSlice", port, 60)


@pytest.fixture(scope="module")
def port(kc: Kubectl) -> int:
    p = dns_port(kc)
    kc("apply", "-f", "-", input=MANIFESTS)
    wait_for("web-0 and web-1 running", lambda: kc(
        "get", "pods", "-l", "app=nginx", "--no-headers").count("Running") == 2, 90)
    return p


def ask(port: int, name: str, rtype: str = "A", tcp: bool = False) -> dns.message.Message:
    q = dns.message.make_query(name, rtype)
    if tcp:
        return dns.query.tcp(q, "127.0.0.1", port=port, timeout=5)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=5)


def values(msg: dns.message.Message, rtype: str = "A") -> list[str]:
    t = dns.rdatatype.from_text(rtype)
    return sorted(rd.to_text() for rr in msg.answer if rr.rdtype == t for rd in rr)


def answers(port: int, name: str, rtype: str = "A") -> list[str]:
    """The answer's values, the same over UDP and TCP."""
    udp, tcp = ask(port, name, rtype), ask(port, name, rtype, tcp=True)
    assert values(udp, rtype) == values(tcp, rtype)
    return values(udp, rtype)


def pod_ip(kc: Kubectl, name: str) -> str:
    return kc("get", "pod", name, "-o", "jsonpath={.status.podIP}")


def test_kube_dns_service_is_at_the_cluster_dns_address(kc: Kubectl, port: int) -> None:
    svc = json.loads(kc("-n", "kube-system", "get", "svc", "kube-dns", "-o", "json"))
    assert svc["spec"]["clusterIP"] == "10.43.0.10"
    assert svc["metadata"]["labels"]["k8s-app"] == "kube-dns"
    assert svc["metadata"]["labels"]["kubernetes.io/name"] == "CoreDNS"
    assert [(p["name"], p["port"], p["protocol"]) for p in svc["spec"]["ports"]] == [
        ("dns", 53, "UDP"), ("dns-tcp", 53, "TCP"), ("metrics", 9153, "TCP")]
    ep = json.loads(kc("-n", "kube-system", "get", "endpoints", "kube-dns", "-o", "json"))
    assert ep["subsets"][0]["addresses"][0]["ip"] == "127.0.0.1"
    assert {p["name"]: p["port"] for p in ep["subsets"][0]["ports"]}["dns"] == port
    assert answers(port, f"kube-dns.kube-system.svc.{D}") == ["10.43.0.10"]
    assert answers(port, f"kubernetes.default.svc.{D}") == ["10.43.0.1"]


def test_cluster_ip_service(kc: Kubectl, port: int) -> None:
    ip = kc("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
    assert answers(port, f"web.default.svc.{D}") == [ip]
    assert answers(port, f"WEB.Default.svc.{D}") == [ip]
    assert answers(port, f"_http._tcp.web.default.svc.{D}", "SRV") == [
        f"0 100 80 web.default.svc.{D}."]
    ptr = answers(port, dns.reversename.from_address(ip).to_text(), "PTR")
    assert ptr == [f"web.default.svc.{D}."]
    nodata = ask(port, f"web.default.svc.{D}", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer and nodata.authority
    nx = ask(port, f"nothere.default.svc.{D}", tcp=True)
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.authority


def test_statefulset_pods_by_name_and_srv(kc: Kubectl, port: int) -> None:
    ips = {n: pod_ip(kc, n) for n in ("web-0", "web-1")}
    wait_for("the headless service to list both pods", lambda: answers(
        port, f"nginx.default.svc.{D}") == sorted(ips.values()), 60)
    assert answers(port, f"web-0.nginx.default.svc.{D}") == [ips["web-0"]]
    assert answers(port, f"web-1.nginx.default.svc.{D}") == [ips["web-1"]]
    srv = ask(port, f"_web._tcp.nginx.default.svc.{D}", "SRV")
    assert values(srv, "SRV") == [f"0 50 80 web-{i}.nginx.default.svc.{D}." for i in (0, 1)]
    assert sorted(rd.to_text() for rr in srv.additional for rd in rr) == sorted(ips.values())
    ptr = answers(port, dns.reversename.from_address(ips["web-0"]).to_text(), "PTR")
    assert ptr == [f"web-0.nginx.default.svc.{D}."]
    dashed = ips["web-1"].replace(".", "-")
    assert answers(port, f"{dashed}.default.pod.{D}") == [ips["web-1"]]


def test_external_name_and_forwarding(port: int, upstream: ThreadedUpstream) -> None:
    r = ask(port, f"ext.default.svc.{D}")
    assert values(r, "CNAME") == ["db.example.test."] and values(r) == ["192.0.2.7"]
    assert answers(port, "example.test") == ["192.0.2.1"]
    assert ask(port, "nowhere.test").rcode() == dns.rcode.NXDOMAIN
    assert ("udp", "example.test.", "A") in upstream.fake.queries
    assert ("tcp", "example.test.", "A") in upstream.fake.queries


def test_records_follow_service_changes(kc: Kubectl, port: int) -> None:
    kc("create", "service", "clusterip", "later", "--tcp=5432:5432")
    ip = kc("get", "svc", "later", "-o", "jsonpath={.spec.clusterIP}")
    wait_for("later's A record", lambda: answers(port, f"later.default.svc.{D}") == [ip], 30)
    kc("patch", "svc", "later", "--type=json", "-p",
       '[{"op": "replace", "path": "/spec/ports/0/name", "value": "pg"}]')
    wait_for("the new SRV name", lambda: answers(
        port, f"_pg._tcp.later.default.svc.{D}", "SRV") == [
        f"0 100 5432 later.default.svc.{D}."], 30)
    kc("delete", "svc", "later")
    wait_for("NXDOMAIN after delete", lambda: ask(
        port, f"later.default.svc.{D}").rcode() == dns.rcode.NXDOMAIN, 30)
    kc("scale", "statefulset", "web", "--replicas=1")
    wait_for("web-1 gone from DNS", lambda: ask(
        port, f"web-1.nginx.default.svc.{D}").rcode() == dns.rcode.NXDOMAIN, 60)


def test_a_restarted_server_points_kube_dns_at_its_new_port(cluster: Cluster, kc: Kubectl,
                                                             port: int) -> None:
    pid = cluster.component_pid("dns")
    assert pid
    os.kill(pid, signal.SIGKILL)  # no clean stop: the old endpoints stay until replaced
    new = wait_for("the kube-dns EndpointSlice to name a new port",
                   lambda: (p := dns_port(kc)) != port and p, 90)
    wait_for("answers on the new port", lambda: answers(
        new, f"kube-dns.kube-system.svc.{D}") == ["10.43.0.10"], 30)


def test_metrics_and_readiness(kc: Kubectl, port: int) -> None:
    ask(dns_port(kc), f"web.default.svc.{D}")  # (the server may have restarted meanwhile)
    sl = json.loads(kc("-n", "kube-system", "get", "endpointslice", "kube-dns-pybernetes",
                       "-o", "json"))
    metrics = next(p["port"] for p in sl["ports"] if p["name"] == "metrics")
    base = f"http://127.0.0.1:{metrics}"
    with urllib.request.urlopen(f"{base}/ready", timeout=5) as r:
        assert r.read() == b"OK"
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as r:
        text = r.read().decode()
    assert 'coredns_dns_requests_total{proto="udp"}' in text
    assert 'coredns_dns_responses_total{rcode="NOERROR"}' in text
