"""Services end to end on a real runc node, through the whole `pybernetes server`
(API server, controller manager with ServiceLB, scheduler, runc kubelet, nftables
proxy, cluster DNS), as a user of one machine sees them:

- three busybox httpd replicas each answer with their own hostname; 300 `wget`s of
  the ClusterIP from a client pod reach each of them, none less than 20 % of the time;
  the same by the Service's name through the cluster DNS;
- the NodePort and the LoadBalancer Service answer from the host on the node address,
  and `kubectl get svc` shows EXTERNAL-IP (the node address) and `PORT:NODEPORT/TCP`;
- a Service without endpoints refuses at once (connection refused, not a timeout);
- scaling 3 → 2: one second after the removed pod's endpoint leaves the
  EndpointSlice, 50 requests never reach it;
- every pod and service address used routes to lo, the test's bridge or nowhere,
  never via the default route; stopping the server removes the nftables table and
  the routes.

Isolation (two e2e modules may run at once): S = 40 + pid % 30 picks pod CIDR
10.S.0.0/16, service CIDR 10.(S+160).0.0/16, node ports 30000+50S..+49, a bridge,
node name and nftables table of this process's own."""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from typing import Iterator

import pytest

from tests.conftest import Kubectl, free_port
from tests.e2e.kubelet_fixtures import (REQUIREMENTS, NodeNet, remove_proxy_leftovers,
                                        runc_server, wait_for)

pytestmark = REQUIREMENTS + [
    pytest.mark.skipif(shutil.which("nft") is None, reason="nftables is not installed")]

K = 0
S = 40 + (os.getpid() + K) % 30
POD_CIDR = f"10.{S}.0.0/16"
SERVICE_CIDR = f"10.{S + 160}.0.0/16"
CLUSTER_DNS = f"10.{S + 160}.0.10"   # the server's default: the CIDR's 10th address
NODE_PORTS = (30000 + S * 50, 30000 + S * 50 + 49)
BRIDGE = f"pyp{os.getpid() % 100000}"
NODE = f"e2e-svc-{os.getpid()}"
TABLE = f"pyb_e2e_{os.getpid()}"
LB_PORT = 20000 + S          # not a port another module's LoadBalancer uses on this node
NET = NodeNet(NODE, BRIDGE, S)
log = logging.getLogger(__name__)
APPLETS = ("timeout", "tr")  # beyond the test busybox's
SERVICES = ("hello", "hello-np", "hello-lb", "nobody")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    try:
        with runc_server(tmp_path_factory.mktemp("services"), NET, ("proxy", "dns"), [
                "--service-cidr", SERVICE_CIDR,
                "--service-node-port-range", f"{NODE_PORTS[0]}-{NODE_PORTS[1]}",
                "--kube-proxy-arg", f"nftables-table={TABLE}",
                # names outside cluster.local go to a closed local port: nothing leaves
                "--dns-arg", "dns-port=0", "--dns-arg", "metrics-port=0",
                "--dns-arg", f"upstream=127.0.0.1:{free_port()}"], APPLETS) as env:
            env["addresses"] = set()
            yield env
    finally:   # only if the proxy died without cleaning up
        remove_proxy_leftovers(TABLE, SERVICE_CIDR, POD_CIDR)


def table_exists() -> bool:
    return subprocess.run(["nft", "list", "table", "ip", TABLE],
                          capture_output=True).returncode == 0


def proxy_routes() -> list[str]:
    """Our CIDRs' routes still in the kernel (local table: service CIDR; main: pods)."""
    local = subprocess.run(["ip", "route", "show", "table", "local", "exact", SERVICE_CIDR],
                           capture_output=True, text=True).stdout.strip()
    main = subprocess.run(["ip", "route", "show", "exact", POD_CIDR],
                          capture_output=True, text=True).stdout.strip()
    return [r for r in (local, main) if r]


def ready_pods(kc: Kubectl, selector: str) -> list[dict]:
    items = json.loads(kc("get", "pods", "-l", selector, "-o", "json"))["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp") and any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in (p.get("status") or {}).get("conditions") or [])]


def svc(kc: Kubectl, name: str) -> dict:
    return json.loads(kc("get", "svc", name, "-o", "json"))


def node_ip(kc: Kubectl) -> str:
    node = json.loads(kc("get", "node", NODE, "-o", "json"))
    return next(a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP")


def wget_loop(kc: Kubectl, url: str, n: int) -> list[str]:
    """`n` wgets of `url` from the client pod in one exec; each answer's first line."""
    script = (f"i=0; while [ $i -lt {n} ]; do timeout 5 wget -q -O- {url}; "
              f"i=$((i+1)); done")
    out = kc.run("exec", "client", "--", "sh", "-c", script, check=False,
                 timeout=60 + 3 * n).stdout
    return [line.strip() for line in out.splitlines() if line.strip()]


def http_get(url: str) -> str:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=5) as r:
        return r.read().decode().strip()


def endpoint_slice(kc: Kubectl, service: str) -> list[dict]:
    out = kc("get", "endpointslices", "-l", f"kubernetes.io/service-name={service}",
             "-o", "json")
    return [ep for s in json.loads(out)["items"] for ep in s.get("endpoints") or []]


# -- the tests ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def hello(env: dict) -> dict:
    """Three httpd replicas answering with their hostname, three Services in front of
    them, and a client pod."""
    kc = env["kubectl"]
    kc("create", "deployment", "hello", "--image", env["image"], "--replicas", "3",
       "--port", "8080", "--", "sh", "-c",
       "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 8080 -h /www")
    kc("run", "client", "--image", env["image"], "--restart=Never", "--", "sleep", "3600")
    kc("expose", "deployment", "hello", "--port", "80", "--target-port", "8080")
    kc("expose", "deployment", "hello", "--name", "hello-np", "--type", "NodePort",
       "--port", "8080")
    kc("expose", "deployment", "hello", "--name", "hello-lb", "--type", "LoadBalancer",
       "--port", str(LB_PORT), "--target-port", "8080")
    kc("rollout", "status", "deployment/hello", "--timeout=180s", timeout=200)
    pods = wait_for("3 Ready hello pods", lambda: len(ready_pods(kc, "app=hello")) == 3
                    and ready_pods(kc, "app=hello"), 60)
    kc("wait", "--for=condition=Ready", "pod/client", "--timeout=120s", timeout=130)
    client = json.loads(kc("get", "pod", "client", "-o", "json"))
    ips = {p["metadata"]["name"]: p["status"]["podIP"] for p in pods}
    env["addresses"] |= set(ips.values()) | {client["status"]["podIP"]}
    for name in ("hello", "hello-np", "hello-lb"):
        env["addresses"].add(svc(kc, name)["spec"]["clusterIP"])
    wait_for("the endpoints of hello", lambda: len(endpoint_slice(kc, "hello")) == 3, 60)
    return {"pods": ips, "vip": svc(kc, "hello")["spec"]["clusterIP"]}


def test_cluster_ip_spreads_evenly_over_the_replicas(env: dict, hello: dict) -> None:
    kc = env["kubectl"]
    url = f"http://{hello['vip']}/"
    wait_for("the ClusterIP answers", lambda: wget_loop(kc, url, 1), 60)
    answers = Counter(wget_loop(kc, url, 300))
    log.info("300 wgets of %s: %s", url, dict(answers))   # -o log_cli=true shows the spread
    assert set(answers) == set(hello["pods"]), answers
    assert sum(answers.values()) == 300, answers
    assert min(answers.values()) >= 0.2 * 300, answers


def test_cluster_ip_by_dns_name_spreads_too(env: dict, hello: dict) -> None:
    kc = env["kubectl"]
    url = "http://hello.default.svc.cluster.local/"
    env["addresses"].add(CLUSTER_DNS)
    wait_for("the name answers", lambda: wget_loop(kc, url, 1), 60)
    answers = Counter(wget_loop(kc, url, 300))
    log.info("300 wgets of %s: %s", url, dict(answers))
    assert set(answers) == set(hello["pods"]), answers
    assert min(answers.values()) >= 0.2 * 300, answers


def test_a_pod_reaches_the_api_server_by_its_service_name(env: dict, hello: dict) -> None:
    """What an in-cluster client (an operator) does: resolve kubernetes.default.svc, dial
    the `kubernetes` Service (the proxy sends it to the API server's advertised address),
    verify the server with the pod's CA file and authenticate with the pod's token. The
    HTTPS client runs in the pod's network namespace (busybox's TLS is too small)."""
    kc = env["kubectl"]
    vip = svc(kc, "kubernetes")["spec"]["clusterIP"]
    env["addresses"].add(vip)

    def lookup() -> str:
        run = kc.run("exec", "client", "--", "busybox", "nslookup",
                     "kubernetes.default.svc.cluster.local",
                     check=False, timeout=30)
        log.info("nslookup: %s %s", run.stdout, run.stderr)
        return run.stdout if vip in run.stdout else ""
    wait_for("kubernetes.default.svc resolves in the pod", lookup, 60)
    secrets = "/var/run/secrets/kubernetes.io/serviceaccount"
    token = kc("exec", "client", "--", "cat", f"{secrets}/token")
    ca = env["cluster"].data_dir / "pod-ca.crt"
    ca.write_text(kc("exec", "client", "--", "cat", f"{secrets}/ca.crt"))
    client_ip = json.loads(kc("get", "pod", "client", "-o", "json"))["status"]["podIP"]
    code = (
        "import ssl, socket, sys\n"
        f"ctx = ssl.create_default_context(cafile={str(ca)!r})\n"
        f"raw = socket.create_connection(({vip!r}, 443), timeout=10)\n"
        "conn = ctx.wrap_socket(raw, server_hostname='kubernetes.default.svc')\n"
        "conn.sendall(b'GET /api/v1/namespaces/default/services/hello HTTP/1.0\\r\\n'\n"
        "             b'Host: kubernetes.default.svc\\r\\nConnection: close\\r\\n'\n"
        f"             b'Authorization: Bearer {token.strip()}\\r\\n\\r\\n')\n"
        "data = b''\n"
        "while chunk := conn.recv(65536):\n"
        "    data += chunk\n"
        "sys.stdout.write(data.decode())\n")
    out = subprocess.run(["nsenter", f"--net={_pod_netns(env, client_ip)}", sys.executable,
                          "-c", code], capture_output=True, text=True, timeout=60)
    head, _, body = out.stdout.partition("\n\n")   # text mode turned CRLF into LF
    assert head.split()[1] == "200", (out.stdout[-500:], out.stderr[-500:])
    assert json.loads(body)["spec"]["clusterIP"] == hello["vip"]


def _pod_netns(env: dict, ip: str) -> str:
    """The kubelet's bind mount of the network namespace that holds `ip`."""
    netns = env["cluster"].data_dir / "kubelet" / "netns"
    for path in sorted(netns.iterdir()):
        addrs = subprocess.run(["nsenter", f"--net={path}", "ip", "-4", "-o", "addr"],
                               capture_output=True, text=True).stdout
        if f" {ip}/" in addrs:
            return str(path)
    raise AssertionError(f"no network namespace under {netns} holds {ip}")


def test_node_port_and_load_balancer_answer_on_the_node_address(env: dict, hello: dict) -> None:
    kc, addr = env["kubectl"], node_ip(env["kubectl"])
    node_port = svc(kc, "hello-np")["spec"]["ports"][0]["nodePort"]
    assert NODE_PORTS[0] <= node_port <= NODE_PORTS[1]
    seen = {wait_for("the NodePort answers", lambda: _get(f"http://{addr}:{node_port}/"), 60)
            for _ in range(12)}
    assert seen <= set(hello["pods"]) and len(seen) >= 2, seen

    wait_for("hello-lb EXTERNAL-IP", lambda: kc("get", "svc", "hello-lb", "--no-headers")
             .split()[3] != "<pending>", 60)
    name, type_, cluster_ip, external, ports = kc("get", "svc", "hello-lb",
                                                  "--no-headers").split()[:5]
    assert (type_, cluster_ip, external) == ("LoadBalancer",
                                             svc(kc, "hello-lb")["spec"]["clusterIP"], addr)
    lb_node_port = svc(kc, "hello-lb")["spec"]["ports"][0]["nodePort"]
    assert ports == f"{LB_PORT}:{lb_node_port}/TCP"
    seen = {wait_for("the LoadBalancer answers", lambda: _get(f"http://{external}:{LB_PORT}/"),
                     60) for _ in range(12)}
    assert seen <= set(hello["pods"]) and len(seen) >= 2, seen


def _get(url: str) -> str:
    try:
        return http_get(url)
    except OSError:
        return ""


def test_a_service_without_endpoints_refuses_at_once(env: dict, hello: dict) -> None:
    kc = env["kubectl"]
    kc("create", "service", "nodeport", "nobody", "--tcp=80:8080")   # selects app=nobody
    nobody = svc(kc, "nobody")
    vip, node_port = nobody["spec"]["clusterIP"], nobody["spec"]["ports"][0]["nodePort"]
    env["addresses"].add(vip)
    wait_for("the proxy to know nobody", lambda: _refused(vip, 80), 60)
    for host, port in ((vip, 80), (node_ip(kc), node_port)):
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((host, port), timeout=30).close()
    p = kc.run("exec", "client", "--", "timeout", "20", "wget", "-q", "-O-",
               f"http://{vip}/", check=False)
    # busybox wget exits 1 with "Connection refused"; `timeout` would exit 124/143
    assert p.returncode == 1 and "Connection refused" in p.stdout + p.stderr, p


def _refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=30).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    return False


def test_scale_down_removed_pod_gets_no_more_traffic(env: dict, hello: dict) -> None:
    kc = env["kubectl"]
    before = dict(hello["pods"])
    kc("scale", "deployment", "hello", "--replicas=2")
    removed = wait_for("one pod terminating", lambda: [
        p["metadata"]["name"] for p in json.loads(kc("get", "pods", "-l", "app=hello", "-o",
                                                     "json"))["items"]
        if p["metadata"].get("deletionTimestamp")], 60)
    assert len(removed) == 1 and removed[0] in before
    gone_ip = before[removed[0]]

    def endpoint_left() -> bool:
        for ep in endpoint_slice(kc, "hello"):
            if gone_ip in ep.get("addresses") or []:
                return not (ep.get("conditions") or {}).get("ready", True)
        return True
    wait_for(f"{removed[0]}'s endpoint to leave the slice", endpoint_left, 60, 0.1)
    time.sleep(1)
    answers = Counter(wget_loop(kc, f"http://{hello['vip']}/", 50))
    assert removed[0] not in answers, answers
    assert sum(answers.values()) == 50 and set(answers) <= set(before), answers


def test_no_pod_or_service_address_uses_the_default_route(env: dict, hello: dict) -> None:
    stray_pod, stray_svc = f"10.{S}.200.7", f"10.{S + 160}.200.7"   # no pod, no Service
    for addr in sorted(env["addresses"] | {stray_pod, stray_svc}):
        p = subprocess.run(["ip", "route", "get", addr], capture_output=True, text=True)
        out = (p.stdout + p.stderr).strip()
        local = re.match(rf"local {re.escape(addr)} dev lo ", out)
        bridge = re.match(rf"{re.escape(addr)} dev {BRIDGE} ", out)
        unreachable = p.returncode != 0 and ("unreachable" in out.lower() or
                                             "No route to host" in out)
        assert local or bridge or unreachable, f"ip route get {addr}: {out}"
        assert " via " not in out, out
    assert subprocess.run(["ip", "route", "get", stray_pod], capture_output=True).returncode != 0


def test_stopping_the_server_removes_the_table_and_routes(env: dict, hello: dict) -> None:
    assert table_exists()
    assert proxy_routes()
    kc = env["kubectl"]
    kc("delete", "services", *SERVICES, "--ignore-not-found")
    kc("delete", "deployments,pods", "--all", "--grace-period=1", "--wait=true",
       "--timeout=60s", timeout=90)
    env["cluster"].stop()
    assert not table_exists(), f"nft table ip {TABLE} is still there"
    assert proxy_routes() == []
