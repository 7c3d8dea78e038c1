"""UDP conntrack cleanup commands, and the proxy command's mode choice and errors."""
from __future__ import annotations

import subprocess
import sys

from pybernetes.cli.proxy import choose_mode
from pybernetes.proxy.conntrack import stale_udp
from pybernetes.proxy.model import service_ports
from tests.unit.proxy.test_model import ep, eps, svc

UDP = [{"name": "", "port": 53, "protocol": "UDP"}]


def dns(*ips: str, node_port: int = 0) -> list:
    spec = {"ports": [{"port": 53, "protocol": "UDP", **({"nodePort": node_port}
                                                         if node_port else {})}]}
    if node_port:
        spec["type"] = "NodePort"
    return service_ports([svc("dns", clusterIP="10.43.0.10", **spec)],
                         [eps("dns", UDP, [ep(ip, ready=True) for ip in ips])])


def test_a_gone_udp_endpoint_loses_its_flows():
    cmds = stale_udp(dns("10.42.0.5", "10.42.0.6", node_port=30053),
                     dns("10.42.0.6", node_port=30053), "n1")
    assert cmds == [["-D", "-p", "udp", "--orig-dst", "10.43.0.10", "--dst-nat", "10.42.0.5"],
                    ["-D", "-p", "udp", "--orig-port-dst", "30053", "--dst-nat", "10.42.0.5"]]


def test_a_service_getting_its_first_endpoint_clears_its_flows():
    cmds = stale_udp(dns(), dns("10.42.0.5"), "n1")
    assert cmds == [["-D", "-p", "udp", "--orig-dst", "10.43.0.10", "--orig-port-dst", "53"]]
    assert stale_udp(dns("10.42.0.5"), dns("10.42.0.5"), "n1") == []


def test_tcp_needs_no_cleanup():
    tcp = [{"name": "", "port": 8080, "protocol": "TCP"}]
    before = service_ports([svc("web")], [eps("web", tcp, [ep("10.42.0.5", ready=True)])])
    assert stale_udp(before, service_ports([svc("web")], []), "n1") == []


def test_mode_choice():
    assert choose_mode("userspace")[0] == "userspace"
    mode, why = choose_mode("")
    assert mode in ("nftables", "userspace") and why


def test_command_errors_are_clear():
    run = [sys.executable, "-m", "pybernetes.cli.main", "proxy"]
    p = subprocess.run(run + ["--proxy-mode", "nftables"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert "--kubeconfig" in p.stderr or "not possible" in p.stderr
    p = subprocess.run(run + ["--min-sync-period", "soon"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 2 and "invalid duration" in p.stderr
