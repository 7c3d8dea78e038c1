"""nftables rendering: what the rules say, that nft accepts them, and that applying
the difference from one state to the next leaves exactly what a fresh apply would."""
from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from typing import Iterator

import pytest

from pybernetes.proxy.model import service_ports
from pybernetes.proxy.nftables import Config, State, chain_names, render, script
from tests.unit.proxy.test_model import ep, eps, svc

CFG = Config(table="pybt", node_name="n1", cluster_cidr="10.42.0.0/16",
             service_cidr="10.43.0.0/16")
PORT = [{"name": "", "port": 8080, "protocol": "TCP"}]


def state_of(services: list[dict], slices: list[dict], cfg: Config = CFG) -> State:
    return render(service_ports(services, slices), cfg)


def only_port(services: list[dict], slices: list[dict]):
    [sp] = service_ports(services, slices)
    return sp


def test_cluster_ip_dispatch_spreads_over_ready_endpoints():
    services = [svc("web")]
    slices = [eps("web", PORT, [ep("10.42.0.5", ready=True), ep("10.42.0.6", ready=True),
                                ep("10.42.0.7", ready=True), ep("10.42.0.8", ready=False)])]
    st = state_of(services, slices)
    svc_chain, _, _ = chain_names(only_port(services, slices))
    assert st.elements["service-ips"] == {"10.43.0.20 . tcp . 80": f"goto {svc_chain}"}
    rules = st.chains[svc_chain]
    assert rules[0] == ("ip daddr 10.43.0.20 tcp dport 80 ip saddr != 10.42.0.0/16 "
                        "jump mark-for-masquerade")
    assert rules[-1].startswith("numgen random mod 3 vmap { 0 : goto ep-")
    dnats = sorted(r for rules in st.chains.values() for r in rules if "dnat to" in r)
    assert dnats == [f"meta l4proto tcp dnat to 10.42.0.{i}:8080" for i in (5, 6, 7)]
    assert st.elements["cluster-ips"] == {"10.43.0.20": None}
    assert st.elements["no-endpoint-services"] == {} and st.affinity == {}


def test_session_affinity_uses_a_timed_set_per_endpoint():
    services = [svc("web", sessionAffinity="ClientIP",
                    sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})]
    slices = [eps("web", PORT, [ep("10.42.0.5", ready=True), ep("10.42.0.6", ready=True)])]
    st = state_of(services, slices)
    assert sorted(st.affinity.values()) == [60, 60]
    svc_chain, _, _ = chain_names(only_port(services, slices))
    lookups = [r for r in st.chains[svc_chain] if r.startswith("ip saddr @aff-")]
    assert len(lookups) == 2
    updates = [r for rules in st.chains.values() for r in rules if r.startswith("update @")]
    assert sorted(u.split()[1][1:] for u in updates) == sorted(st.affinity)


def test_no_endpoints_rejects_every_address_and_the_node_port():
    services = [svc("web", type="LoadBalancer", externalIPs=["192.0.2.9"],
                    ports=[{"port": 80, "nodePort": 30080}],
                    status={"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}})]
    st = state_of(services, [eps("web", PORT, [ep("10.42.0.5", ready=False)])])
    assert st.elements["no-endpoint-services"] == {
        f"{ip} . tcp . 80": "goto reject-chain" for ip in ("10.43.0.20", "192.0.2.9",
                                                          "192.0.2.1")}
    assert st.elements["no-endpoint-nodeports"] == {"tcp . 30080": "goto reject-chain"}
    assert st.elements["service-ips"] == {} and st.elements["service-nodeports"] == {}
    assert st.chains["reject-chain"] == ("reject",)


def test_external_traffic_policy_local():
    services = [svc("web", type="NodePort", externalTrafficPolicy="Local",
                    ports=[{"port": 80, "nodePort": 30080}])]
    slices = [eps("web", PORT, [ep("10.42.0.5", node="n1", ready=True),
                                ep("10.42.1.5", node="n2", ready=True)])]
    st = state_of(services, slices)
    svc_chain, svl, ext = chain_names(only_port(services, slices))
    assert st.elements["service-nodeports"] == {"tcp . 30080": f"goto {ext}"}
    assert st.chains[ext] == (f"ip saddr 10.42.0.0/16 goto {svc_chain}",
                              "fib saddr type local jump mark-for-masquerade",
                              f"fib saddr type local goto {svc_chain}", f"goto {svl}")
    assert st.chains[svl][-1].startswith("goto ep-") and "10.42.0.5" in st.chains[svl][-1]
    # cluster policy: masquerade, then any endpoint
    cluster = state_of([svc("web", type="NodePort", ports=[{"port": 80, "nodePort": 30080}])],
                       slices)
    assert cluster.chains[ext] == ("jump mark-for-masquerade", f"goto {svc_chain}")
    # Local with no endpoint on this node: external traffic is dropped
    away = state_of(services, slices, Config(**{**CFG.__dict__, "node_name": "n3"}))
    assert away.chains[svl] == ("drop",)


def test_internal_traffic_policy_local_sends_cluster_ip_to_the_local_chain():
    services = [svc("web", internalTrafficPolicy="Local")]
    slices = [eps("web", PORT, [ep("10.42.0.5", node="n1", ready=True),
                                ep("10.42.1.5", node="n2", ready=True)])]
    st = state_of(services, slices)
    _, svl, _ = chain_names(only_port(services, slices))
    assert st.elements["service-ips"] == {"10.43.0.20 . tcp . 80": f"goto {svl}"}
    assert st.chains[svl][0].endswith("jump mark-for-masquerade")


def test_endpoint_chains_masquerade_hairpin_traffic():
    st = state_of([svc("web")], [eps("web", PORT, [ep("10.42.0.5", ready=True)])])
    [ep_chain] = [n for n in st.chains if n.startswith("ep-")]
    assert st.chains[ep_chain] == ("ip saddr 10.42.0.5 jump mark-for-masquerade",
                                   "meta l4proto tcp dnat to 10.42.0.5:8080")


def test_fresh_script_rebuilds_the_table_and_an_unchanged_state_applies_nothing_new():
    st = state_of([svc("web")], [eps("web", PORT, [ep("10.42.0.5", ready=True)])])
    fresh = script("pybt", None, st).splitlines()
    assert fresh[:3] == ["add table ip pybt", "delete table ip pybt", "add table ip pybt"]
    assert script("pybt", st, st).splitlines() == ["add table ip pybt"]


# -- against the kernel, in a throwaway network namespace --------------------------------------

needs_nft = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("nft"),
                               reason="needs root and nft")


@pytest.fixture
def netns() -> Iterator[str]:
    name = f"pybt{os.getpid() % 100000}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=True)
        assert name not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                          text=True).stdout.split()


def nft(ns: str, text: str, *flags: str) -> None:
    p = subprocess.run(["ip", "netns", "exec", ns, "nft", *flags, "-f", "-"], input=text,
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr[-3000:]


def listing(ns: str) -> dict:
    """The table as comparable data: chains with their rules, map and set elements."""
    out = subprocess.run(["ip", "netns", "exec", ns, "nft", "-j", "list", "table", "ip",
                          "pybt"], capture_output=True, text=True, check=True).stdout
    got: dict = {"chains": {}, "rules": {}, "sets": {}}
    for item in json.loads(out)["nftables"]:
        if "chain" in item:
            got["chains"][item["chain"]["name"]] = item["chain"].get("hook")
        elif "rule" in item:
            got["rules"].setdefault(item["rule"]["chain"], []).append(
                json.dumps(item["rule"]["expr"], sort_keys=True))
        elif "set" in item or "map" in item:
            s = item.get("set") or item.get("map")
            elems = s.get("elem", []) if not s["name"].startswith("aff-") else []
            got["sets"][s["name"]] = sorted(json.dumps(e, sort_keys=True) for e in elems)
    return got


def random_world(rng: random.Random) -> tuple[list[dict], list[dict]]:
    services, slices = [], []
    for i in range(rng.randint(0, 8)):
        name = f"s{rng.randint(0, 9)}"
        if any(s["metadata"]["name"] == name for s in services):
            continue
        kind = rng.choice(["ClusterIP", "NodePort", "LoadBalancer"])
        spec = {"type": kind, "clusterIP": f"10.43.0.{10 + int(name[1:])}",
                "ports": [{"port": 80, "nodePort": 30000 + int(name[1:])}]}
        if rng.random() < 0.3:
            spec["sessionAffinity"] = "ClientIP"
        if kind != "ClusterIP" and rng.random() < 0.4:
            spec["externalTrafficPolicy"] = "Local"
        if rng.random() < 0.2:
            spec["internalTrafficPolicy"] = "Local"
        services.append(svc(name, **spec))
        endpoints = [ep(f"10.42.{rng.randint(0, 1)}.{rng.randint(2, 9)}",
                        node=rng.choice(["n1", "n2"]), ready=rng.random() < 0.8)
                     for _ in range(rng.randint(0, 4))]
        slices.append(eps(name, PORT, endpoints))
    return services, slices


@needs_nft
def test_the_kernel_accepts_a_full_script(netns):
    services = [svc("web", type="LoadBalancer", externalTrafficPolicy="Local",
                    sessionAffinity="ClientIP", externalIPs=["192.0.2.9"],
                    ports=[{"port": 80, "nodePort": 30080}],
                    status={"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}),
                svc("dns", clusterIP="10.43.0.10",
                    ports=[{"port": 53, "protocol": "UDP", "name": "dns"}]),
                svc("none", clusterIP="10.43.0.11", type="NodePort",
                    ports=[{"port": 81, "nodePort": 30081}])]
    slices = [eps("web", PORT, [ep("10.42.0.5", ready=True), ep("10.42.1.5", node="n2",
                                                                ready=True)]),
              eps("dns", [{"name": "dns", "port": 53, "protocol": "UDP"}],
                  [ep("10.42.0.9", ready=True)])]
    nft(netns, script("pybt", None, state_of(services, slices)), "-c")


@needs_nft
def test_applying_differences_ends_where_a_fresh_apply_does(netns):
    rng = random.Random(5)
    applied = None
    for _ in range(10):
        new = state_of(*random_world(rng))
        nft(netns, script("pybt", applied, new, full=rng.random() < 0.3))
        applied = new
        incremental = listing(netns)
        nft(netns, script("pybt", None, new))
        assert listing(netns) == incremental
