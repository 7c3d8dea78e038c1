"""`pybernetes scheduler`: assigns pending pods to nodes."""
from __future__ import annotations

import argparse
import sys

from pybernetes.cli import flags

DESCRIPTION = """\
Run the scheduler: it watches pods that have no node yet and binds each to a node
where it fits (resources, node selectors and affinity, taints, pod affinity and
topology spread, host ports), preempting lower-priority pods when nothing fits.
It talks to the API server only. `pybernetes server` starts it for you.
"""

EPILOG = """\
examples:
  pybernetes scheduler --kubeconfig DATA_DIR/admin.kubeconfig
  pybernetes scheduler --kubeconfig K --leader-elect=false --bind-concurrency 64
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scheduler", help="run the scheduler (binds pods to nodes)",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kubeconfig", required=True, metavar="FILE",
                   help="kubeconfig with the API server's address and credentials")
    p.add_argument("--bind-concurrency", type=int, default=32, metavar="N",
                   help="Bindings in flight at once (default: %(default)s)")
    flags.add_leader_election(p, "kube-scheduler")
    flags.add_log_level(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import asyncio

    from pybernetes.cli.controller_manager import _until_signalled
    from pybernetes.scheduler import main
    flags.setup_logging(args.log_level)
    try:
        timing = flags.leader_election_timing(args)
    except ValueError as e:
        print(f"pybernetes scheduler: {e}", file=sys.stderr)
        return 2
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    from pybernetes.client.leader_election import LeadershipLost
    try:
        asyncio.run(_until_signalled(main.run(args.kubeconfig, args.leader_elect,
                                              max(1, args.bind_concurrency), timing)))
    except LeadershipLost as e:
        return flags.leadership_lost("scheduler", e)
    return 0
