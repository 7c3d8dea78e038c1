"""`pybernetes proxy`: the service proxy (kube-proxy) of one node."""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys

from pybernetes.cli import flags

DESCRIPTION = """\
Run the service proxy of this node (kube-proxy): it watches Services and their
EndpointSlices and makes each Service's addresses lead to its ready pods.

In nftables mode (the default as root, with `nft` installed) it programs one
nftables table (`ip pybernetes`, see --nftables-table) in a single atomic
transaction per change:
  - cluster IPs, external IPs and load balancer IPs on the Service port, and the
    NodePort on every address of this node, DNAT to an endpoint chosen at random
    (an even spread), or the same one per client with sessionAffinity ClientIP;
  - externalTrafficPolicy/internalTrafficPolicy Local use only this node's
    endpoints (external traffic keeps its source address; none here: dropped);
  - traffic from outside the pod network, and a pod reaching itself through its
    Service, is masqueraded so replies come back through this node;
  - a Service without ready endpoints is rejected at once (ICMP port unreachable),
    as is any other address of the service CIDR.
It also routes the service CIDR to lo (`local` route) and the cluster CIDR to
`unreachable`, so nothing for either leaves by the default route; pods on this
node's bridges still win (their routes are more specific). On SIGTERM/SIGINT the
table and those routes are removed (--keep-rules-on-exit keeps them, as upstream
kube-proxy does; a crash leaves them, and the next start replaces them).

In userspace mode (not root, no `nft`, or asked for) connections pass through
this process instead: slower, but no privileges needed for NodePorts.
"""

EPILOG = """\
examples:
  pybernetes proxy --kubeconfig DATA_DIR/proxy.kubeconfig --hostname-override node1
  pybernetes proxy --kubeconfig K --cluster-cidr 10.42.0.0/16 \\
      --service-cluster-ip-range 10.43.0.0/16 --min-sync-period 500ms
  pybernetes proxy --kubeconfig K --cleanup          remove the table and routes, exit

  nft list table ip pybernetes          the rules it installed
  kubectl get svc,endpointslices        what it proxies
"""

MODES = ("nftables", "userspace")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("proxy", help="run the service proxy of a node (kube-proxy)",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kubeconfig", metavar="FILE",
                   help="kubeconfig with the API server's address and credentials")
    p.add_argument("--hostname-override", default=socket.gethostname(), metavar="NODE",
                   help="this node's name, for the Local traffic policies "
                        "(default: the host name, %(default)s)")
    p.add_argument("--cluster-cidr", default="10.42.0.0/16", type=flags.cidr, metavar="CIDR",
                   help="the pod network: traffic to a cluster IP from outside it is "
                        "masqueraded (default: %(default)s)")
    p.add_argument("--service-cluster-ip-range", default="10.43.0.0/16", type=flags.cidr,
                   metavar="CIDR", help="the service CIDR, routed locally; its addresses "
                   "that no Service has are rejected (default: %(default)s)")
    p.add_argument("--proxy-mode", choices=MODES, default="",
                   help="nftables (kernel NAT; needs root and nft) or userspace "
                        "(default: nftables where possible)")
    p.add_argument("--nftables-table", default="pybernetes", metavar="NAME",
                   help="the nftables table (family ip) to own (default: %(default)s)")
    p.add_argument("--masquerade-all", action="store_true",
                   help="SNAT all traffic to cluster IPs, not only traffic from outside "
                        "the pod network")
    p.add_argument("--min-sync-period", default="1s", type=flags.duration, metavar="D",
                   help="at most one sync per this period; changes in between are "
                        "applied together (default: %(default)s)")
    p.add_argument("--sync-period", default="30s", type=flags.duration, metavar="D",
                   help="sync at least this often even without changes "
                        "(default: %(default)s)")
    p.add_argument("--netns", default="", metavar="NAME",
                   help="program the rules and routes in this named network namespace "
                        "(`ip netns exec NAME`) instead of the proxy's own")
    p.add_argument("--keep-rules-on-exit", action="store_true",
                   help="leave the table and routes in place on SIGTERM/SIGINT")
    p.add_argument("--cleanup", action="store_true",
                   help="remove the table and routes a proxy made, then exit")
    flags.add_log_level(p)
    p.set_defaults(func=run)


def choose_mode(asked: str, netns: str = "") -> tuple[str, str]:
    """(mode, why): nftables when root and nft is there, else userspace."""
    if asked == "userspace":
        return "userspace", "--proxy-mode userspace asked for"
    missing = ""
    if os.geteuid() != 0:
        missing = "not running as root"
    elif not shutil.which("nft"):
        missing = "the nft command is not installed (Debian package nftables)"
    if asked == "nftables" or netns:
        return ("nftables", "asked for") if not missing else ("", missing)
    return ("nftables", "root, with nft") if not missing else ("userspace", missing)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from pybernetes.cli.controller_manager import _until_signalled
    flags.setup_logging(args.log_level)
    mode, why = choose_mode(args.proxy_mode, args.netns)
    if not mode:
        print(f"pybernetes proxy: nftables mode is not possible: {why}", file=sys.stderr)
        return 2
    if args.cleanup:
        if mode != "nftables":
            print(f"pybernetes proxy --cleanup: needs root and nft ({why})", file=sys.stderr)
            return 2
        asyncio.run(_cleanup(args))
        return 0
    if not args.kubeconfig:
        print("pybernetes proxy: --kubeconfig FILE is required", file=sys.stderr)
        return 2
    if mode == "userspace":
        try:
            from pybernetes.proxy import userspace
        except ImportError:
            print(f"pybernetes proxy: the userspace proxy is not available ({why}, so "
                  f"nftables cannot be used)", file=sys.stderr)
            return 2
        work = _run_userspace(args, userspace, why)
    else:
        work = _run_nftables(args)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(_until_signalled(work))
    except OSError as e:
        print(f"pybernetes proxy: {e}", file=sys.stderr)
        return 1
    return 0


def _prefix(args: argparse.Namespace) -> list[str]:
    return ["ip", "netns", "exec", args.netns] if args.netns else []


def _config(args: argparse.Namespace):
    from pybernetes.proxy.nftables import Config
    return Config(table=args.nftables_table, node_name=args.hostname_override,
                  cluster_cidr=str(args.cluster_cidr),
                  service_cidr=str(args.service_cluster_ip_range),
                  masquerade_all=args.masquerade_all)


async def _cleanup(args: argparse.Namespace) -> None:
    from pybernetes.proxy import routes
    from pybernetes.proxy.nftables import NftablesProxier
    await NftablesProxier(_config(args), _prefix(args)).delete_table()
    await routes.remove(routes.wanted(str(args.service_cluster_ip_range),
                                      str(args.cluster_cidr)), _prefix(args))


async def _run_nftables(args: argparse.Namespace) -> None:
    import logging

    from pybernetes.client.api import APIClient
    from pybernetes.proxy import routes
    from pybernetes.proxy.nftables import NftablesProxier
    from pybernetes.proxy.watcher import ServiceWatcher
    log = logging.getLogger("pybernetes.proxy")
    proxier = NftablesProxier(_config(args), _prefix(args))
    # ours whether this run or a crashed predecessor added them: removed on a clean stop
    wanted = routes.wanted(str(args.service_cluster_ip_range), str(args.cluster_cidr))
    await routes.ensure(wanted, _prefix(args))
    log.info("proxy: nftables mode, table ip %s, node %s", args.nftables_table,
             args.hostname_override)
    try:
        async with await APIClient.from_kubeconfig(args.kubeconfig,
                                                   user_agent="pybernetes-proxy") as client:
            watcher = ServiceWatcher(client, proxier.sync, args.min_sync_period,
                                     args.sync_period)
            await watcher.run()
    finally:
        if not args.keep_rules_on_exit:
            await proxier.delete_table()
            await routes.remove(wanted, _prefix(args))
            log.info("proxy: table ip %s and routes removed", args.nftables_table)


async def _run_userspace(args: argparse.Namespace, userspace, why: str) -> None:
    from pybernetes.client.api import APIClient
    options = userspace.UserspaceOptions(
        node_name=args.hostname_override, service_cidr=str(args.service_cluster_ip_range),
        reason=why, min_sync_period=args.min_sync_period, sync_period=args.sync_period)
    async with await APIClient.from_kubeconfig(args.kubeconfig,
                                               user_agent="pybernetes-proxy") as client:
        await userspace.run_userspace(client, options)
