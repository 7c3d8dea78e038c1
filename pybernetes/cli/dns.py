"""`pybernetes dns`: the cluster DNS server (what CoreDNS's kubernetes plugin does)."""
from __future__ import annotations

import argparse
import ipaddress
import socket
import sys

from pybernetes.cli import flags

DESCRIPTION = """\
Run the cluster DNS server. It answers for the cluster domain from the API
(Services, EndpointSlices, Namespaces) and forwards every other name to this
machine's resolvers, like CoreDNS with its kubernetes plugin does in k3s:

  web.default.svc.cluster.local            A: the Service's ClusterIP
  nginx.default.svc.cluster.local          headless Service: its ready pods' IPs
  web-0.nginx.default.svc.cluster.local    one pod (hostname + subdomain, StatefulSets)
  _http._tcp.web.default.svc.cluster.local SRV for the named port "http"
  10-42-0-5.default.pod.cluster.local      A 10.42.0.5
  ExternalName Services                    CNAME to the external name
  reverse (PTR) names of ClusterIPs and pod IPs, SOA/NS for the zone

A name that exists without records of the asked type is NODATA, one that does
not exist NXDOMAIN; answers live --ttl seconds. It also keeps the kube-system/
kube-dns Service (at --cluster-dns) pointing at the address and port it listens
on, so pods, whose resolv.conf names the cluster DNS address, reach it through
the proxy. `pybernetes server` starts it for you.
"""

EPILOG = """\
examples:
  pybernetes dns --kubeconfig DATA_DIR/dns.kubeconfig
      port 53 on this machine's primary address, upstream from /etc/resolv.conf
  pybernetes dns --kubeconfig K --bind-address 127.0.0.1 --dns-port 5353 \\
      --upstream 1.1.1.1,9.9.9.9:53
  dig @127.0.0.1 -p 5353 kubernetes.default.svc.cluster.local
  kubectl -n kube-system get endpointslices -l kubernetes.io/service-name=kube-dns
      where the kube-dns Service sends queries (this server's address and port)
"""


def _ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {value!r}") from None


def _ips(value: str) -> list[str]:
    return [_ip(v) for v in flags.comma_list(value)]


def _upstreams(value: str) -> list[tuple[str, int]]:
    from pybernetes.dns.forward import parse_upstream
    out = []
    for item in flags.comma_list(value):
        try:
            out.append(parse_upstream(item))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad upstream {item!r}: want IP or IP:PORT ([IPv6]:PORT)") from None
    return out


def _port_or_zero(value: str) -> int:
    return 0 if value == "0" else flags.port(value)


def _domain(value: str) -> str:
    d = value.strip().strip(".").lower()
    labels = d.split(".")
    if not d or any(not lbl or len(lbl) > 63 for lbl in labels) or len(d) > 253:
        raise argparse.ArgumentTypeError(f"not a DNS domain: {value!r}")
    return d


def _ttl(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if not 0 <= n <= 3600:
        raise argparse.ArgumentTypeError(f"ttl must be 0-3600 seconds: {n}")
    return n


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dns", help="run the cluster DNS server (cluster.local, like CoreDNS)",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kubeconfig", required=True, metavar="FILE",
                   help="kubeconfig with the API server's address and credentials")
    p.add_argument("--cluster-domain", type=_domain, default="cluster.local",
                   metavar="DOMAIN", help="the zone to answer for (default: %(default)s)")
    p.add_argument("--cluster-dns", type=_ips, default=["10.43.0.10"], metavar="IP",
                   help="the kube-dns Service's ClusterIP, the address pods' resolv.conf "
                        "names (default: 10.43.0.10)")
    p.add_argument("--bind-address", type=_ip, default=None, metavar="IP",
                   help="address to listen on and to publish as the kube-dns endpoint "
                        "(default: this machine's primary address)")
    p.add_argument("--dns-port", type=_port_or_zero, default=53, metavar="PORT",
                   help="UDP and TCP port (default: %(default)s; 0 picks a free one)")
    p.add_argument("--metrics-port", type=_port_or_zero, default=9153, metavar="PORT",
                   help="HTTP port for /metrics, /health and /ready (default: %(default)s; "
                        "0 picks a free one)")
    p.add_argument("--upstream", type=_upstreams, default=None, metavar="IP[:PORT],...",
                   help="resolvers for names outside the cluster domain (default: the "
                        "nameservers in --resolv-conf)")
    p.add_argument("--resolv-conf", default="/etc/resolv.conf", metavar="FILE",
                   help="where to find upstream nameservers when --upstream is not given "
                        "(default: %(default)s)")
    p.add_argument("--ttl", type=_ttl, default=5, metavar="SECONDS",
                   help="TTL of the cluster's records (default: %(default)s, as CoreDNS)")
    p.add_argument("--node-name", default=socket.gethostname(), metavar="NAME",
                   help="node named in the kube-dns endpoint (default: this host's name)")
    p.add_argument("--publish-kube-dns", type=flags.boolean, nargs="?", const=True,
                   default=True, metavar="BOOL",
                   help="keep the kube-system/kube-dns Service and its endpoints "
                        "(default: true)")
    flags.add_log_level(p)
    p.set_defaults(func=run)


def _default_upstreams(path: str) -> list[tuple[str, int]]:
    from pybernetes.dns.forward import parse_upstream
    from pybernetes.kubelet.dns import read_host_dns
    out = []
    for server in read_host_dns(path).servers:
        try:
            out.append(parse_upstream(server.split("%", 1)[0]))
        except ValueError:
            pass
    return out


def run(args: argparse.Namespace) -> int:
    import asyncio

    from pybernetes.cli.controller_manager import _until_signalled
    from pybernetes.dns.main import Config
    from pybernetes.dns.main import run as run_dns
    flags.setup_logging(args.log_level)
    if not args.bind_address:
        from pybernetes.kubelet.machine import primary_ip
        args.bind_address = primary_ip()
    cfg = Config(kubeconfig=args.kubeconfig, cluster_dns=args.cluster_dns,
                 bind_address=args.bind_address, cluster_domain=args.cluster_domain,
                 dns_port=args.dns_port, metrics_port=args.metrics_port,
                 upstreams=args.upstream if args.upstream is not None
                 else _default_upstreams(args.resolv_conf),
                 ttl=args.ttl, node_name=args.node_name, publish=args.publish_kube_dns)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    from pybernetes.dns.server import ListenError
    try:
        asyncio.run(_until_signalled(run_dns(cfg)))
    except ListenError as e:
        print(f"pybernetes dns: {e} (pick another with --bind-address / --dns-port)",
              file=sys.stderr)
        return 1
    except OSError as e:
        print(f"pybernetes dns: {e}", file=sys.stderr)
        return 1
    return 0
