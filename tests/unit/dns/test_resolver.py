"""Answers as a client sees them: rcodes, sections, TTLs, forwarding to a fake upstream
on loopback, truncation, the response cache."""
from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest

from pybernetes.dns.fake_upstream import FakeUpstream
from pybernetes.dns.forward import Forwarder, parse_upstream
from pybernetes.dns.resolver import Resolver
from pybernetes.dns.zone import Zone
from tests.unit.dns.objects import endpoint, endpoint_slice, external, headless, service

UPSTREAM = {("example.test.", "A"): ["192.0.2.1"],
            ("db.example.test.", "A"): ["192.0.2.7"],
            ("big.example.test.", "TXT"): [f'"{i}{"x" * 200}"' for i in range(10)]}


@pytest.fixture
async def upstream():
    up = await FakeUpstream(UPSTREAM).start()
    yield up
    await up.stop()


@pytest.fixture
async def resolver(upstream):
    zone = Zone("cluster.local", dns_ips=["10.43.0.10"])
    zone.set_namespaces(["default", "kube-system"])
    zone.set_service("default/web", service("web"))
    zone.set_service("default/nginx", headless("nginx", ports=[
        {"name": "web", "port": 80, "protocol": "TCP"}]), [endpoint_slice("nginx", [
            endpoint("10.42.0.5", hostname="web-0"), endpoint("10.42.0.6", hostname="web-1")],
            ports=[{"name": "web", "port": 80, "protocol": "TCP"}])])
    zone.set_service("default/empty", headless("empty"))
    zone.set_service("default/ext", external("ext", "db.example.test"))
    zone.set_service("default/alias", external("alias", "web.default.svc.cluster.local"))
    fwd = Forwarder([("127.0.0.1", upstream.port)], timeout=2)
    yield Resolver(zone, fwd)
    fwd.close()


async def ask(resolver: Resolver, name: str, rtype: str = "A", tcp: bool = False,
              **kw) -> dns.message.Message:
    q = dns.message.make_query(name, rtype, **kw)
    return dns.message.from_wire(await resolver.handle(q.to_wire(), tcp))


def rrs(msg: dns.message.Message, section: str = "answer") -> list[str]:
    return sorted(f"{rr.name} {rr.ttl} {dns.rdatatype.to_text(rr.rdtype)} {rd}"
                  for rr in getattr(msg, section) for rd in rr)


async def test_cluster_ip_a_record(resolver):
    r = await ask(resolver, "web.default.svc.cluster.local")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert rrs(r) == ["web.default.svc.cluster.local. 5 A 10.43.0.20"]


async def test_nodata_versus_nxdomain(resolver):
    nodata = await ask(resolver, "web.default.svc.cluster.local", "AAAA")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    soa = nodata.authority[0]
    assert soa.name.to_text() == "cluster.local." and soa.ttl == 5
    assert soa[0].mname.to_text() == "ns.dns.cluster.local." and soa[0].minimum == 5
    nx = await ask(resolver, "nope.default.svc.cluster.local")
    assert nx.rcode() == dns.rcode.NXDOMAIN and nx.authority[0].rdtype == dns.rdatatype.SOA
    # a namespace is an empty non-terminal: NODATA; an unknown one NXDOMAIN
    assert (await ask(resolver, "default.svc.cluster.local")).rcode() == dns.rcode.NOERROR
    assert (await ask(resolver, "nons.svc.cluster.local")).rcode() == dns.rcode.NXDOMAIN
    # a headless service without ready endpoints has no records: NXDOMAIN, as CoreDNS
    assert (await ask(resolver, "empty.default.svc.cluster.local")).rcode() == \
        dns.rcode.NXDOMAIN


async def test_names_are_case_insensitive_and_the_question_case_is_kept(resolver):
    for _ in range(2):  # the second answer comes from the cache
        r = await ask(resolver, "WeB.Default.SVC.cluster.LOCAL")
        assert r.question[0].name.to_text() == "WeB.Default.SVC.cluster.LOCAL."
        assert [a.name.to_text() for a in r.answer] == ["WeB.Default.SVC.cluster.LOCAL."]
        assert r.answer[0][0].to_text() == "10.43.0.20"
    assert resolver.stats.cache_hits >= 1


async def test_headless_and_per_pod_names(resolver):
    r = await ask(resolver, "nginx.default.svc.cluster.local")
    assert sorted(rd.to_text() for rd in r.answer[0]) == ["10.42.0.5", "10.42.0.6"]
    r = await ask(resolver, "web-0.nginx.default.svc.cluster.local")
    assert rrs(r) == ["web-0.nginx.default.svc.cluster.local. 5 A 10.42.0.5"]


async def test_srv_with_targets_in_additional(resolver):
    r = await ask(resolver, "_web._tcp.nginx.default.svc.cluster.local", "SRV")
    base = "nginx.default.svc.cluster.local."
    assert rrs(r) == [f"_web._tcp.{base} 5 SRV 0 50 80 web-0.{base}",
                      f"_web._tcp.{base} 5 SRV 0 50 80 web-1.{base}"]
    assert rrs(r, "additional") == [f"web-0.{base} 5 A 10.42.0.5", f"web-1.{base} 5 A 10.42.0.6"]
    r = await ask(resolver, "_http._tcp.web.default.svc.cluster.local", "SRV")
    assert rrs(r) == ["_http._tcp.web.default.svc.cluster.local. 5 SRV 0 100 80 "
                      "web.default.svc.cluster.local."]
    assert (await ask(resolver, "_nope._tcp.web.default.svc.cluster.local", "SRV")).rcode() \
        == dns.rcode.NXDOMAIN


async def test_ptr_for_service_and_endpoint_ips(resolver):
    r = await ask(resolver, dns.reversename.from_address("10.43.0.20"), "PTR")
    assert [rd.to_text() for rd in r.answer[0]] == ["web.default.svc.cluster.local."]
    r = await ask(resolver, dns.reversename.from_address("10.42.0.6"), "PTR")
    assert [rd.to_text() for rd in r.answer[0]] == ["web-1.nginx.default.svc.cluster.local."]
    # an address we do not know goes upstream (which has nothing either)
    r = await ask(resolver, dns.reversename.from_address("192.0.2.99"), "PTR")
    assert r.rcode() == dns.rcode.NXDOMAIN and not (r.flags & dns.flags.AA)


async def test_external_name_cname_chased_upstream_and_in_zone(resolver, upstream):
    r = await ask(resolver, "ext.default.svc.cluster.local")
    assert rrs(r) == ["db.example.test. 60 A 192.0.2.7",
                      "ext.default.svc.cluster.local. 5 CNAME db.example.test."]
    r = await ask(resolver, "alias.default.svc.cluster.local")
    assert rrs(r) == ["alias.default.svc.cluster.local. 5 CNAME web.default.svc.cluster.local.",
                      "web.default.svc.cluster.local. 5 A 10.43.0.20"]
    r = await ask(resolver, "ext.default.svc.cluster.local", "CNAME")
    assert rrs(r) == ["ext.default.svc.cluster.local. 5 CNAME db.example.test."]
    r = await ask(resolver, "ext.default.svc.cluster.local", "SRV")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer


async def test_pod_names(resolver):
    r = await ask(resolver, "10-42-3-4.default.pod.cluster.local")
    assert rrs(r) == ["10-42-3-4.default.pod.cluster.local. 5 A 10.42.3.4"]
    assert (await ask(resolver, "10-42-3-4.nons.pod.cluster.local")).rcode() == \
        dns.rcode.NXDOMAIN
    assert (await ask(resolver, "web.default.pod.cluster.local")).rcode() == dns.rcode.NXDOMAIN


async def test_zone_apex_soa_ns_and_version(resolver):
    r = await ask(resolver, "cluster.local", "SOA")
    assert r.answer[0][0].rname.to_text() == "hostmaster.cluster.local."
    r = await ask(resolver, "cluster.local", "NS")
    assert rrs(r) == ["cluster.local. 5 NS ns.dns.cluster.local."]
    assert rrs(r, "additional") == ["ns.dns.cluster.local. 5 A 10.43.0.10"]
    r = await ask(resolver, "dns-version.cluster.local", "TXT")
    assert rrs(r) == ['dns-version.cluster.local. 28800 TXT "1.1.0"']
    assert (await ask(resolver, "cluster.local", "AXFR", tcp=True)).rcode() == dns.rcode.REFUSED


async def test_forwarded_names_udp_then_truncated_then_tcp(resolver, upstream):
    r = await ask(resolver, "example.test")
    assert rrs(r) == ["example.test. 60 A 192.0.2.1"] and r.id
    assert (await ask(resolver, "missing.test")).rcode() == dns.rcode.NXDOMAIN
    big = await ask(resolver, "big.example.test", "TXT")
    assert big.flags & dns.flags.TC and not big.answer  # the client must use TCP
    big = await ask(resolver, "big.example.test", "TXT", tcp=True)
    assert len(big.answer[0]) == 10
    assert ("tcp", "big.example.test.", "TXT") in upstream.queries


async def test_big_zone_answer_truncates_over_udp(resolver):
    eps = [endpoint(f"10.42.{i // 250}.{i % 250 + 1}") for i in range(100)]
    resolver.zone.set_service("default/many", headless("many"),
                              [endpoint_slice("many", eps)])
    r = await ask(resolver, "many.default.svc.cluster.local")
    assert r.flags & dns.flags.TC and not r.answer
    r = await ask(resolver, "many.default.svc.cluster.local", use_edns=0, payload=4096)
    assert len(r.answer[0]) == 100
    r = await ask(resolver, "many.default.svc.cluster.local", tcp=True)
    assert len(r.answer[0]) == 100


async def test_cache_follows_zone_changes(resolver):
    name = "web.default.svc.cluster.local"
    assert (await ask(resolver, name)).answer[0][0].to_text() == "10.43.0.20"
    resolver.zone.set_service("default/web", service("web", cluster_ip="10.43.0.99"))
    assert (await ask(resolver, name)).answer[0][0].to_text() == "10.43.0.99"


async def test_no_upstream_answers_servfail():
    zone = Zone("cluster.local")
    fwd = Forwarder([], timeout=0.2)
    r = await ask(Resolver(zone, fwd), "example.test")
    assert r.rcode() == dns.rcode.SERVFAIL


async def test_before_sync_unknown_names_are_servfail(upstream):
    res = Resolver(Zone("cluster.local"), Forwarder([]), synced=lambda: False)
    r = await ask(res, "web.default.svc.cluster.local")
    assert r.rcode() == dns.rcode.SERVFAIL


async def test_garbage_gets_formerr_or_nothing(resolver):
    assert await resolver.handle(b"\x12\x34", False) == b""
    reply = await resolver.handle(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07x",
                                  False)
    assert reply[:2] == b"\x12\x34" and reply[3] & 0x0F == dns.rcode.FORMERR


def test_parse_upstream():
    assert parse_upstream("10.0.0.1") == ("10.0.0.1", 53)
    assert parse_upstream("127.0.0.1:5353") == ("127.0.0.1", 5353)
    assert parse_upstream("[::1]:54") == ("::1", 54)
    assert parse_upstream("::1") == ("::1", 53)
    for bad in ("example.com", "1.2.3.4:0", "[::1]x"):
        with pytest.raises(ValueError):
            parse_upstream(bad)


async def test_addresses_take_turns_first_as_loadbalance_does(resolver):
    """Every endpoint of a headless service comes first now and then (the answers
    stay cached; they rotate)."""
    firsts = set()
    for _ in range(6):
        q = dns.message.make_query("nginx.default.svc.cluster.local", "A")
        # raw order: dnspython's reader keeps the wire order
        r = dns.message.from_wire(await resolver.handle(q.to_wire()))
        firsts.add(list(r.answer[0])[0].to_text())
        assert sorted(rd.to_text() for rd in r.answer[0]) == ["10.42.0.5", "10.42.0.6"]
    assert firsts == {"10.42.0.5", "10.42.0.6"}
