"""`pybernetes kubelet`: the node agent. Only the fake runtime exists so far."""
from __future__ import annotations

import argparse
import socket
import sys

from pybernetes.cli import flags

DESCRIPTION = """\
Run a node agent (kubelet): it registers a Node with the API server, keeps it
alive (a Lease in kube-node-lease, renewed every --heartbeat-period) and runs the
pods the scheduler binds to it.

With --runtime fake nothing is run at all (like kwok): each simulated node reports
its capacity, pods bound to it go Pending -> Running -> Ready with an IP from the
node's podCIDR, Job pods complete, deleted pods go away. One process can simulate
hundreds of nodes (--fake-nodes), for trying schedulers, controllers and clients
at scale. The real runtimes (runc, process) come in a later version.

Pods on a fake node obey these annotations (seconds may be fractional):
  fake.pybernetes.io/start-delay: "2"      Pending (ContainerCreating) for 2 s first
  fake.pybernetes.io/ready-delay: "5"      Running but not Ready for 5 s
  fake.pybernetes.io/never-ready: "true"   Running, never Ready (READY 0/1)
  fake.pybernetes.io/complete-after: "10"  containers exit 10 s after starting
  fake.pybernetes.io/exit-code: "1"        ... with this code: Failed (Error) with
                                           restartPolicy Never, else restarts and
                                           CrashLoopBackOff
"""

EPILOG = """\
examples:
  pybernetes kubelet --kubeconfig DATA_DIR/admin.kubeconfig --runtime fake
      one fake node named after this host
  pybernetes kubelet --kubeconfig K --runtime fake --node-name fake --fake-nodes 100
      100 fake nodes fake-0 ... fake-99 in one process (a scheduling benchmark's cluster)
  pybernetes kubelet --kubeconfig K --runtime fake --node-name big --cpu 96 --memory 768Gi \\
      --node-labels zone=a,disk=ssd --register-with-taints dedicated=gpu:NoSchedule

  kubectl get nodes -o wide        the nodes, Ready, with their version and addresses
  kubectl get pods -o wide         pods on them Running, with IPs from each node's podCIDR
"""

RUNTIMES = ("fake", "runc", "process")


def _labels(value: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        key, sep, val = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"invalid label {item!r}: want key=value")
        out[key] = val
    return out


def _taints(value: str) -> list[dict]:
    from pybernetes.kubelet.node_status import parse_taint
    try:
        return [parse_taint(t.strip()) for t in value.split(",") if t.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {n}")
    return n


def _seconds(value: str) -> float:
    try:
        s = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {value!r}") from None
    if s < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return s


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kubelet", help="run a node agent (--runtime fake: simulated nodes)",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kubeconfig", required=True, metavar="FILE",
                   help="kubeconfig with the API server's address and credentials")
    p.add_argument("--runtime", choices=RUNTIMES, required=True,
                   help="how pods run: 'fake' simulates them (the only one so far; "
                        "runc and process come in a later version)")
    p.add_argument("--node-name", default=socket.gethostname(), metavar="NAME",
                   help="the Node's name (default: this host's name, %(default)s)")
    p.add_argument("--fake-nodes", type=_positive_int, default=1, metavar="N",
                   help="simulate N nodes NAME-0 ... NAME-(N-1) in this one process "
                        "(default: 1, named NAME)")
    p.add_argument("--cpu", default="32", metavar="QUANTITY",
                   help="each node's cpu capacity (default: %(default)s)")
    p.add_argument("--memory", default="256Gi", metavar="QUANTITY",
                   help="each node's memory capacity (default: %(default)s)")
    p.add_argument("--pods", "--max-pods", dest="pods", type=_positive_int, default=110,
                   metavar="N", help="how many pods each node takes (default: %(default)s)")
    p.add_argument("--node-labels", type=_labels, default={}, metavar="K=V,...",
                   help="extra labels for the Node(s)")
    p.add_argument("--register-with-taints", type=_taints, default=[],
                   metavar="KEY=VALUE:EFFECT,...", help="taints the Node(s) register with")
    p.add_argument("--node-ip", default="", metavar="IP",
                   help="InternalIP of the (first) node; later nodes count up from it "
                        "(default: an address from 198.18.0.0/15, picked by node name)")
    p.add_argument("--lease-duration", type=_positive_int, default=40, metavar="SECONDS",
                   help="leaseDurationSeconds of each node's Lease (default: %(default)s)")
    p.add_argument("--heartbeat-period", type=_seconds, default=10.0, metavar="SECONDS",
                   help="how often each node renews its Lease (default: %(default)s)")
    p.add_argument("--status-update-period", type=_seconds, default=60.0, metavar="SECONDS",
                   help="how often each node writes its full status even when nothing "
                        "changed (default: %(default)s)")
    p.add_argument("--fake-run-seconds", type=_seconds, default=1.0, metavar="SECONDS",
                   help="fake runtime: pods with restartPolicy Never/OnFailure exit 0 after "
                        "this long unless annotated otherwise (default: %(default)s)")
    p.add_argument("--fake-termination-seconds", type=_seconds, default=0.0, metavar="SECONDS",
                   help="fake runtime: a deleted pod takes min(its grace period, this) to "
                        "stop (default: %(default)s)")
    p.add_argument("--api-concurrency", type=_positive_int, default=64, metavar="N",
                   help="pod API calls in flight at once (default: %(default)s)")
    flags.add_log_level(p)
    p.set_defaults(func=run)


def node_configs(args: argparse.Namespace) -> list:
    import ipaddress

    from pybernetes.kubelet.fake import node_ip
    from pybernetes.kubelet.node_status import NodeConfig, pybernetes_version
    n = args.fake_nodes
    names = [args.node_name] if n == 1 else [f"{args.node_name}-{i}" for i in range(n)]
    base = ipaddress.ip_address(args.node_ip) if args.node_ip else None
    labels = {"type": "fake-node", **args.node_labels}
    return [NodeConfig(name=name, ip=str(base + i) if base else node_ip(name), cpu=args.cpu,
                       memory=args.memory, pods=args.pods, labels=labels,
                       taints=args.register_with_taints,
                       runtime_version=f"fake://{pybernetes_version()}",
                       os_image="pybernetes fake node")
            for i, name in enumerate(names)]


def _check(args: argparse.Namespace) -> str:
    from pybernetes.machinery.quantity import validate_quantity
    if args.runtime != "fake":
        return (f"--runtime {args.runtime} is not available yet (it comes with the real "
                "kubelet in a later version); use --runtime fake")
    for flag, value in (("--cpu", args.cpu), ("--memory", args.memory)):
        if validate_quantity(value):
            return f"{flag}: not a quantity: {value!r} (e.g. 32, 500m, 256Gi)"
    if args.node_ip:
        import ipaddress
        try:
            ipaddress.ip_address(args.node_ip)
        except ValueError:
            return f"--node-ip: not an IP address: {args.node_ip!r}"
    return ""


def run(args: argparse.Namespace) -> int:
    import asyncio

    from pybernetes.cli.controller_manager import _until_signalled
    problem = _check(args)
    if problem:
        print(f"pybernetes kubelet: {problem}", file=sys.stderr)
        return 2
    flags.setup_logging(args.log_level)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_until_signalled(_run_fake(args)))
    return 0


async def _run_fake(args: argparse.Namespace) -> None:
    from pybernetes.client.api import APIClient
    from pybernetes.client.events import EventRecorder
    from pybernetes.kubelet.fake import FakeKubelet, FakeOptions
    client = await APIClient.from_kubeconfig(args.kubeconfig, user_agent="pybernetes-kubelet",
                                             connections=args.api_concurrency + 16)
    try:
        opts = FakeOptions(run_seconds=args.fake_run_seconds,
                           termination_seconds=args.fake_termination_seconds,
                           concurrency=args.api_concurrency)
        kubelet = FakeKubelet(client, node_configs(args), opts,
                              lambda node: EventRecorder(client, "kubelet", node),
                              lease_duration=args.lease_duration,
                              heartbeat_period=max(0.1, args.heartbeat_period),
                              status_update_period=max(0.1, args.status_update_period))
        await kubelet.run()
    finally:
        await client.close()
