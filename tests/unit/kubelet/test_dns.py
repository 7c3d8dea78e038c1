"""resolv.conf and /etc/hosts for a pod, per dnsPolicy, as the kubelet writes them."""
from pybernetes.kubelet.dns import (HostDNS, dns_kind, etc_hosts, parse_resolv_conf, pod_dns,
                                    read_host_dns, resolv_conf, sandbox_hostname)

HOST = parse_resolv_conf("""# written by the host
nameserver 192.168.1.1
nameserver 192.168.1.2
search old.example
search corp.example. lab.example
options timeout:2 rotate
""")


def pod(**spec) -> dict:
    return {"metadata": {"name": "web-0", "namespace": "shop", "uid": "u1"},
            "spec": {"containers": [{"name": "c"}], **spec}}


def test_host_resolv_conf_parsing():
    assert HOST == HostDNS(["192.168.1.1", "192.168.1.2"], ["corp.example", "lab.example"],
                           ["timeout:2", "rotate"])


def test_cluster_first():
    cfg, warnings = pod_dns(pod(), cluster_dns=["10.43.0.10"], host=HOST)
    assert warnings == []
    assert resolv_conf(cfg) == (
        "search shop.svc.cluster.local svc.cluster.local cluster.local corp.example lab.example\n"
        "nameserver 10.43.0.10\n"
        "options ndots:5\n")


def test_default_and_host_network_fall_back_to_the_node():
    for p in (pod(dnsPolicy="Default"), pod(hostNetwork=True),
              pod(hostNetwork=True, dnsPolicy="ClusterFirst")):
        cfg, _ = pod_dns(p, cluster_dns=["10.43.0.10"], host=HOST)
        assert cfg.servers == ["192.168.1.1", "192.168.1.2"]
        assert cfg.searches == ["corp.example", "lab.example"]
    cfg, _ = pod_dns(pod(hostNetwork=True, dnsPolicy="ClusterFirstWithHostNet"),
                     cluster_dns=["10.43.0.10"], host=HOST)
    assert cfg.servers == ["10.43.0.10"]
    assert dns_kind({"dnsPolicy": "None"}) == "none"


def test_none_takes_only_dns_config_and_merges_options():
    p = pod(dnsPolicy="None", dnsConfig={
        "nameservers": ["1.2.3.4"], "searches": ["a.example"],
        "options": [{"name": "ndots", "value": "2"}, {"name": "edns0"}]})
    cfg, _ = pod_dns(p, cluster_dns=["10.43.0.10"], host=HOST)
    assert resolv_conf(cfg) == ("search a.example\nnameserver 1.2.3.4\n"
                                "options ndots:2 edns0\n")
    p = pod(dnsConfig={"options": [{"name": "ndots", "value": "1"}],
                       "nameservers": ["10.43.0.10", "9.9.9.9"]})
    cfg, _ = pod_dns(p, cluster_dns=["10.43.0.10"], host=HOST)
    assert cfg.options == ["ndots:1"] and cfg.servers == ["10.43.0.10", "9.9.9.9"]


def test_missing_cluster_dns_warns_and_uses_the_node():
    cfg, warnings = pod_dns(pod(), cluster_dns=[], host=HOST)
    assert cfg.servers == HOST.servers
    assert warnings[0].reason == "MissingClusterDNS"
    assert warnings[0].message == (
        'pod: "web-0_shop(u1)". kubelet does not have ClusterDNS IP configured and cannot '
        'create Pod using "ClusterFirst" policy. Falling back to "Default" policy.')


def test_limits_are_enforced_with_warnings():
    p = pod(dnsPolicy="None", dnsConfig={"nameservers": ["1.1.1.1", "2.2.2.2", "3.3.3.3",
                                                         "4.4.4.4"],
                                         "searches": [f"s{i}.example" for i in range(40)]})
    cfg, warnings = pod_dns(p, cluster_dns=[], host=HOST)
    assert cfg.servers == ["1.1.1.1", "2.2.2.2", "3.3.3.3"] and len(cfg.searches) == 32
    assert [w.message.split(",")[0] for w in warnings] == [
        "Nameserver limits were exceeded", "Search Line limits were exceeded"]


def test_read_host_dns_from_a_file(tmp_path):
    f = tmp_path / "resolv.conf"
    f.write_text("nameserver 10.0.0.2\n")
    assert read_host_dns(str(f)).servers == ["10.0.0.2"]
    assert read_host_dns(str(tmp_path / "missing")) == HostDNS()
    assert read_host_dns("") == HostDNS(["127.0.0.1"], ["."])


def test_etc_hosts_with_subdomain_and_aliases():
    p = pod(hostname="db", subdomain="backend",
            hostAliases=[{"ip": "10.1.2.3", "hostnames": ["foo.local", "bar.local"]}])
    assert etc_hosts(p, ["10.42.0.7"]) == (
        "# Kubernetes-managed hosts file.\n"
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\n"
        "fe00::0\tip6-mcastprefix\n"
        "fe00::1\tip6-allnodes\n"
        "fe00::2\tip6-allrouters\n"
        "10.42.0.7\tdb.backend.shop.svc.cluster.local\tdb\n"
        "\n# Entries added by HostAliases.\n"
        "10.1.2.3\tfoo.local\tbar.local\n")
    assert "10.42.0.7\tweb-0\n" in etc_hosts(pod(), ["10.42.0.7"])


def test_etc_hosts_with_host_network(tmp_path):
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n")
    p = pod(hostNetwork=True, hostAliases=[{"ip": "1.2.3.4", "hostnames": ["x"]}])
    assert etc_hosts(p, [], node_hosts_path=str(hosts)) == (
        "# Kubernetes-managed hosts file (host network).\n127.0.0.1 localhost\n"
        "\n# Entries added by HostAliases.\n1.2.3.4\tx\n")


def test_sandbox_hostname():
    assert sandbox_hostname(pod()) == "web-0"
    assert sandbox_hostname(pod(subdomain="s", setHostnameAsFQDN=True)) == \
        "web-0.s.shop.svc.cluster.local"
    long = pod()
    long["metadata"]["name"] = "a" * 62 + "-bcd"
    assert sandbox_hostname(long) == "a" * 62
