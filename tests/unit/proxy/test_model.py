"""The proxy model: Services + EndpointSlices flattened into ServicePorts."""
from __future__ import annotations

from pybernetes.proxy.model import (DEFAULT_AFFINITY_TIMEOUT, Endpoint, service_ports,
                                    targets)


def svc(name: str, ns: str = "default", **spec) -> dict:
    spec.setdefault("clusterIP", "10.43.0.20")
    spec.setdefault("ports", [{"port": 80, "targetPort": 8080, "protocol": "TCP"}])
    status = spec.pop("status", {})
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": name, "namespace": ns}, "spec": spec, "status": status}


def eps(service: str, ports: list[dict], endpoints: list[dict], ns: str = "default",
        name: str = "") -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice", "addressType": "IPv4",
            "metadata": {"name": name or f"{service}-abc", "namespace": ns,
                         "labels": {"kubernetes.io/service-name": service}},
            "ports": ports, "endpoints": endpoints}


def ep(ip: str, node: str = "n1", **cond) -> dict:
    return {"addresses": [ip], "nodeName": node, "conditions": cond}


def test_cluster_ip_service_with_ready_endpoints():
    [sp] = service_ports([svc("web")], [eps("web", [{"name": "", "port": 8080,
                                                      "protocol": "TCP"}],
                                             [ep("10.42.0.5", ready=True),
                                              ep("10.42.0.6", node="n2", ready=True)])])
    assert (sp.namespace, sp.name, sp.port_name, sp.protocol) == ("default", "web", "", "TCP")
    assert sp.cluster_ips == ("10.43.0.20",) and sp.port == 80 and sp.node_port == 0
    assert sp.affinity_timeout == 0 and not sp.external_local and not sp.internal_local
    assert sp.endpoints == (Endpoint("10.42.0.5", 8080, True, True, False, "n1"),
                            Endpoint("10.42.0.6", 8080, True, True, False, "n2"))
    assert sp.key == "default/web:"


def test_named_target_port_is_resolved_per_endpoint_from_its_slice():
    service = svc("web", ports=[{"name": "http", "port": 80, "targetPort": "web"},
                                {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53}])
    slices = [eps("web", [{"name": "http", "port": 8080, "protocol": "TCP"},
                          {"name": "dns", "port": 53, "protocol": "UDP"}],
                  [ep("10.42.0.5", ready=True)], name="web-1"),
              eps("web", [{"name": "http", "port": 9090, "protocol": "TCP"}],
                  [ep("10.42.0.6", ready=True)], name="web-2")]
    dns, http = service_ports([service], slices)
    assert (dns.port_name, dns.protocol) == ("dns", "UDP")
    assert [(e.ip, e.port) for e in dns.endpoints] == [("10.42.0.5", 53)]
    assert [(e.ip, e.port) for e in http.endpoints] == [("10.42.0.5", 8080),
                                                        ("10.42.0.6", 9090)]


def test_conditions_default_as_kube_proxy_reads_them():
    [sp] = service_ports([svc("web")], [eps("web", [{"port": 8080, "protocol": "TCP"}], [
        {"addresses": ["10.42.0.1"]},
        ep("10.42.0.2", ready=False, serving=True, terminating=True),
        ep("10.42.0.3", ready=False, serving=False, terminating=True),
        ep("10.42.0.4", ready=False)])])
    got = {e.ip: (e.ready, e.serving, e.terminating, e.node_name) for e in sp.endpoints}
    assert got == {"10.42.0.1": (True, True, False, ""),
                   "10.42.0.2": (False, True, True, "n1"),
                   "10.42.0.3": (False, False, True, "n1"),
                   "10.42.0.4": (False, True, False, "n1")}


def test_duplicate_endpoint_across_slices_counts_once_and_other_services_slices_ignored():
    port = [{"name": "", "port": 8080, "protocol": "TCP"}]
    slices = [eps("web", port, [ep("10.42.0.5", ready=True)], name="a"),
              eps("web", port, [ep("10.42.0.5", ready=True)], name="b"),
              eps("web", port, [ep("10.42.0.9", ready=True)], ns="other"),
              eps("db", port, [ep("10.42.0.7", ready=True)])]
    [sp] = service_ports([svc("web")], slices)
    assert [e.ip for e in sp.endpoints] == ["10.42.0.5"]


def test_slice_port_must_match_name_and_protocol():
    service = svc("web", ports=[{"port": 53, "protocol": "UDP"}])
    [sp] = service_ports([service], [eps("web", [{"port": 53, "protocol": "TCP"}],
                                         [ep("10.42.0.5", ready=True)])])
    assert sp.endpoints == ()


def test_nodeport_loadbalancer_policies_and_addresses():
    service = svc("lb", type="LoadBalancer", externalTrafficPolicy="Local",
                  internalTrafficPolicy="Local", externalIPs=["192.0.2.10"],
                  ports=[{"port": 80, "targetPort": 80, "nodePort": 30080}],
                  status={"loadBalancer": {"ingress": [{"ip": "192.0.2.1"},
                                                       {"ip": "192.0.2.2", "ipMode": "Proxy"},
                                                       {"hostname": "lb.example"}]}})
    [sp] = service_ports([service], [])
    assert sp.node_port == 30080 and sp.external_ips == ("192.0.2.10",)
    assert sp.load_balancer_ips == ("192.0.2.1",)
    assert sp.external_local and sp.internal_local


def test_external_policy_only_counts_for_externally_reachable_types():
    service = svc("plain", externalTrafficPolicy="Local",
                  ports=[{"port": 80, "nodePort": 30080}],
                  status={"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}})
    [sp] = service_ports([service], [])
    assert not sp.external_local and sp.node_port == 0 and sp.load_balancer_ips == ()


def test_session_affinity_timeout():
    default = svc("a", sessionAffinity="ClientIP")
    custom = svc("b", sessionAffinity="ClientIP",
                 sessionAffinityConfig={"clientIP": {"timeoutSeconds": 60}})
    none = svc("c", sessionAffinity="None")
    a, b, c = service_ports([default, custom, none], [])
    assert (a.affinity_timeout, b.affinity_timeout, c.affinity_timeout) == (
        DEFAULT_AFFINITY_TIMEOUT, 60, 0)
    assert DEFAULT_AFFINITY_TIMEOUT == 10800


def test_headless_and_external_name_services_have_no_ports():
    headless = svc("h", clusterIP="None")
    external = svc("x", type="ExternalName", externalName="example.com", clusterIP="")
    dual = svc("d", clusterIP="10.43.0.7", clusterIPs=["10.43.0.7", "fd00::7"])
    [sp] = service_ports([headless, external, dual], [])
    assert sp.name == "d" and sp.cluster_ips == ("10.43.0.7",)


def test_targets_prefer_ready_then_terminating_serving():
    def sp_with(*endpoints, **kw):
        [sp] = service_ports([svc("web", **kw)], [eps("web", [{"port": 8080,
                                                               "protocol": "TCP"}],
                                                       list(endpoints))])
        return sp
    sp = sp_with(ep("10.42.0.1", ready=True), ep("10.42.0.2", ready=False, serving=True,
                                                 terminating=True))
    assert [e.ip for e in targets(sp, "n1").internal] == ["10.42.0.1"]
    sp = sp_with(ep("10.42.0.2", ready=False, serving=True, terminating=True),
                 ep("10.42.0.3", ready=False, serving=False, terminating=True))
    t = targets(sp, "n1")
    assert t.has_endpoints and [e.ip for e in t.internal] == ["10.42.0.2"]
    sp = sp_with(ep("10.42.0.3", ready=False))
    assert targets(sp, "n1") == targets(sp, "n2")
    assert not targets(sp, "n1").has_endpoints


def test_targets_local_policies():
    sp = service_ports([svc("web", type="NodePort", externalTrafficPolicy="Local",
                            ports=[{"port": 80, "nodePort": 30001}])],
                       [eps("web", [{"port": 80, "protocol": "TCP"}],
                            [ep("10.42.0.1", node="n1", ready=True),
                             ep("10.42.1.1", node="n2", ready=True)])])[0]
    here = targets(sp, "n1")
    assert [e.ip for e in here.internal] == ["10.42.0.1", "10.42.1.1"]
    assert [e.ip for e in here.external] == ["10.42.0.1"]
    elsewhere = targets(sp, "n3")
    assert elsewhere.has_endpoints and elsewhere.external == ()
