"""Services and endpoints: defaults, syntactic validation, printer cells."""
from pybernetes.api.core.endpoints import EndpointsStrategy
from pybernetes.api.core.services import ServiceStrategy

from core_flow import create, messages, update

S = ServiceStrategy()
MINIMAL = {"metadata": {"name": "web"},
           "spec": {"selector": {"app": "web"}, "ports": [{"port": 80}]}}


def test_minimal_service_defaults():
    svc, errs = create(S, MINIMAL)
    assert errs == []
    assert svc["spec"] == {"selector": {"app": "web"},
                           "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}],
                           "type": "ClusterIP", "sessionAffinity": "None",
                           "internalTrafficPolicy": "Cluster", "ipFamilyPolicy": "SingleStack",
                           "ipFamilies": ["IPv4"]}
    assert svc["status"] == {"loadBalancer": {}}


def test_nodeport_and_loadbalancer_defaults():
    lb, _ = create(S, {"metadata": {"name": "lb"}, "spec": {
        "type": "LoadBalancer", "sessionAffinity": "ClientIP",
        "ports": [{"port": 443, "targetPort": "https"}]}})
    s = lb["spec"]
    assert s["externalTrafficPolicy"] == "Cluster"
    assert s["allocateLoadBalancerNodePorts"] is True
    assert s["sessionAffinityConfig"] == {"clientIP": {"timeoutSeconds": 10800}}
    assert s["ports"][0]["targetPort"] == "https"
    ext, _ = create(S, {"metadata": {"name": "x"}, "spec": {
        "type": "ExternalName", "externalName": "example.com"}})
    assert "ipFamilies" not in ext["spec"] and "internalTrafficPolicy" not in ext["spec"]


def test_validation_messages():
    _, errs = create(S, {"metadata": {"name": "bad"}, "spec": {
        "type": "ClusterIP", "clusterIP": "10.43.0.300", "ports": [
            {"port": 80, "nodePort": 30080, "name": "http"},
            {"port": 0, "protocol": "HTTP", "name": "http"},
            {"port": 81, "targetPort": "Not_A_Name"}]}})
    msgs = messages(errs)
    assert ("spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"
            in msgs)
    assert 'spec.ports[1].name: Duplicate value: "http"' in msgs
    assert "spec.ports[1].port: Invalid value: 0: must be between 1 and 65535, inclusive" in msgs
    assert ('spec.ports[1].protocol: Unsupported value: "HTTP": supported values: "SCTP", '
            '"TCP", "UDP"') in msgs
    assert "spec.ports[2].name: Required value" in msgs
    assert any(m.startswith('spec.ports[2].targetPort: Invalid value: "Not_A_Name"') for m in msgs)
    assert ('spec.clusterIPs[0]: Invalid value: "10.43.0.300": must be a valid IP address, '
            '(e.g. 10.9.8.7 or 2001:db8::ffff)') in msgs
    _, errs = create(S, {"metadata": {"name": "np"}, "spec": {"type": "Bogus"}})
    assert messages(errs)[0].startswith('spec.type: Unsupported value: "Bogus"')
    assert "spec.ports: Required value" in messages(errs)


def test_headless_service_needs_no_ports_and_name_is_dns1035():
    _, errs = create(S, {"metadata": {"name": "h"}, "spec": {"clusterIP": "None"}})
    assert errs == []
    assert S.name_validator("1abc") and not S.name_validator("abc-1")


def test_cluster_ip_may_not_change():
    old, _ = create(S, MINIMAL)
    old["spec"]["clusterIP"], old["spec"]["clusterIPs"] = "10.43.0.10", ["10.43.0.10"]
    same = {"metadata": dict(old["metadata"]), "spec": dict(MINIMAL["spec"])}
    new, errs = update(S, same, old)  # omitting the IP keeps it
    assert errs == [] and new["spec"]["clusterIP"] == "10.43.0.10"
    moved = {"metadata": dict(old["metadata"]),
             "spec": {**MINIMAL["spec"], "clusterIP": "10.43.0.11", "clusterIPs": ["10.43.0.11"]}}
    assert messages(update(S, moved, old)[1]) == [
        'spec.clusterIPs[0]: Invalid value: []string{"10.43.0.11"}: may not change once set']


def test_service_table_rows():
    svc, _ = create(S, MINIMAL)
    svc["spec"]["clusterIP"] = "10.43.0.10"
    cells = S.table_row(svc)
    assert cells[:5] == ["web", "ClusterIP", "10.43.0.10", "<none>", "80/TCP"]
    assert cells[6] == "app=web"
    lb = {"metadata": {"name": "lb"}, "spec": {
        "type": "LoadBalancer", "clusterIP": "10.43.0.2",
        "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                  {"port": 53, "nodePort": 30053, "protocol": "UDP"}]},
        "status": {"loadBalancer": {}}}
    assert S.table_row(lb)[3:5] == ["<pending>", "80:30080/TCP,53:30053/UDP"]
    lb["status"]["loadBalancer"]["ingress"] = [{"ip": "192.0.2.9"}, {"hostname": "lb.example"},
                                               {"ip": "192.0.2.1"}]
    lb["spec"]["externalIPs"] = ["198.51.100.1"]
    assert S.table_row(lb)[3] == "192.0.2.1,192.0.2.9,lb.example,198.51.100.1"
    headless = {"metadata": {"name": "h"}, "spec": {"type": "ClusterIP", "clusterIP": "None"}}
    assert S.table_row(headless)[2:5] == ["None", "<none>", ""]
    assert [c.name for c in S.columns] == ["Name", "Type", "Cluster-IP", "External-IP",
                                           "Port(s)", "Age", "Selector"]
    assert S.columns[-1].priority == 1


def test_endpoints_cell_and_validation():
    e = EndpointsStrategy()
    ep, errs = create(e, {"metadata": {"name": "web"}, "subsets": [{
        "addresses": [{"ip": f"10.42.0.{i}"} for i in range(1, 5)],
        "ports": [{"port": 8080}]}]})
    assert errs == [] and ep["subsets"][0]["ports"][0]["protocol"] == "TCP"
    assert e.table_row(ep)[1] == "10.42.0.1:8080,10.42.0.2:8080,10.42.0.3:8080 + 1 more..."
    assert e.table_row({"metadata": {"name": "x"}})[1] == "<none>"
    _, errs = create(e, {"metadata": {"name": "b"}, "subsets": [{
        "addresses": [{"ip": "nope"}], "ports": [{"port": 1}, {"port": 2}]}]})
    msgs = messages(errs)
    assert msgs[0].startswith('subsets[0].addresses[0].ip: Invalid value: "nope"')
    assert "subsets[0].ports[0].name: Required value" in msgs
