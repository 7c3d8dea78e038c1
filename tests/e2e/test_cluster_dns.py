"""Cluster DNS end to end on a real runc node, through the whole `pybernetes server`
(API server, controller manager, scheduler, runc kubelet, nftables proxy, dns), as a
pod sees it:

- `nslookup web.default.svc.cluster.local` from a busybox pod answers the Service's
  ClusterIP, through the kube-dns Service address (the proxy DNATs it to the dns
  server on the node's address) — and `wget` by that name reaches the pods;
- a StatefulSet's `web-0.nginx.default.svc.cluster.local` answers that pod's IP, the
  headless name lists both pods, SRV names each pod;
- short names resolve through the search path (`web`; `web.default` from another
  namespace), a name outside the cluster through the (fake, loopback) upstream;
- resolv.conf per dnsPolicy: ClusterFirst (nameserver, search
  <ns>.svc.cluster.local svc.cluster.local cluster.local, ndots:5), Default (the
  node's), None + dnsConfig, ClusterFirstWithHostNet.

Isolation (two e2e modules may run at once): S = 40 + (pid + 10) % 30 picks pod CIDR
10.S.0.0/16, service CIDR 10.(S+160).0.0/16, node ports 30000+50S..+49, a bridge, node
name and nftables table of this process's own. The dns server listens on an ephemeral
port of the node address; the upstream is a fake resolver on 127.0.0.1."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Iterator

import pytest

from tests.conftest import Kubectl
from tests.e2e.kubelet_fixtures import (
    REQUIREMENTS, NodeNet, remove_proxy_leftovers, runc_server, wait_for,
)
from tests.integration.test_dns import ThreadedUpstream

pytestmark = REQUIREMENTS + [
    pytest.mark.skipif(shutil.which("nft") is None, reason="nftables is not installed")]

K = 10
S = 40 + (os.getpid() + K) % 30
POD_CIDR = f"10.{S}.0.0/16"
SERVICE_CIDR = f"10.{S + 160}.0.0/16"
CLUSTER_DNS = f"10.{S + 160}.0.10"
NODE_PORTS = (30000 + S * 50, 30000 + S * 50 + 49)
BRIDGE = f"pyd{os.getpid() % 100000}"
NODE = f"e2e-dns-{os.getpid()}"
TABLE = f"pyb_dns_{os.getpid()}"
NET = NodeNet(NODE, BRIDGE, S)
APPLETS = ("nslookup", "timeout", "grep")
D = "cluster.local"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    upstream = ThreadedUpstream()
    try:
        with runc_server(tmp_path_factory.mktemp("cluster-dns"), NET, ("proxy", "dns"), [
                "--service-cidr", SERVICE_CIDR,
                "--service-node-port-range", f"{NODE_PORTS[0]}-{NODE_PORTS[1]}",
                "--kube-proxy-arg", f"nftables-table={TABLE}",
                "--dns-arg", "dns-port=0", "--dns-arg", "metrics-port=0",
                "--dns-arg", f"upstream=127.0.0.1:{upstream.fake.port}"], APPLETS,
                delete=("statefulsets,deployments,pods", "--all-namespaces")) as env:
            kc = env["kubectl"]
            kc("apply", "-f", "-", input=manifests(env["image"]))
            try:
                wait_for("client, web-0, web-1 and hello Ready", lambda: ready_count(kc) == 5,
                         180)
            except AssertionError:
                print(kc("get", "pods", "-A", "-o", "wide"), kc("get", "events", "-A"))
                raise
            env["upstream"] = upstream
            yield env
    finally:
        upstream.stop()
        remove_proxy_leftovers(TABLE, SERVICE_CIDR, POD_CIDR)


def manifests(image: str) -> str:
    httpd = ["sh", "-c", "mkdir -p /www && hostname > /www/index.html && "
             "exec httpd -f -p 8080 -h /www"]
    sleeper = {"containers": [{"name": "c", "image": image, "command": ["sleep", "3600"]}],
               "terminationGracePeriodSeconds": 1}
    objs = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "other"}},
        {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "hello"},
         "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "hello"}},
                  "template": {"metadata": {"labels": {"app": "hello"}}, "spec": {
                      "terminationGracePeriodSeconds": 1,
                      "containers": [{"name": "c", "image": image, "command": httpd,
                                      "ports": [{"name": "http", "containerPort": 8080}]}]}}}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
         "spec": {"selector": {"app": "hello"},
                  "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}},
        {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "nginx"},
         "spec": {"clusterIP": "None", "selector": {"app": "nginx"},
                  "ports": [{"name": "web", "port": 8080}]}},
        {"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "web"},
         "spec": {"serviceName": "nginx", "replicas": 2,
                  "selector": {"matchLabels": {"app": "nginx"}},
                  "template": {"metadata": {"labels": {"app": "nginx"}}, "spec": {
                      "terminationGracePeriodSeconds": 1,
                      "containers": [{"name": "c", "image": image, "command": httpd,
                                      "ports": [{"name": "web", "containerPort": 8080}]}]}}}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client"}, "spec": sleeper},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "client", "namespace": "other"},
         "spec": sleeper},
    ]
    return "\n---\n".join(json.dumps(o) for o in objs)


def ready_count(kc: Kubectl) -> int:
    items = json.loads(kc("get", "pods", "-A", "-o", "json"))["items"]
    return sum(1 for p in items if any(c["type"] == "Ready" and c["status"] == "True"
                                       for c in (p.get("status") or {}).get("conditions") or []))


def in_pod(kc: Kubectl, *cmd: str, ns: str = "default", pod: str = "client",
           check: bool = True) -> subprocess.CompletedProcess:
    return kc.run("-n", ns, "exec", pod, "--", "timeout", "20", *cmd, check=check, timeout=60)


def nslookup(kc: Kubectl, name: str, *opts: str, ns: str = "default") -> str:
    """busybox nslookup's output once it has an answer (the first query may race the
    proxy's rules for a fresh Service)."""
    def attempt() -> str:
        # busybox exits 1 when any search-path candidate was NXDOMAIN: read the output
        out = in_pod(kc, "nslookup", *opts, name, ns=ns, check=False).stdout
        found = "Name:" in out and "Address" in out.split("Name:", 1)[1]
        return out if found or "service =" in out else ""
    return wait_for(f"nslookup {' '.join(opts)} {name}", attempt, 60)


def pod_ip(kc: Kubectl, name: str) -> str:
    return kc("get", "pod", name, "-o", "jsonpath={.status.podIP}")


def test_service_name_resolves_in_a_pod_and_reaches_it(env: dict) -> None:
    kc = env["kubectl"]
    ip = kc("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
    out = nslookup(kc, f"web.default.svc.{D}")
    assert f"Server:\t\t{CLUSTER_DNS}" in out or CLUSTER_DNS in out.splitlines()[0]
    assert f"Address: {ip}" in out
    hello = kc("get", "pods", "-l", "app=hello", "-o", "jsonpath={.items[0].metadata.name}")
    page = wait_for("wget by name", lambda: in_pod(
        kc, "wget", "-q", "-O", "-", f"http://web.default.svc.{D}/", check=False).stdout, 60)
    assert page.strip() == hello


def test_statefulset_pod_names_and_srv(env: dict) -> None:
    kc = env["kubectl"]
    ips = {n: pod_ip(kc, n) for n in ("web-0", "web-1")}
    out = nslookup(kc, f"web-0.nginx.default.svc.{D}")
    assert f"Address: {ips['web-0']}" in out and ips["web-1"] not in out
    out = nslookup(kc, f"nginx.default.svc.{D}")
    assert all(f"Address: {ip}" in out for ip in ips.values())
    out = nslookup(kc, f"_web._tcp.nginx.default.svc.{D}", "-type=srv")
    for i in (0, 1):
        assert f"8080 web-{i}.nginx.default.svc.{D}" in out
    page = wait_for("wget web-1 by its name", lambda: in_pod(
        kc, "wget", "-q", "-O", "-", f"http://web-1.nginx.default.svc.{D}:8080/",
        check=False).stdout, 60)
    assert page.strip() == "web-1"


def test_search_path_and_upstream(env: dict) -> None:
    kc = env["kubectl"]
    ip = kc("get", "svc", "web", "-o", "jsonpath={.spec.clusterIP}")
    # a bare name goes through the search path: <ns>.svc.cluster.local first
    out = nslookup(kc, "web")
    assert f"Name:\tweb.default.svc.{D}\nAddress: {ip}" in out
    # from namespace "other", the libc resolver finds web.default via svc.cluster.local
    hello = kc("get", "pods", "-l", "app=hello", "-o", "jsonpath={.items[0].metadata.name}")
    page = wait_for("wget web.default from another namespace", lambda: in_pod(
        kc, "wget", "-q", "-O", "-", "http://web.default/", ns="other", check=False).stdout, 60)
    assert page.strip() == hello
    out = nslookup(kc, "example.test.")
    assert "Address: 192.0.2.1" in out
    assert any(q[1] == "example.test." for q in env["upstream"].fake.queries)
    missing = in_pod(kc, "nslookup", f"nothere.default.svc.{D}", check=False)
    assert "NXDOMAIN" in missing.stdout + missing.stderr


def resolv_conf(env: dict, name: str, **spec) -> str:
    """/etc/resolv.conf of a pod with this spec (it prints it and exits)."""
    kc = env["kubectl"]
    body = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                     "containers": [{"name": "c", "image": env["image"],
                                     "command": ["cat", "/etc/resolv.conf"]}], **spec}}
    kc("apply", "-f", "-", input=json.dumps(body))
    wait_for(f"{name} to finish", lambda: kc(
        "get", "pod", name, "-o", "jsonpath={.status.phase}") == "Succeeded", 90)
    out = kc("logs", name)
    kc("delete", "pod", name, "--wait=false")
    return out


def lines(text: str, key: str) -> list[str]:
    return [ln.split(None, 1)[1] for ln in text.splitlines() if ln.startswith(key + " ")]


def test_resolv_conf_per_dns_policy(env: dict) -> None:
    cluster_first = resolv_conf(env, "dns-clusterfirst")
    assert lines(cluster_first, "nameserver") == [CLUSTER_DNS]
    assert lines(cluster_first, "search")[0].startswith(
        f"default.svc.{D} svc.{D} {D}")
    assert lines(cluster_first, "options") == ["ndots:5"]

    with open("/etc/resolv.conf") as f:
        host_servers = lines(f.read(), "nameserver")[:3]
    default = resolv_conf(env, "dns-default", dnsPolicy="Default")
    assert lines(default, "nameserver") == host_servers

    none = resolv_conf(env, "dns-none", dnsPolicy="None", dnsConfig={
        "nameservers": ["192.0.2.53"], "searches": ["my.dns.search.suffix"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]})
    assert lines(none, "nameserver") == ["192.0.2.53"]
    assert lines(none, "search") == ["my.dns.search.suffix"]
    assert lines(none, "options") == ["ndots:2 edns0"]

    host_net = resolv_conf(env, "dns-hostnet", hostNetwork=True,
                           dnsPolicy="ClusterFirstWithHostNet")
    assert lines(host_net, "nameserver") == [CLUSTER_DNS]
    host_plain = resolv_conf(env, "dns-hostnet-plain", hostNetwork=True)
    assert lines(host_plain, "nameserver") == host_servers
