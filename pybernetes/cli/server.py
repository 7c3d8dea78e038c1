"""`pybernetes server`: a whole cluster on this machine, k3s style.

Creates the data dir and certificates, writes an admin kubeconfig, then runs each
component as a child process (restarting any that dies) until SIGINT/SIGTERM.
"""
from __future__ import annotations

import argparse
import asyncio
import errno
import fcntl
import os
import signal
import socket
import sys
import time
from contextlib import nullcontext

from pybernetes.cli import flags
from pybernetes.cli.supervisor import Component, Supervisor

READY_TIMEOUT = 120.0  # seconds to wait for the apiserver's /readyz before giving up

DESCRIPTION = """\
Run a complete pybernetes cluster on this machine, in the foreground.

It creates DATA_DIR (certificates in DATA_DIR/pki, logs in DATA_DIR/logs),
writes DATA_DIR/admin.kubeconfig for kubectl, starts every component as a child
process, restarts any that crashes, and stops them all on Ctrl-C or SIGTERM.
Components: {components}.
"""

EPILOG = """\
examples:
  pybernetes server
      start with the defaults: https://127.0.0.1:6443, SQLite storage
  pybernetes server --write-kubeconfig ~/.kube/config
      also write the admin kubeconfig where kubectl looks by default
  pybernetes server --data-dir /tmp/pyb --https-listen-port 7443
      a second, throwaway cluster beside the first one
  pybernetes server --storage etcd --etcd-endpoints http://127.0.0.1:2379
      keep the cluster state in an existing etcd
  pybernetes server --kubelet-runtime fake --kubelet-arg fake-nodes=3
      three simulated nodes (the fake runtime: nothing runs) instead of this machine

then, in another terminal:
  export KUBECONFIG=DATA_DIR/admin.kubeconfig
  kubectl get --raw /readyz
"""

# Components `pybernetes server` runs. The apiserver is what every other one talks to.
REQUIRED = ("apiserver",)
# k3s' --disable names for parts that run inside a component: name -> its flag there
BUILT_IN = {"servicelb": ("controller-manager", "--controllers=*,-service-lb")}
OPTIONAL: tuple[str, ...] = ("controller-manager", "scheduler", "kubelet", "proxy", "dns",
                             "ingress")

# k3s-style pass-through flags: --kubelet-arg fake-nodes=3 adds --fake-nodes=3
PASSTHROUGH = {"apiserver": "kube-apiserver-arg",
               "controller-manager": "kube-controller-manager-arg",
               "scheduler": "kube-scheduler-arg", "kubelet": "kubelet-arg",
               "proxy": "kube-proxy-arg", "dns": "dns-arg", "ingress": "ingress-arg"}

# Each component's identity, as upstream names them (user CN, groups).
IDENTITIES = {"controller-manager": ("system:kube-controller-manager", []),
              "scheduler": ("system:kube-scheduler", []),
              "proxy": ("system:kube-proxy", []),
              "dns": ("system:pybernetes:dns", []),
              "ingress": ("system:pybernetes:ingress", [])}
RUNTIMES = ("runc", "process", "fake")
FAKE_RUNTIME_NOTE = ("the node uses the fake runtime: pods are simulated (they go Running and "
                     "Ready, nothing is executed); real containers come with the runc runtime")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("server", help="run a whole cluster on this machine (start here)",
                       description=DESCRIPTION.format(components=", ".join(REQUIRED + OPTIONAL)),
                       epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add_data_dir(p)
    p.add_argument("--https-listen-port", type=flags.port, default=6443, metavar="PORT",
                   help="HTTPS port of the API server (default: %(default)s)")
    p.add_argument("--bind-address", default="127.0.0.1", metavar="IP",
                   help="address the API server listens on (default: %(default)s; "
                        "0.0.0.0 for all interfaces)")
    p.add_argument("--advertise-address", default="", metavar="IP",
                   help="address pods reach the API server at through the `kubernetes` "
                        "Service (default: this machine's primary address when a real node "
                        "runs pods, else the bind address)")
    p.add_argument("--write-kubeconfig", metavar="FILE", default="",
                   help="also write the admin kubeconfig to FILE (mode 0600)")
    flags.add_storage(p)
    p.add_argument("--node-name", default=socket.gethostname().lower(), metavar="NAME",
                   help="name of this machine's Node (default: the host name)")
    p.add_argument("--kubelet-runtime", default="", choices=RUNTIMES,
                   help="how this machine's node runs pods: 'runc' (containers, needs root, "
                        "runc and the CNI plugins), 'process' (host processes, no isolation) "
                        "or 'fake' (simulated nodes, nothing runs; --kubelet-arg fake-nodes=N "
                        "for N of them) (default: runc where it can run, else process)")
    p.add_argument("--cluster-cidr", default="10.42.0.0/16", metavar="CIDR",
                   help="pod IPs come from here, one /24 per node (default: %(default)s)")
    p.add_argument("--service-cidr", default="10.43.0.0/16", type=flags.cidr, metavar="CIDR",
                   help="Service ClusterIPs come from here (default: %(default)s)")
    p.add_argument("--service-node-port-range", default="30000-32767", metavar="LOW-HIGH",
                   help="NodePorts come from here (default: %(default)s)")
    p.add_argument("--cluster-dns", default="", metavar="IP",
                   help="the cluster DNS Service's IP, written into pods' resolv.conf "
                        "(default: the 10th address of --service-cidr, 10.43.0.10)")
    p.add_argument("--cluster-domain", default="cluster.local", metavar="DOMAIN",
                   help="the cluster's DNS domain (default: %(default)s)")
    p.add_argument("--default-local-storage-path", default="", metavar="DIR",
                   help="where the local-path StorageClass keeps volumes (as k3s; default: "
                        "DATA_DIR/storage)")
    for component, flag in PASSTHROUGH.items():
        p.add_argument(f"--{flag}", action="append", default=[], metavar="FLAG=VALUE",
                       help=f"extra flag for the {component} (repeatable, as k3s), e.g. "
                            f"--{flag} log-level=debug")
    p.add_argument("--disable", action="append", default=[], metavar="COMPONENT",
                   help="do not run COMPONENT (repeatable); can be disabled: "
                        f"{', '.join(OPTIONAL + tuple(BUILT_IN))} (servicelb: LoadBalancer "
                        "Services get no node addresses)")
    p.add_argument("--authorization-mode", default="AlwaysAllow", metavar="MODES",
                   help="the API server's authorizers, comma-separated, first allow wins: "
                        "AlwaysAllow (every authenticated user may do everything) or RBAC "
                        "(Roles and bindings; each component gets its bootstrap role) "
                        "(default: %(default)s)")
    flags.add_log_level(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    problem = _check_disable(args.disable) or _check_runtime(args) or \
        _check_services(args) or _check_authorization(args)
    if problem:
        print(f"pybernetes server: {problem}", file=sys.stderr)
        return 2
    data_dir = os.path.abspath(os.path.expanduser(args.data_dir))
    try:
        os.makedirs(os.path.join(data_dir, "logs"), exist_ok=True)
        os.chmod(data_dir, 0o700)  # it holds private keys
    except OSError as e:
        print(f"pybernetes server: cannot use data dir {data_dir}: {e.strerror} "
              "(pick another with --data-dir)", file=sys.stderr)
        return 1
    lock_fd, holder = _lock(data_dir)
    if lock_fd is None:
        print(f"pybernetes server: data dir {data_dir} is in use by another pybernetes server"
              f"{f' (pid {holder})' if holder else ''}; stop it or pick another --data-dir",
              file=sys.stderr)
        return 1
    try:
        return _run_locked(args, data_dir)
    finally:
        os.close(lock_fd)


def _run_locked(args: argparse.Namespace, data_dir: str) -> int:
    from rich.console import Console
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    ui = _Progress(console)
    port_problem = _port_in_use(args.bind_address, args.https_listen_port)
    if port_problem:
        console.print(f"[red]pybernetes server:[/] {port_problem}")
        return 1
    with ui.status("generating certificates"):
        from pybernetes.auth.pki import ensure_pki
        from pybernetes.apiserver.bootstrap import first_service_ip
        pki = ensure_pki(os.path.join(data_dir, "pki"), flags.serving_hosts(
            args.bind_address, args.advertise_address, first_service_ip(str(args.service_cidr))))
        kubeconfigs = _write_kubeconfigs(args, data_dir, pki)
        component_kubeconfigs = _component_kubeconfigs(args, data_dir, pki)
    for path in kubeconfigs:
        ui.step(f"wrote kubeconfig {path}")
    if "kubelet" not in args.disable and args.kubelet_runtime != "fake":
        with ui.status("issuing the kubelet's serving certificate"):
            kubelet_tls = _kubelet_serving_cert(args, pki)
    else:
        kubelet_tls = ("", "")
    ingress_problem = _ingress_problem(args)
    if ingress_problem:
        ui.warn(f"the ingress controller does not run: {ingress_problem}")
        args.disable.append("ingress")
    dns_problem = _dns_problem(args)
    if dns_problem:
        ui.warn(f"cluster DNS does not run: {dns_problem}")
        args.disable.append("dns")
    components = _components(args, data_dir, pki, component_kubeconfigs, kubelet_tls)
    if "kubelet" in (c.name for c in components):
        if args.kubelet_runtime == "fake":
            ui.warn(FAKE_RUNTIME_NOTE)
        else:
            ui.step(f"the node runs pods with the {args.kubelet_runtime} runtime: "
                    f"{args.runtime_reason}")
    return asyncio.run(_supervise(args, data_dir, pki, components, kubeconfigs[-1], ui))


async def _supervise(args, data_dir: str, pki, components: list[Component],
                     kubeconfig: str, ui: "_Progress") -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    sup = Supervisor(components, os.path.join(data_dir, "logs"), report=ui.warn)
    code = 0
    with ui.status(f"starting {', '.join(c.name for c in components)}"):
        await sup.start()
    url = f"https://{flags.url_host(args.bind_address)}:{args.https_listen_port}"
    with ui.status("waiting for apiserver to be ready"):
        ready = await _wait_ready(url, pki, stop, READY_TIMEOUT)
    if ready:
        ui.ready(kubeconfig)
    elif not stop.is_set():
        ui.fail(f"the apiserver was not ready after {READY_TIMEOUT:g}s; see "
                f"{os.path.join(data_dir, 'logs', 'apiserver.log')}")
        code = 1
        stop.set()
    await stop.wait()
    with ui.status("stopping"):
        await sup.stop()
    ui.step("stopped")
    return code


def _components(args: argparse.Namespace, data_dir: str, pki,
                kubeconfigs: dict[str, str],
                kubelet_tls: tuple[str, str] = ("", "")) -> list[Component]:
    """One Component per child process, in start order, minus --disable'd ones."""
    base = [sys.executable, "-m", "pybernetes.cli.main"]
    env = {"PYTHONPATH": _pythonpath()}
    apiserver = Component("apiserver", base + [
        "apiserver", "--data-dir", data_dir, "--bind-address", args.bind_address,
        "--secure-port", str(args.https_listen_port), "--storage", args.storage,
        "--etcd-endpoints", ",".join(args.etcd_endpoints),
        "--service-cluster-ip-range", str(args.service_cidr),
        "--service-node-port-range", args.service_node_port_range,
        "--advertise-address", args.advertise_address,
        "--tls-cert-file", pki.server_crt, "--tls-private-key-file", pki.server_key,
        "--client-ca-file", pki.ca_crt, "--log-level", args.log_level,
        "--authorization-mode", args.authorization_mode], env)
    controller_manager = Component("controller-manager", base + [
        "controller-manager", "--kubeconfig", kubeconfigs["controller-manager"],
        "--leader-elect", "--root-ca-file", pki.ca_crt, "--cluster-cidr", args.cluster_cidr,
        "--service-account-private-key-file", pki.sa_key,
        "--default-local-storage-path",
        args.default_local_storage_path or os.path.join(data_dir, "storage"),
        "--log-level", args.log_level], env)
    scheduler = Component("scheduler", base + [
        "scheduler", "--kubeconfig", kubeconfigs["scheduler"], "--log-level", args.log_level],
        env)
    kubelet = Component("kubelet", base + [
        "kubelet", "--kubeconfig", kubeconfigs["kubelet"], "--runtime", args.kubelet_runtime,
        "--node-name", args.node_name, "--log-level", args.log_level], env)
    if "dns" not in args.disable:
        kubelet.argv += ["--cluster-dns", args.cluster_dns,
                         "--cluster-domain", args.cluster_domain]
    if args.kubelet_runtime != "fake":
        root = os.path.join(data_dir, "kubelet")
        logs = "/var/log/pods" if root == "/var/lib/pybernetes/kubelet" else \
            os.path.join(root, "logs", "pods")
        kubelet.argv += ["--root-dir", root, "--pod-logs-dir", logs]
        if kubelet_tls[0]:
            kubelet.argv += ["--tls-cert-file", kubelet_tls[0], "--tls-private-key-file",
                             kubelet_tls[1], "--client-ca-file", pki.ca_crt]
    dns = Component("dns", base + [
        "dns", "--kubeconfig", kubeconfigs["dns"], "--cluster-dns", args.cluster_dns,
        "--cluster-domain", args.cluster_domain, "--node-name", args.node_name,
        "--log-level", args.log_level], env)
    proxy = Component("proxy", base + [
        "proxy", "--kubeconfig", kubeconfigs["proxy"], "--hostname-override", args.node_name,
        "--cluster-cidr", str(args.cluster_cidr),
        "--service-cluster-ip-range", str(args.service_cidr), "--log-level", args.log_level],
        env)
    if args.kubelet_runtime == "process":  # pods on the host network: no kernel NAT to them
        proxy.argv += ["--proxy-mode", "userspace"]
    ingress = Component("ingress", base + [
        "ingress", "--kubeconfig", kubeconfigs["ingress"], "--node-name", args.node_name,
        "--state-dir", os.path.join(data_dir, "ingress"), "--log-level", args.log_level], env)
    # simulated pods have no network: a proxy would only program this host's nftables
    skip = set(args.disable) | ({"proxy"} if args.kubelet_runtime == "fake" else set())
    chosen = [c for c in [apiserver, controller_manager, scheduler, kubelet, dns, proxy, ingress]
              if c.name not in skip]
    for c in chosen:
        c.argv += [flag for name, (component, flag) in BUILT_IN.items()
                   if name in args.disable and component == c.name]
        extra = getattr(args, PASSTHROUGH[c.name].replace("-", "_"))
        c.argv += [f"--{a.lstrip('-')}" for a in extra]
    return chosen


def _component_kubeconfigs(args: argparse.Namespace, data_dir: str, pki) -> dict[str, str]:
    """A client certificate and kubeconfig per component, named as upstream's
    (system:kube-scheduler, system:node:NAME in system:nodes, ...), so the audit trail
    and, later, RBAC tell them apart."""
    from pybernetes.auth.kubeconfig import write_kubeconfig
    from pybernetes.auth.pki import issue_client_cert
    url = f"https://{flags.url_host(args.bind_address)}:{args.https_listen_port}"
    identities = dict(IDENTITIES, kubelet=(f"system:node:{args.node_name}", ["system:nodes"]))
    paths = {}
    for name, (user, groups) in identities.items():
        crt, key = issue_client_cert(pki, user, groups, os.path.join(pki.dir, f"{name}.crt"),
                                     os.path.join(pki.dir, f"{name}.key"))
        paths[name] = write_kubeconfig(os.path.join(data_dir, f"{name}.kubeconfig"), url,
                                       _read(pki.ca_crt), _read(crt), _read(key), user=user)
    return paths


def _dns_problem(args: argparse.Namespace) -> str:
    """Why cluster DNS cannot run here ("" if it can): port 53 needs root unless
    --dns-arg picks another (then pods reach it only through the proxy's DNAT)."""
    if "dns" in args.disable or os.geteuid() == 0:
        return ""
    if any(a.lstrip("-").startswith("dns-port") for a in args.dns_arg):
        return ""
    return ("port 53 needs root (pick another with --dns-arg dns-port=5353); pods get the "
            "node's resolvers instead")


def _ingress_problem(args: argparse.Namespace) -> str:
    """Why the ingress controller cannot run here ("" if it can): it needs nginx, and
    ports 80/443 need root unless --ingress-arg picks others."""
    if "ingress" in args.disable:
        return ""
    from pybernetes.ingress.nginx import APT_HINT, find_nginx
    if find_nginx() is None:
        return f"nginx is not installed ({APT_HINT}; or --disable ingress)"
    ports_given = any(a.lstrip("-").startswith(("http-port", "https-port"))
                      for a in args.ingress_arg)
    if os.geteuid() != 0 and not ports_given:
        return ("ports 80 and 443 need root (or --ingress-arg http-port=8080 "
                "--ingress-arg https-port=8443)")
    return ""


def _check_runtime(args: argparse.Namespace) -> str:
    """Pick the node's runtime when none was asked for (saying why in
    args.runtime_reason); fake-nodes=N only makes sense with simulated nodes."""
    if not args.kubelet_runtime:
        args.kubelet_runtime, args.runtime_reason = default_runtime()
    else:
        args.runtime_reason = "asked for with --kubelet-runtime"
    fake_nodes = [a for a in args.kubelet_arg if a.lstrip("-").startswith("fake-nodes")]
    if fake_nodes and args.kubelet_runtime != "fake":
        return (f"--kubelet-arg {fake_nodes[0]}: simulated nodes need --kubelet-runtime fake "
                f"(the {args.kubelet_runtime} runtime runs this machine as one node)")
    return ""


def default_runtime() -> tuple[str, str]:
    """runc when it can run here (root, runc, the CNI plugins), else process; and why."""
    import shutil

    from pybernetes.kubelet.network.cni import DEFAULT_BIN_DIRS
    if os.geteuid() != 0:
        return "process", "not running as root, which runc needs (no isolation between pods)"
    if not (shutil.which("runc") or os.path.exists("/usr/sbin/runc")):
        return "process", "runc is not installed (no isolation between pods)"
    if not shutil.which("conmon"):
        return "process", "conmon (runc containers' monitor) is not installed (no isolation " \
            "between pods)"
    if not any(os.access(os.path.join(d, "bridge"), os.X_OK) for d in DEFAULT_BIN_DIRS):
        return "process", (f"the CNI plugins are not installed (looked in "
                           f"{', '.join(DEFAULT_BIN_DIRS)}; no isolation between pods)")
    return "runc", "root, with runc, conmon and the CNI plugins installed"


def _kubelet_serving_cert(args: argparse.Namespace, pki) -> tuple[str, str]:
    """The kubelet's serving cert from the cluster CA (it has no CA key of its own)
    for every address the API server may dial it at."""
    from pybernetes.auth.pki import issue_serving_cert
    from pybernetes.kubelet.machine import primary_ip
    hosts = [args.node_name, "localhost", "127.0.0.1", primary_ip()]
    return issue_serving_cert(pki, args.node_name, hosts,
                              os.path.join(pki.dir, "kubelet-serving.crt"),
                              os.path.join(pki.dir, "kubelet-serving.key"))


def _check_authorization(args: argparse.Namespace) -> str:
    from pybernetes.auth.authz import parse_modes
    try:
        parse_modes(args.authorization_mode)
    except ValueError as e:
        return f"--authorization-mode: {e}"
    return ""


def _check_services(args: argparse.Namespace) -> str:
    """--cluster-dns defaults to the service CIDR's 10th address and must lie in it."""
    import ipaddress
    net = args.service_cidr
    if not args.cluster_dns:
        if net.num_addresses < 16:
            return f"--service-cidr {net}: too small (needs room for the cluster DNS address)"
        args.cluster_dns = str(net[10])
    try:
        dns = ipaddress.ip_address(args.cluster_dns)
    except ValueError:
        return f"--cluster-dns: not an IP address: {args.cluster_dns!r}"
    if dns not in net:
        return f"--cluster-dns {dns}: not inside --service-cidr {net}"
    if not args.advertise_address and "kubelet" not in args.disable \
            and args.kubelet_runtime != "fake":
        from pybernetes.kubelet.machine import primary_ip
        args.advertise_address = primary_ip()   # pods cannot reach a loopback-bound server
    low, _, high = args.service_node_port_range.partition("-")
    if not (low.isdigit() and high.isdigit() and 0 < int(low) <= int(high) <= 65535):
        return (f"--service-node-port-range: want LOW-HIGH like 30000-32767, "
                f"got {args.service_node_port_range!r}")
    return ""


def _check_disable(disabled: list[str]) -> str:
    for name in disabled:
        if name in REQUIRED:
            return (f"--disable {name}: the {name} cannot be disabled, every other component "
                    "talks to it (run single components with `pybernetes <component>` instead)")
        if name not in OPTIONAL and name not in BUILT_IN:
            choices = ", ".join(OPTIONAL + tuple(BUILT_IN))
            return f"--disable {name}: unknown component (can be disabled: {choices})"
    return ""


def _lock(data_dir: str) -> tuple[int | None, str]:
    """Hold DATA_DIR/server.lock for our lifetime; (None, holder pid) if someone else does."""
    path = os.path.join(data_dir, "server.lock")
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)  # not inherited by children
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip()
        os.close(fd)
        return None, holder
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd, ""


def _port_in_use(host: str, port: int) -> str:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return (f"port {port} on {host} is already in use "
                        "(another cluster? pick one with --https-listen-port)")
            return f"cannot listen on {host}:{port}: {e.strerror}"
    return ""


def _write_kubeconfigs(args: argparse.Namespace, data_dir: str, pki) -> list[str]:
    from pybernetes.auth.kubeconfig import write_kubeconfig
    url = f"https://{flags.url_host(args.bind_address)}:{args.https_listen_port}"
    pems = [_read(pki.ca_crt), _read(pki.admin_crt), _read(pki.admin_key)]
    paths = [os.path.join(data_dir, "admin.kubeconfig")]
    if args.write_kubeconfig:
        paths.append(os.path.abspath(os.path.expanduser(args.write_kubeconfig)))
    for path in paths:
        write_kubeconfig(path, url, *pems)
    return paths


async def _wait_ready(url: str, pki, stop: asyncio.Event, timeout: float) -> bool:
    """Poll GET /readyz with the admin cert until 200, `stop`, or `timeout` seconds."""
    import aiohttp
    from pybernetes.auth.authn import make_client_ssl_context
    ctx = make_client_ssl_context(pki.ca_crt, pki.admin_crt, pki.admin_key)
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while time.monotonic() < deadline and not stop.is_set():
            try:
                async with session.get(f"{url}/readyz", ssl=ctx) as resp:
                    if resp.status == 200:
                        return True
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                pass
            try:
                await asyncio.wait_for(stop.wait(), timeout=0.25)
            except asyncio.TimeoutError:
                pass
    return False


def _pythonpath() -> str:
    """Children import the same pybernetes as we do, installed or not."""
    import pybernetes
    root = os.path.dirname(os.path.dirname(os.path.abspath(pybernetes.__file__)))
    rest = os.environ.get("PYTHONPATH", "")
    return f"{root}{os.pathsep}{rest}" if rest else root


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


class _Progress:
    """Step lines always; a spinner on a terminal; a panel when the cluster is ready."""

    def __init__(self, console) -> None:
        self.console = console

    def status(self, what: str):
        self.step(what)
        if self.console.is_terminal:
            return self.console.status(f"{what}...")
        return nullcontext()

    def step(self, what: str) -> None:
        self.console.print(f"[bold cyan]pybernetes[/] {what}", markup=True)

    def warn(self, what: str) -> None:
        self.console.print(f"[bold yellow]pybernetes[/] {what}")

    def fail(self, what: str) -> None:
        self.console.print(f"[bold red]pybernetes[/] {what}")

    def ready(self, kubeconfig: str) -> None:
        commands = [f"export KUBECONFIG={kubeconfig}", "kubectl get nodes"]
        if not self.console.is_terminal:  # logs and pipes: plain lines, nothing wrapped
            self.console.print("pybernetes is ready", *(f"  {c}" for c in commands), sep="\n",
                               markup=False)
            return
        from rich.panel import Panel
        from rich.text import Text
        # the commands stay outside the box: a long path must not be cropped or folded
        self.console.print(Panel(Text("pybernetes is ready", style="bold green"), expand=False,
                                 border_style="green", subtitle="try"))
        for c in commands:
            self.console.print(f"  {c}", markup=False, soft_wrap=True)
