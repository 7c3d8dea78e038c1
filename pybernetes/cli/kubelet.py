"""`pybernetes kubelet`: the node agent, with the runc, process or fake runtime."""
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
at scale.

With --runtime runc pods are real containers (OCI bundles run by runc, overlayfs
over pulled image layers, one network namespace per pod on a CNI bridge with an
address from the node's podCIDR, cgroup limits); it needs root. With --runtime
process each container is a plain host process (no isolation, the node's network);
a kubelet that is not root and asked for runc uses process and says so.

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

  pybernetes kubelet --kubeconfig K --runtime runc --root-dir /var/lib/pybernetes/kubelet \\
      --registries /etc/pybernetes/registries.yaml --cluster-dns 10.43.0.10
      this machine as a real node (as root)

  kubectl get nodes -o wide        the nodes, Ready, with their version and addresses
  kubectl get pods -o wide         pods on them Running, with IPs from each node's podCIDR
"""

RUNTIMES = ("fake", "runc", "process")
KUBELET_PORT = 10250


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


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kubelet", help="run a node agent (--runtime fake: simulated nodes)",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kubeconfig", required=True, metavar="FILE",
                   help="kubeconfig with the API server's address and credentials")
    p.add_argument("--runtime", choices=RUNTIMES, required=True,
                   help="how pods run: 'runc' (containers, needs root), 'process' (host "
                        "processes, no isolation) or 'fake' (simulated)")
    p.add_argument("--node-name", default=socket.gethostname(), metavar="NAME",
                   help="the Node's name (default: this host's name, %(default)s)")
    p.add_argument("--fake-nodes", type=flags.positive_int, default=1, metavar="N",
                   help="simulate N nodes NAME-0 ... NAME-(N-1) in this one process "
                        "(default: 1, named NAME)")
    p.add_argument("--cpu", default="32", metavar="QUANTITY",
                   help="each node's cpu capacity (default: %(default)s)")
    p.add_argument("--memory", default="256Gi", metavar="QUANTITY",
                   help="each node's memory capacity (default: %(default)s)")
    p.add_argument("--pods", "--max-pods", dest="pods", type=flags.positive_int, default=110,
                   metavar="N", help="how many pods each node takes (default: %(default)s)")
    p.add_argument("--node-labels", type=_labels, default={}, metavar="K=V,...",
                   help="extra labels for the Node(s)")
    p.add_argument("--register-with-taints", type=_taints, default=[],
                   metavar="KEY=VALUE:EFFECT,...", help="taints the Node(s) register with")
    p.add_argument("--node-ip", default="", metavar="IP",
                   help="InternalIP of the (first) node; later nodes count up from it "
                        "(default: an address from 198.18.0.0/15, picked by node name)")
    p.add_argument("--lease-duration", type=flags.positive_int, default=40, metavar="SECONDS",
                   help="leaseDurationSeconds of each node's Lease (default: %(default)s)")
    p.add_argument("--heartbeat-period", type=flags.duration, default=10.0, metavar="SECONDS",
                   help="how often each node renews its Lease (default: %(default)s)")
    p.add_argument("--status-update-period", type=flags.duration, default=60.0, metavar="SECONDS",
                   help="how often each node writes its full status even when nothing "
                        "changed (default: %(default)s)")
    p.add_argument("--fake-run-seconds", type=flags.duration, default=1.0, metavar="SECONDS",
                   help="fake runtime: pods with restartPolicy Never/OnFailure exit 0 after "
                        "this long unless annotated otherwise (default: %(default)s)")
    p.add_argument("--fake-termination-seconds", type=flags.duration, default=0.0, metavar="SECONDS",
                   help="fake runtime: a deleted pod takes min(its grace period, this) to "
                        "stop (default: %(default)s)")
    p.add_argument("--api-concurrency", type=flags.positive_int, default=64, metavar="N",
                   help="pod API calls in flight at once (default: %(default)s)")
    _real_flags(p)
    flags.add_log_level(p)
    p.set_defaults(func=run)


def _percent(value: str) -> float:
    try:
        pct = float(value)
    except ValueError:
        pct = -1.0
    if not 0 <= pct <= 100:
        raise argparse.ArgumentTypeError(f"must be a percentage (0-100): {value}")
    return pct


def _real_flags(p: argparse.ArgumentParser) -> None:
    import os
    default_root = ("/var/lib/pybernetes/kubelet" if os.geteuid() == 0
                    else os.path.expanduser("~/.local/share/pybernetes/kubelet"))
    g = p.add_argument_group("runc and process runtimes")
    g.add_argument("--root-dir", default=default_root, metavar="DIR",
                   help="where the kubelet keeps images, containers, pod volumes and "
                        "network state (default: %(default)s)")
    g.add_argument("--pod-logs-dir", default="", metavar="DIR",
                   help="container logs in the CRI format, <ns>_<pod>_<uid>/<container>/N.log "
                        "(default: /var/log/pods with the default --root-dir, else "
                        "ROOT_DIR/logs/pods)")
    g.add_argument("--pod-cidr", default="", metavar="CIDR",
                   help="pod addresses when node IPAM gives the Node no podCIDR (runc)")
    g.add_argument("--cni-bridge", default="pyb0", metavar="NAME",
                   help="the pod bridge's name (runc; default: %(default)s)")
    g.add_argument("--cluster-dns", default="", metavar="IP[,IP]",
                   help="nameservers of ClusterFirst pods (default: none, pods fall back to "
                        "the node's resolv.conf)")
    g.add_argument("--cluster-domain", default="cluster.local", metavar="DOMAIN",
                   help="the cluster's DNS domain (default: %(default)s)")
    g.add_argument("--image-gc-high-threshold", type=_percent, default=85.0, metavar="PCT",
                   help="image GC starts when the image filesystem is this full "
                        "(default: %(default)s)")
    g.add_argument("--image-gc-low-threshold", type=_percent, default=80.0, metavar="PCT",
                   help="... and stops under this (default: %(default)s)")
    g.add_argument("--image-gc-period", type=flags.duration, default=300.0, metavar="SECONDS",
                   help="how often image GC looks at the thresholds (upstream: every 5m, "
                        "fixed) (default: %(default)s)")
    g.add_argument("--image-minimum-gc-age", type=flags.duration, default=120.0,
                   metavar="DURATION",
                   help="an unused image younger than this is never collected, so GC cannot "
                        "race a pod whose image was just pulled (default: 2m, as upstream)")
    g.add_argument("--registries", default="", metavar="FILE",
                   help="registry mirrors and credentials, k3s' registries.yaml shape")
    g.add_argument("--address", default="0.0.0.0", metavar="IP",
                   help="where the kubelet's server (logs, exec, attach, port-forward for the "
                        "API server) listens (default: %(default)s)")
    g.add_argument("--port", type=_port, default=KUBELET_PORT, metavar="PORT",
                   help="its HTTPS port; 0 picks a free one (default: %(default)s)")
    g.add_argument("--tls-cert-file", default="", metavar="FILE",
                   help="its serving certificate, issued by the cluster CA (`pybernetes "
                        "server` writes one to DATA_DIR/pki); without it the kubelet serves "
                        "nothing and `kubectl logs/exec` cannot reach its pods")
    g.add_argument("--tls-private-key-file", default="", metavar="FILE",
                   help="the key of --tls-cert-file")
    g.add_argument("--client-ca-file", default="", metavar="FILE",
                   help="CA of the client certificates it accepts (the API server's "
                        "kubelet client cert)")
    g.add_argument("--crash-loop-backoff-max", type=flags.duration, default=300.0, metavar="SECONDS",
                   help="the longest restart (and image pull) back-off; it starts at "
                        "min(10s, this) and doubles (default: %(default)s)")
    g.add_argument("--crash-loop-backoff-initial", type=flags.duration, default=10.0,
                   metavar="SECONDS",
                   help="the first restart back-off (upstream: 10s; 1s with its "
                        "ReduceDefaultCrashLoopBackOffDecay gate) (default: %(default)s)")
    g.add_argument("--sync-frequency", type=flags.duration, default=60.0, metavar="SECONDS",
                   help="how often each running pod is synced even when nothing about it "
                        "changed (upstream's default, 1m); ConfigMap and Secret changes reach "
                        "mounted volumes within about this long (default: %(default)s)")
    g.add_argument("--parallel-pod-starts", type=int, default=None, metavar="N",
                   help="how many pods are started at once (sandbox, network, containers; "
                        "not image pulls); the others wait their turn, so in a burst the "
                        "first pods run sooner; 0: no bound (default: 4 per CPU)")


def _port(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {n}")
    return n


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
        return _check_real(args)
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
    main = _run_fake(args) if args.runtime == "fake" else _run_real(args)
    asyncio.run(_until_signalled(main))
    return 0


def _check_real(args: argparse.Namespace) -> str:
    import ipaddress
    import os
    import shutil
    if args.fake_nodes != 1:
        return "--fake-nodes is for --runtime fake only"
    if args.runtime == "runc" and os.geteuid() != 0:
        print("pybernetes kubelet: not running as root: --runtime runc needs root; using "
              "--runtime process (host processes, no isolation)", file=sys.stderr)
        args.runtime = "process"
    elif args.runtime == "runc" and not (shutil.which("runc") or os.path.exists("/usr/sbin/runc")):
        print("pybernetes kubelet: runc not found (install the runc package); using "
              "--runtime process (host processes, no isolation)", file=sys.stderr)
        args.runtime = "process"
    elif args.runtime == "runc" and not shutil.which("conmon"):
        print("pybernetes kubelet: conmon not found (install the conmon package: it "
              "monitors each runc container); using --runtime process (host processes, "
              "no isolation)", file=sys.stderr)
        args.runtime = "process"
    for flag, value in (("--pod-cidr", args.pod_cidr),):
        if value:
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                return f"{flag}: not a CIDR: {value!r}"
    for ip in filter(None, args.cluster_dns.split(",")):
        try:
            ipaddress.ip_address(ip.strip())
        except ValueError:
            return f"--cluster-dns: not an IP address: {ip!r}"
    if args.image_gc_low_threshold > args.image_gc_high_threshold:
        return "--image-gc-low-threshold must not be above --image-gc-high-threshold"
    if args.registries and not os.path.isfile(args.registries):
        return f"--registries: no such file: {args.registries}"
    if len(args.cni_bridge) > 15:
        return f"--cni-bridge: {args.cni_bridge!r} is longer than 15 characters"
    return _check_tls(args)


def _check_tls(args: argparse.Namespace) -> str:
    import os
    if bool(args.tls_cert_file) != bool(args.tls_private_key_file):
        return "--tls-cert-file and --tls-private-key-file go together"
    if args.tls_cert_file and not args.client_ca_file:
        return ("--client-ca-file is needed with --tls-cert-file (the CA of the API "
                "server's client certificate)")
    for flag, path in (("--tls-cert-file", args.tls_cert_file),
                       ("--tls-private-key-file", args.tls_private_key_file),
                       ("--client-ca-file", args.client_ca_file)):
        if path and not os.path.isfile(path):
            return f"{flag}: no such file: {path}"
    return ""


async def _run_real(args: argparse.Namespace) -> None:
    import os

    from pybernetes.client.api import APIClient
    from pybernetes.client.events import EventRecorder
    from pybernetes.kubelet.agent import Kubelet, KubeletOptions, LazyPodNetwork
    from pybernetes.kubelet.images import ImageStore
    from pybernetes.kubelet.images.registries import RegistryConfig
    from pybernetes.kubelet.machine import machine_node_config
    root = os.path.abspath(args.root_dir)
    os.makedirs(root, exist_ok=True)
    logs = args.pod_logs_dir or ("/var/log/pods" if root == "/var/lib/pybernetes/kubelet"
                                 else os.path.join(root, "logs", "pods"))
    network = None
    if args.runtime == "runc":
        from pybernetes.kubelet.runtime.runc import RuncRuntime
        network = LazyPodNetwork(os.path.join(root, "cni"), args.cni_bridge)
        runtime = RuncRuntime(root, network=network)
    else:
        from pybernetes.kubelet.runtime.process import ProcessRuntime
        runtime = ProcessRuntime(root)
    images = ImageStore(os.path.join(root, "images"), RegistryConfig.load(args.registries or None))
    node = machine_node_config(args.node_name, root, await runtime.version(), args.node_ip,
                               args.pods, args.node_labels, args.register_with_taints)
    opts = KubeletOptions(
        node_name=args.node_name, root_dir=root, pod_logs_dir=logs, pod_cidr=args.pod_cidr,
        cluster_dns=[ip.strip() for ip in args.cluster_dns.split(",") if ip.strip()],
        cluster_domain=args.cluster_domain, image_gc_high=args.image_gc_high_threshold,
        image_gc_low=args.image_gc_low_threshold,
        image_gc_period=max(0.1, args.image_gc_period),
        image_minimum_gc_age=args.image_minimum_gc_age,
        crash_loop_backoff_max=args.crash_loop_backoff_max,
        crash_loop_backoff_initial=args.crash_loop_backoff_initial,
        image_pull_backoff_max=args.crash_loop_backoff_max,
        sync_period=max(0.1, args.sync_frequency))
    if args.parallel_pod_starts is not None:
        opts.parallel_pod_starts = args.parallel_pod_starts
    server = await _start_server(args, runtime)
    node.kubelet_port = server.port if server is not None else 0
    node.runtime_handlers = runtime.runtime_handlers()
    client = await APIClient.from_kubeconfig(args.kubeconfig, user_agent="pybernetes-kubelet",
                                             connections=args.api_concurrency + 16)
    try:
        kubelet = Kubelet(client, runtime, images, node, opts,
                          EventRecorder(client, "kubelet", args.node_name), network,
                          heartbeat_period=max(0.1, args.heartbeat_period),
                          status_update_period=max(0.1, args.status_update_period),
                          lease_duration=args.lease_duration)
        await kubelet.run()
    finally:
        await client.close()
        if server is not None:
            await server.stop()


async def _start_server(args: argparse.Namespace, runtime):
    """The kubelet's HTTPS server for the API server (logs, exec, attach, port-forward),
    or None without a serving certificate."""
    import logging

    from pybernetes.kubelet.runtime_streaming import provider_for
    from pybernetes.kubelet.server import KubeletServer
    if not args.tls_cert_file:
        logging.getLogger(__name__).warning(
            "no --tls-cert-file: the kubelet serves no logs, exec, attach or port-forward")
        return None
    server = KubeletServer(provider_for(runtime), args.address, args.port, args.tls_cert_file,
                           args.tls_private_key_file, args.client_ca_file)
    try:
        await server.start()
    except OSError as e:
        raise SystemExit(f"pybernetes kubelet: cannot serve on {args.address}:{args.port}: "
                         f"{e.strerror or e} (pick another with --port)") from None
    return server


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
