"""Zone contents, service by service: what CoreDNS's kubernetes plugin would publish."""
from __future__ import annotations

from pybernetes.dns.zone import (T_A, T_AAAA, T_CNAME, T_SRV, Zone, dashed, pod_label_ip,
                                 ready_endpoints, service_records)
from tests.unit.dns.objects import endpoint, endpoint_slice, external, headless, service

D = "cluster.local"


def texts(recs: dict | None, rdtype: int) -> list[str]:
    return sorted(r.to_text() for r in (recs or {}).get(rdtype, []))


def test_cluster_ip_service_names_and_srv():
    recs = service_records(service("web", ports=[
        {"name": "http", "port": 80, "protocol": "TCP"},
        {"name": "dns", "port": 53, "protocol": "UDP"},
        {"port": 9000, "protocol": "TCP"}]), [], D)
    base = "web.default.svc.cluster.local."
    assert texts(recs.names[base], T_A) == ["10.43.0.20"]
    # one SRV per port at the service name, each weighing 100/3
    assert texts(recs.names[base], T_SRV) == [f"0 33 {p} {base}" for p in (53, 80, 9000)]
    assert texts(recs.names[f"_http._tcp.{base}"], T_SRV) == [f"0 100 80 {base}"]
    assert texts(recs.names[f"_dns._udp.{base}"], T_SRV) == [f"0 100 53 {base}"]
    assert not [n for n in recs.names if n.startswith("_9000")]  # unnamed ports: no SRV name
    assert recs.service_ptrs == {"10.43.0.20": base}


def test_headless_service_lists_ready_endpoints_with_names():
    slices = [endpoint_slice("nginx", [endpoint("10.42.0.5", hostname="web-0"),
                                       endpoint("10.42.0.6", hostname="web-1"),
                                       endpoint("10.42.0.7", ready=False, hostname="web-2"),
                                       endpoint("10.42.0.8", ready=None)],
                             ports=[{"name": "web", "port": 80, "protocol": "TCP"}])]
    recs = service_records(headless("nginx"), slices, D)
    base = "nginx.default.svc.cluster.local."
    # not-ready web-2 is left out; a missing condition counts as ready
    assert texts(recs.names[base], T_A) == ["10.42.0.5", "10.42.0.6", "10.42.0.8"]
    assert texts(recs.names[f"web-0.{base}"], T_A) == ["10.42.0.5"]
    assert texts(recs.names[f"10-42-0-8.{base}"], T_A) == ["10.42.0.8"]
    assert f"web-2.{base}" not in recs.names
    assert texts(recs.names[f"_web._tcp.{base}"], T_SRV) == [
        f"0 33 80 10-42-0-8.{base}", f"0 33 80 web-0.{base}", f"0 33 80 web-1.{base}"]
    assert recs.endpoint_ptrs["10.42.0.5"] == [f"web-0.{base}"]
    assert not recs.service_ptrs


def test_publish_not_ready_addresses_keeps_all_but_terminating():
    slices = [endpoint_slice("db", [endpoint("10.42.1.1", ready=False),
                                    endpoint("10.42.1.2", ready=False, terminating=True)])]
    svc = headless("db", publishNotReadyAddresses=True)
    assert [e.ip for e in ready_endpoints(svc, slices)] == ["10.42.1.1"]
    assert [e.ip for e in ready_endpoints(headless("db"), slices)] == []


def test_external_name_is_a_cname_only():
    recs = service_records(external("ext", "db.example.test"), [], D)
    assert recs.names == {"ext.default.svc.cluster.local.": {
        T_CNAME: recs.names["ext.default.svc.cluster.local."][T_CNAME]}}
    assert texts(recs.names["ext.default.svc.cluster.local."], T_CNAME) == ["db.example.test."]


def test_ipv6_and_dual_stack():
    svc = service("v6", cluster_ip="fd00:43::10")
    svc["spec"]["clusterIPs"] = ["fd00:43::10", "10.43.0.30"]
    recs = service_records(svc, [], D)
    base = "v6.default.svc.cluster.local."
    assert texts(recs.names[base], T_AAAA) == ["fd00:43::10"]
    assert texts(recs.names[base], T_A) == ["10.43.0.30"]
    assert dashed("fd00::") == "fd00--0" and dashed("10.1.2.3") == "10-1-2-3"


def test_pod_labels():
    assert pod_label_ip("10-42-0-5") == "10.42.0.5"
    assert pod_label_ip("fd00--1") == "fd00::1"
    assert pod_label_ip("web") is None and pod_label_ip("300-1-1-1") is None


def test_zone_updates_one_service_at_a_time_and_bumps_generation():
    z = Zone(D, dns_ips=["10.43.0.10"])
    z.set_namespaces(["default", "kube-system"])
    g = z.generation
    z.set_service("default/web", service("web"))
    assert z.generation == g + 1
    z.set_service("default/web", service("web"))  # unchanged: no new generation
    assert z.generation == g + 1
    assert texts(z.records("web.default.svc.cluster.local."), T_A) == ["10.43.0.20"]
    z.set_service("default/web", service("web", cluster_ip="10.43.0.21"))
    assert texts(z.records("web.default.svc.cluster.local."), T_A) == ["10.43.0.21"]
    assert z.reverse("10.43.0.21") == ["web.default.svc.cluster.local."]
    assert z.reverse("10.43.0.20") == []
    z.set_service("default/web", None)
    assert z.records("web.default.svc.cluster.local.") is None
    assert z.reverse("10.43.0.21") == []


def test_structural_names():
    z = Zone(D, dns_ips=["10.43.0.10"])
    z.set_namespaces(["default"])
    assert z.records("svc.cluster.local.") == {}
    assert z.records("default.svc.cluster.local.") == {}
    assert z.records("nope.svc.cluster.local.") is None          # no such namespace
    assert z.records("default.pod.cluster.local.") == {}
    assert texts(z.records("10-42-0-9.default.pod.cluster.local."), T_A) == ["10.42.0.9"]
    assert z.records("10-42-0-9.nope.pod.cluster.local.") is None
    assert z.records("x.default.svc.cluster.local.") is None
    assert z.records("foo.cluster.local.") is None
    assert texts(z.records("ns.dns.cluster.local."), T_A) == ["10.43.0.10"]
