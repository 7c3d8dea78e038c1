"""`pybernetes dns` flags as a user types them, and the server's dns component."""
from __future__ import annotations

import argparse

import pytest

from pybernetes.cli import server
from pybernetes.cli.main import build_parser


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["dns", "--kubeconfig", "k", *argv])


def test_defaults_are_coredns_like():
    a = parse()
    assert a.cluster_domain == "cluster.local" and a.cluster_dns == ["10.43.0.10"]
    assert a.dns_port == 53 and a.metrics_port == 9153 and a.ttl == 5
    assert a.bind_address is None        # the node's primary address, decided at start
    assert a.upstream is None            # the nameservers in /etc/resolv.conf
    assert a.publish_kube_dns is True


def test_flags_parse():
    a = parse("--upstream", "127.0.0.1:5353,[::1]:53,10.0.0.2", "--dns-port", "0",
              "--bind-address", "127.0.0.1", "--cluster-domain", "Example.Cluster.",
              "--publish-kube-dns=false")
    assert a.upstream == [("127.0.0.1", 5353), ("::1", 53), ("10.0.0.2", 53)]
    assert a.dns_port == 0 and a.bind_address == "127.0.0.1"
    assert a.cluster_domain == "example.cluster" and a.publish_kube_dns is False


@pytest.mark.parametrize("argv, message", [
    (["--upstream", "dns.google"], "bad upstream 'dns.google'"),
    (["--bind-address", "localhost"], "not an IP address: 'localhost'"),
    (["--cluster-dns", "10.43.0.x"], "not an IP address"),
    (["--dns-port", "70000"], "port out of range"),
    (["--ttl", "-1"], "ttl must be 0-3600"),
    (["--cluster-domain", "a..b"], "not a DNS domain"),
])
def test_bad_flags_say_why(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        parse(*argv)
    assert e.value.code == 2
    assert message in capsys.readouterr().err


def test_help_shows_the_names_it_serves(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["dns", "--help"])
    out = capsys.readouterr().out
    assert "web-0.nginx.default.svc.cluster.local" in out and "examples:" in out


def test_server_runs_the_dns_component_with_the_cluster_dns_address(tmp_path):
    p = build_parser()
    args = p.parse_args(["server", "--data-dir", str(tmp_path), "--kubelet-runtime", "fake",
                         "--service-cidr", "10.200.0.0/16", "--dns-arg", "dns-port=0"])
    assert server._check_services(args) == ""
    kubeconfigs = {n: f"/k/{n}" for n in ("controller-manager", "scheduler", "kubelet",
                                          "proxy", "dns", "ingress")}

    class Pki:
        ca_crt = server_crt = server_key = sa_key = "x"
    comps = {c.name: c for c in server._components(args, str(tmp_path), Pki(), kubeconfigs)}
    argv = comps["dns"].argv
    assert argv[argv.index("dns") + 1:argv.index("dns") + 3] == ["--kubeconfig", "/k/dns"]
    assert argv[argv.index("--cluster-dns") + 1] == "10.200.0.10"
    assert "--dns-port=0" in argv
    kubelet = comps["kubelet"].argv
    assert kubelet[kubelet.index("--cluster-dns") + 1] == "10.200.0.10"


def test_server_skips_dns_without_root_unless_a_port_is_given(monkeypatch, tmp_path):
    monkeypatch.setattr(server.os, "geteuid", lambda: 1000)
    p = build_parser()
    args = p.parse_args(["server", "--data-dir", str(tmp_path)])
    assert "port 53 needs root" in server._dns_problem(args)
    args = p.parse_args(["server", "--data-dir", str(tmp_path), "--dns-arg", "dns-port=5353"])
    assert server._dns_problem(args) == ""
    args = p.parse_args(["server", "--data-dir", str(tmp_path), "--disable", "dns"])
    assert server._dns_problem(args) == ""
