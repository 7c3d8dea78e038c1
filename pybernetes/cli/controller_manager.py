"""`pybernetes controller-manager`: the reconcile loops (ReplicaSet, Deployment, ...)."""
from __future__ import annotations

import argparse
import sys

from pybernetes.cli import flags

DESCRIPTION = """\
Run the controller manager: the loops that make the cluster match what was asked
(a Deployment's ReplicaSets, a ReplicaSet's pods, ...). It talks to the API server
only, using the credentials in --kubeconfig. `pybernetes server` starts it for you.
"""

EPILOG = """\
examples:
  pybernetes controller-manager --kubeconfig DATA_DIR/admin.kubeconfig
  pybernetes controller-manager --kubeconfig K --leader-elect --controllers '*,-deployment'
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("controller-manager", help="run the controllers (Deployment, ReplicaSet, ...)",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kubeconfig", required=True, metavar="FILE",
                   help="kubeconfig with the API server's address and credentials")
    p.add_argument("--controllers", default="*", metavar="LIST",
                   help="comma-separated controllers to run: '*' for all, 'foo' to enable, "
                        "'-foo' to disable (default: %(default)s)")
    p.add_argument("--root-ca-file", default="", metavar="FILE",
                   help="CA published to every namespace as ConfigMap kube-root-ca.crt "
                        "(default: the kubeconfig's certificate authority)")
    p.add_argument("--service-account-private-key-file", default="", metavar="FILE",
                   help="PEM key that signs the tokens of kubernetes.io/service-account-token "
                        "Secrets (without it their tokens are not filled)")
    p.add_argument("--node-monitor-grace-period", type=float, default=40.0, metavar="SECONDS",
                   help="a node silent this long is marked Unknown and tainted unreachable "
                        "(default: %(default)s)")
    p.add_argument("--node-monitor-period", type=float, default=5.0, metavar="SECONDS",
                   help="how often node heartbeats are checked (default: %(default)s)")
    p.add_argument("--resource-quota-sync-period", type=float, default=300.0, metavar="SECONDS",
                   help="how often every ResourceQuota's usage is recalculated from the "
                        "objects in its namespace (default: %(default)s)")
    p.add_argument("--cluster-cidr", default="10.42.0.0/16", metavar="CIDR[,CIDR]",
                   help="pod addresses; node IPAM gives each node a slice of it as its "
                        "podCIDR (default: %(default)s; IPv4,IPv6 for dual stack)")
    p.add_argument("--node-cidr-mask-size", type=int, default=24, metavar="BITS",
                   help="prefix length of each node's IPv4 podCIDR (default: %(default)s)")
    p.add_argument("--default-local-storage-path", default="", metavar="DIR",
                   help="where the local-path provisioner keeps volumes on each node "
                        "(default: /var/lib/pybernetes/storage as root, else "
                        "~/.local/share/pybernetes/storage)")
    flags.add_leader_election(p, "kube-controller-manager")
    flags.add_log_level(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from pybernetes.controllers import manager
    flags.setup_logging(args.log_level)
    from pybernetes.controllers.node_lifecycle import NodeLifecycleController
    NodeLifecycleController.grace_period = args.node_monitor_grace_period
    NodeLifecycleController.monitor_period = args.node_monitor_period
    from pybernetes.controllers.serviceaccount_tokens import TokensController
    TokensController.private_key_file = args.service_account_private_key_file
    from pybernetes.controllers.resourcequota import ResourceQuotaController
    ResourceQuotaController.resync_period = args.resource_quota_sync_period
    from pybernetes.controllers.local_path_provisioner import LocalPathProvisioner
    LocalPathProvisioner.storage_dir = args.default_local_storage_path
    from pybernetes.controllers import nodeipam
    try:
        nodeipam.parse_cluster_cidrs(args.cluster_cidr, args.node_cidr_mask_size)
    except nodeipam.CIDRSetError as e:
        print(f"pybernetes controller-manager: {e}", file=sys.stderr)
        return 2
    nodeipam.NodeIPAMController.cluster_cidr = args.cluster_cidr
    nodeipam.NodeIPAMController.node_mask = args.node_cidr_mask_size
    known = sorted(manager.controller_classes())
    try:
        names = manager.select(args.controllers, known)
        timing = flags.leader_election_timing(args)
    except ValueError as e:
        print(f"pybernetes controller-manager: {e}", file=sys.stderr)
        return 2
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    from pybernetes.client.leader_election import LeadershipLost
    try:
        asyncio.run(_until_signalled(manager.run(args.kubeconfig, names, args.leader_elect,
                                                 args.root_ca_file, timing)))
    except LeadershipLost as e:
        return flags.leadership_lost("controller-manager", e)
    return 0


async def _until_signalled(work) -> None:
    """Run `work`; SIGTERM/SIGINT cancel it so its cleanup (closing watches, the
    client) runs before the process exits."""
    import asyncio
    import signal
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        pass
