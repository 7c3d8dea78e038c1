"""The nftables proxy carrying real traffic, inside network namespaces this test makes:

    ext (192.168.77.2) ──veth── node (192.168.77.1; br0 10.244.1.1/24; our rules)
                                  ├── be1 10.244.1.11  (node "node-a": this node)
                                  ├── be2 10.244.1.12  (node "node-b")
                                  ├── be3 10.244.1.13  (node "node-b")
                                  └── cli 10.244.1.21  (a client pod)

Backends answer "<name> <peer address>" over TCP and UDP on 8080. The proxy's sync code
renders the rules and applies them in `node` (ip netns exec); the last tests run the real
`pybernetes proxy` against an API server and change EndpointSlices through the API."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from pybernetes.proxy import routes
from pybernetes.proxy.model import service_ports
from pybernetes.proxy.nftables import Config, NftablesProxier
from tests.conftest import start_cluster, wait_for

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("ip"),
    reason="needs root, nft and ip (network namespaces)")

TAG = f"{os.getpid() % 100000}"
NODE, EXT, CLI = f"pxn{TAG}", f"pxe{TAG}", f"pxc{TAG}"
BACKENDS = {f"be{i}": (f"px{i}{TAG}", f"10.244.1.1{i}") for i in (1, 2, 3)}
TABLE = f"pyb_test_{TAG}"
THIS_NODE = "node-a"
POD_CIDR, SERVICE_CIDR = "10.244.0.0/16", "10.96.0.0/16"
NODE_IP, EXT_IP, BRIDGE_IP = "192.168.77.1", "192.168.77.2", "10.244.1.1"
PORT = 8080

SERVER = r"""
import socket, sys, threading
name, port = sys.argv[1], int(sys.argv[2])
t = socket.socket(); t.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
t.bind(("0.0.0.0", port)); t.listen(128)
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", port))
def udp():
    while True:
        d, a = u.recvfrom(100); u.sendto(f"{name} {a[0]}".encode(), a)
threading.Thread(target=udp, daemon=True).start()
print("ready", flush=True)
while True:
    c, a = t.accept()
    try:
        c.sendall(f"{name} {a[0]}".encode())
    finally:
        c.close()
"""

CLIENT = r"""
import collections, json, socket, sys
host, port, n, proto = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sport = int(sys.argv[5]) if len(sys.argv) > 5 else 0
counts, peers = collections.Counter(), set()
for _ in range(n):
    try:
        if proto == "tcp":
            s = socket.create_connection((host, port), timeout=3)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", sport)); s.connect((host, port)); s.send(b"hi")
        with s:
            name, peer = s.recv(100).decode().split()
        counts[name] += 1; peers.add(peer)
    except ConnectionRefusedError:
        counts["refused"] += 1
    except socket.timeout:
        counts["timeout"] += 1
    except OSError as e:
        counts[type(e).__name__] += 1
print(json.dumps({"counts": counts, "peers": sorted(peers)}))
"""


def sh(*argv: str, check: bool = True) -> str:
    p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    if check and p.returncode:
        raise AssertionError(f"{' '.join(argv)}: {p.stderr.strip()}")
    return p.stdout


def in_ns(ns: str, *argv: str, check: bool = True) -> str:
    return sh("ip", "netns", "exec", ns, *argv, check=check)


def namespaces() -> list[str]:
    return [NODE, EXT, CLI] + [ns for ns, _ in BACKENDS.values()]


def build_topology() -> None:
    for ns in namespaces():
        sh("ip", "netns", "add", ns)
        in_ns(ns, "ip", "link", "set", "lo", "up")
    in_ns(NODE, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    in_ns(NODE, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1", check=False)
    in_ns(NODE, "ip", "link", "add", "br0", "type", "bridge")
    in_ns(NODE, "ip", "addr", "add", f"{BRIDGE_IP}/24", "dev", "br0")
    in_ns(NODE, "ip", "link", "set", "br0", "up")
    pods = [(ns, ip) for ns, ip in BACKENDS.values()] + [(CLI, "10.244.1.21")]
    for i, (ns, ip) in enumerate(pods):
        host_end = f"v{i}{TAG}"
        in_ns(NODE, "ip", "link", "add", host_end, "type", "veth", "peer", "name", "eth0",
              "netns", ns)
        in_ns(NODE, "ip", "link", "set", host_end, "master", "br0", "up")
        in_ns(NODE, "ip", "link", "set", host_end, "type", "bridge_slave", "hairpin", "on")
        in_ns(ns, "ip", "addr", "add", f"{ip}/24", "dev", "eth0")
        in_ns(ns, "ip", "link", "set", "eth0", "up")
        in_ns(ns, "ip", "route", "add", "default", "via", BRIDGE_IP)
    in_ns(NODE, "ip", "link", "add", "ext0", "type", "veth", "peer", "name", "eth0",
          "netns", EXT)
    in_ns(NODE, "ip", "addr", "add", f"{NODE_IP}/24", "dev", "ext0")
    in_ns(NODE, "ip", "link", "set", "ext0", "up")
    in_ns(EXT, "ip", "addr", "add", f"{EXT_IP}/24", "dev", "eth0")
    in_ns(EXT, "ip", "link", "set", "eth0", "up")
    in_ns(EXT, "ip", "route", "add", "default", "via", NODE_IP)


def start_servers() -> list[subprocess.Popen]:
    procs = []
    for name, (ns, _) in BACKENDS.items():
        p = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, name,
                              str(PORT)], stdout=subprocess.PIPE, text=True)
        procs.append(p)
    for p in procs:
        assert p.stdout.readline().strip() == "ready"
    return procs


@pytest.fixture(scope="module")
def topology() -> Iterator[None]:
    servers: list[subprocess.Popen] = []
    try:
        build_topology()
        servers = start_servers()
        yield
    finally:
        for p in servers:
            p.kill()
            p.wait(10)
        for ns in namespaces():
            sh("ip", "netns", "del", ns, check=False)
        left = sh("ip", "netns", "list")
        assert not [ns for ns in namespaces() if ns in left.split()], left


@pytest.fixture(scope="module")
def proxier(topology) -> Iterator[NftablesProxier]:
    prefix = ["ip", "netns", "exec", NODE]
    p = NftablesProxier(Config(table=TABLE, node_name=THIS_NODE, cluster_cidr=POD_CIDR,
                               service_cidr=SERVICE_CIDR), prefix)
    added = asyncio.run(routes.ensure(routes.wanted(SERVICE_CIDR, POD_CIDR), prefix))
    yield p
    asyncio.run(p.delete_table())
    asyncio.run(routes.remove(added, prefix))
    assert TABLE not in in_ns(NODE, "nft", "list", "tables")


# -- the objects -----------------------------------------------------------------------------

def service(name: str, ip: str, typ: str = "ClusterIP", node_port: int = 0,
            protocol: str = "TCP", **spec) -> dict:
    port = {"port": 80, "targetPort": PORT, "protocol": protocol}
    status = spec.pop("status", {})
    if node_port:
        port["nodePort"] = node_port
    return {"metadata": {"name": name, "namespace": "default"},
            "spec": {"type": typ, "clusterIP": ip, "ports": [port], **spec},
            "status": status}


def endpoint_slice(svc: str, backends: list[str], protocol: str = "TCP") -> dict:
    eps = [{"addresses": [BACKENDS[b][1]], "conditions": {"ready": True},
            "nodeName": THIS_NODE if b == "be1" else "node-b"} for b in backends]
    return {"metadata": {"name": f"{svc}-x", "namespace": "default",
                         "labels": {"kubernetes.io/service-name": svc}},
            "addressType": "IPv4", "endpoints": eps,
            "ports": [{"name": "", "port": PORT, "protocol": protocol}]}


def sync(proxier: NftablesProxier, services: list[dict], slices: list[dict]) -> None:
    asyncio.run(proxier.sync(service_ports(services, slices)))


def client(ns: str, host: str, port: int, n: int, proto: str = "tcp",
           sport: int = 0) -> dict:
    out = in_ns(ns, sys.executable, "-c", CLIENT, host, str(port), str(n), proto, str(sport))
    return json.loads(out)


# -- the tests --------------------------------------------------------------------------------

def test_cluster_ip_spreads_over_all_endpoints(proxier):
    sync(proxier, [service("web", "10.96.0.10")],
         [endpoint_slice("web", ["be1", "be2", "be3"])])
    got = client(CLI, "10.96.0.10", 80, 150)["counts"]
    assert sorted(got) == ["be1", "be2", "be3"], got
    assert min(got.values()) >= 15, got  # expected 50 each; 15 is far in the tail


def test_the_node_itself_reaches_a_cluster_ip(proxier):
    sync(proxier, [service("web", "10.96.0.10")], [endpoint_slice("web", ["be2"])])
    got = client(NODE, "10.96.0.10", 80, 5)
    assert got["counts"] == {"be2": 5}
    assert got["peers"] == [BRIDGE_IP]  # masqueraded: the host is outside the pod network


def test_session_affinity_sticks_to_one_endpoint(proxier):
    sync(proxier, [service("web", "10.96.0.10", sessionAffinity="ClientIP")],
         [endpoint_slice("web", ["be1", "be2", "be3"])])
    got = client(CLI, "10.96.0.10", 80, 30)["counts"]
    assert len(got) == 1 and sum(got.values()) == 30, got


def test_node_port_from_outside_is_masqueraded(proxier):
    sync(proxier, [service("np", "10.96.0.11", "NodePort", 30080)],
         [endpoint_slice("np", ["be1", "be2", "be3"])])
    got = client(EXT, NODE_IP, 30080, 60)
    assert set(got["counts"]) == {"be1", "be2", "be3"}, got
    assert got["peers"] == [BRIDGE_IP]


def test_external_traffic_policy_local_keeps_source_and_uses_local_endpoints(proxier):
    lb = service("lb", "10.96.0.12", "LoadBalancer", 30081, externalTrafficPolicy="Local",
                 status={"loadBalancer": {"ingress": [{"ip": "203.0.113.7"}]}})
    sync(proxier, [lb], [endpoint_slice("lb", ["be1", "be2", "be3"])])
    for host, port in ((NODE_IP, 30081), ("203.0.113.7", 80)):
        got = client(EXT, host, port, 20)
        assert got == {"counts": {"be1": 20}, "peers": [EXT_IP]}, (host, got)
    # pods still reach every endpoint through the cluster IP
    assert set(client(CLI, "10.96.0.12", 80, 60)["counts"]) == {"be1", "be2", "be3"}
    # no endpoint on this node: external traffic is dropped (times out), not sent away
    sync(proxier, [lb], [endpoint_slice("lb", ["be2", "be3"])])
    assert client(EXT, NODE_IP, 30081, 1)["counts"] == {"timeout": 1}


def test_internal_traffic_policy_local(proxier):
    sync(proxier, [service("web", "10.96.0.10", internalTrafficPolicy="Local")],
         [endpoint_slice("web", ["be1", "be2", "be3"])])
    assert client(CLI, "10.96.0.10", 80, 30)["counts"] == {"be1": 30}


def test_no_endpoints_is_refused_at_once(proxier):
    sync(proxier, [service("empty", "10.96.0.13", "NodePort", 30082)], [])
    began = time.monotonic()
    assert client(CLI, "10.96.0.13", 80, 3)["counts"] == {"refused": 3}
    assert client(NODE, "10.96.0.13", 80, 3)["counts"] == {"refused": 3}
    assert client(EXT, NODE_IP, 30082, 3)["counts"] == {"refused": 3}
    # a port no Service has on a cluster IP, and a service address nobody has
    assert client(CLI, "10.96.0.13", 81, 1)["counts"] == {"refused": 1}
    assert client(CLI, "10.96.7.7", 80, 1)["counts"] == {"refused": 1}
    assert client(NODE, "10.96.7.7", 80, 1)["counts"] == {"refused": 1}
    # the client timeout is 3 s per try: 12 refusals took far less than one timeout each
    assert time.monotonic() - began < 12 * 3


def test_removed_endpoint_gets_no_more_traffic(proxier):
    sync(proxier, [service("web", "10.96.0.10")],
         [endpoint_slice("web", ["be1", "be2", "be3"])])
    assert "be3" in client(CLI, "10.96.0.10", 80, 60)["counts"]
    sync(proxier, [service("web", "10.96.0.10")], [endpoint_slice("web", ["be1", "be2"])])
    assert set(client(CLI, "10.96.0.10", 80, 60)["counts"]) == {"be1", "be2"}


def test_udp_flow_moves_when_its_endpoint_goes(proxier):
    svc = service("dns", "10.96.0.14", protocol="UDP")
    sync(proxier, [svc], [endpoint_slice("dns", ["be1", "be2"], "UDP")])
    # the same source port each time: one conntrack entry, one endpoint
    first = client(CLI, "10.96.0.14", 80, 5, "udp", 40000)["counts"]
    assert len(first) == 1 and sum(first.values()) == 5, first
    [stuck] = first
    rest = [b for b in ("be1", "be2") if b != stuck]
    sync(proxier, [svc], [endpoint_slice("dns", rest, "UDP")])
    assert client(CLI, "10.96.0.14", 80, 3, "udp", 40000)["counts"] == {rest[0]: 3}


def test_hairpin_a_pod_reaches_itself_through_its_service(proxier):
    sync(proxier, [service("web", "10.96.0.10")], [endpoint_slice("web", ["be1"])])
    got = client(BACKENDS["be1"][0], "10.96.0.10", 80, 3)
    assert got == {"counts": {"be1": 3}, "peers": [BRIDGE_IP]}


def test_service_cidr_is_local_and_pod_cidr_unreachable(proxier):
    assert "local 10.96.3.3" in in_ns(NODE, "ip", "route", "get", "10.96.3.3")
    out = subprocess.run(["ip", "netns", "exec", NODE, "ip", "route", "get", "10.244.9.9"],
                         capture_output=True, text=True)
    assert "unreachable" in (out.stdout + out.stderr).lower() or out.returncode != 0
    assert "dev br0" in in_ns(NODE, "ip", "route", "get", "10.244.1.12")


# -- the real command against an API server ---------------------------------------------------

@pytest.fixture(scope="module")
def api_cluster(tmp_path_factory, topology):
    c = start_cluster(tmp_path_factory.mktemp("proxy-cluster"))
    yield c
    c.stop()


def put_slice(cluster, body: dict) -> None:
    path = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
    status, cur = cluster.json("GET", f"{path}/{body['metadata']['name']}")
    if status == 404:
        status, out = cluster.json("POST", path, body)
    else:
        body["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
        status, out = cluster.json("PUT", f"{path}/{body['metadata']['name']}", body)
    assert status in (200, 201), out


def test_pybernetes_proxy_follows_the_api(api_cluster, proxier, tmp_path: Path):
    asyncio.run(proxier.delete_table())  # the command owns the table from here on
    table = f"{TABLE}c"
    status, svc = api_cluster.json("POST", "/api/v1/namespaces/default/services", {
        "metadata": {"name": "api-web"},
        "spec": {"ports": [{"port": 80, "targetPort": PORT}]}})  # no selector: our slice
    assert status == 201, svc
    vip = svc["spec"]["clusterIP"]
    put_slice(api_cluster, endpoint_slice("api-web", ["be1", "be2", "be3"]))
    cidr = "10.43.0.0/16"  # the server's default service CIDR (only routed in NODE)
    log = open(tmp_path / "proxy.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "pybernetes.cli.main", "proxy",
                             "--kubeconfig", api_cluster.kubeconfig, "--netns", NODE,
                             "--nftables-table", table, "--hostname-override", THIS_NODE,
                             "--cluster-cidr", POD_CIDR, "--service-cluster-ip-range", cidr,
                             "--min-sync-period", "200ms"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for("rules for the service", lambda: set(
            client(CLI, vip, 80, 30)["counts"]) == {"be1", "be2", "be3"}, timeout=60)
        put_slice(api_cluster, endpoint_slice("api-web", ["be2"]))
        wait_for("be1 and be3 removed", lambda: client(CLI, vip, 80, 10)["counts"] == {
            "be2": 10}, timeout=60)
        put_slice(api_cluster, endpoint_slice("api-web", []))
        wait_for("refused without endpoints", lambda: client(CLI, vip, 80, 2)["counts"] == {
            "refused": 2}, timeout=60)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        log.close()
    assert code == 0, (tmp_path / "proxy.log").read_text()[-3000:]
    assert table not in in_ns(NODE, "nft", "list", "tables")
    assert "local" not in in_ns(NODE, "ip", "route", "get", "10.43.5.5", check=False)
