"""`pybernetes ingress`: the Ingress controller of one node (nginx as data plane)."""
from __future__ import annotations

import argparse
import os
import socket
import sys

from pybernetes.cli import flags

DESCRIPTION = """\
Run the Ingress controller of this node: it serves the cluster's Ingresses
(networking.k8s.io/v1) on this machine's HTTP and HTTPS ports, like the Traefik
that k3s ships. `pybernetes server` runs it on every server node (turn it off with
`pybernetes server --disable ingress`).

What it does:
  - creates the default IngressClass `pybernetes` (controller pybernetes.io/ingress,
    annotated ingressclass.kubernetes.io/is-default-class=true) unless it exists;
    it serves Ingresses of that class, and Ingresses without any class;
  - routes by host (exact names and `*.example.com` wildcards) and path (Exact,
    Prefix, ImplementationSpecific = Prefix; the longest match wins, Exact before
    Prefix), to the ready pods of the backend Service (by port number or name);
  - no ready pod: 503; no rule matches: the Ingress's defaultBackend, else 404;
  - HTTPS with the certificate of each host's kubernetes.io/tls Secret (chosen by
    SNI; unknown names get a self-signed default certificate);
  - WebSocket and other Upgrade requests pass through; the backend sees
    X-Forwarded-For, -Proto, -Host and -Port;
  - writes this node's address into each Ingress's status (`kubectl get ingress`
    ADDRESS column).
The data plane is Debian's nginx, driven by a rendered config (STATE_DIR/nginx.conf),
checked with `nginx -t` and reloaded with SIGHUP on every change; this process keeps
one nginx master running. bench/ingress_bench.py shows why nginx (docs/PERFORMANCE.md).
"""

EPILOG = """\
examples:
  pybernetes ingress --kubeconfig DATA_DIR/ingress.kubeconfig --node-name node1
  pybernetes ingress --kubeconfig K --http-port 8080 --https-port 8443 \\
      --bind-address 127.0.0.1            unprivileged ports, this machine only

then:
  kubectl create ingress web --rule="web.example.com/*=web:80"
  kubectl get ingress                      CLASS pybernetes, ADDRESS filled in
  curl -H 'Host: web.example.com' http://127.0.0.1:8080/
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingress", help="run the Ingress controller of a node (nginx)",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kubeconfig", metavar="FILE", required=True,
                   help="kubeconfig with the API server's address and credentials")
    p.add_argument("--node-name", default=socket.gethostname().lower(), metavar="NAME",
                   help="this node: its addresses go into the Ingresses' status "
                        "(default: the host name, %(default)s)")
    p.add_argument("--http-port", type=flags.port, default=80, metavar="PORT",
                   help="HTTP port (default: %(default)s)")
    p.add_argument("--https-port", type=flags.port, default=443, metavar="PORT",
                   help="HTTPS port (default: %(default)s)")
    p.add_argument("--bind-address", type=flags.comma_list, default=["0.0.0.0"],
                   metavar="IP[,IP]", help="addresses to listen on (default: 0.0.0.0)")
    p.add_argument("--status-address", type=flags.comma_list, default=[], metavar="IP[,IP]",
                   help="addresses to publish in status.loadBalancer (default: the node's "
                        "InternalIP/ExternalIP, else this machine's primary address)")
    p.add_argument("--ingress-class", default="pybernetes", metavar="NAME",
                   help="name of the IngressClass to create (default: %(default)s)")
    p.add_argument("--no-default-class", action="store_true",
                   help="do not create the default IngressClass")
    p.add_argument("--state-dir", default="", metavar="DIR",
                   help="nginx.conf, certificates, pid file (default: DATA_DIR/ingress "
                        "under the default data dir)")
    p.add_argument("--nginx", default="", metavar="PATH",
                   help="the nginx binary (default: nginx on PATH or /usr/sbin/nginx)")
    p.add_argument("--workers", default="auto", metavar="N",
                   help="nginx worker processes (default: %(default)s, one per CPU)")
    p.add_argument("--access-log", default="off", metavar="FILE",
                   help="nginx access log (default: %(default)s)")
    p.add_argument("--min-sync-period", default="500ms", type=flags.duration, metavar="D",
                   help="at most one reload per this period; changes in between are "
                        "applied together (default: %(default)s)")
    flags.add_log_level(p)
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> str:
    import ipaddress
    for addr in args.bind_address + args.status_address:
        try:
            ipaddress.ip_address(addr)
        except ValueError:
            return f"not an IP address: {addr!r}"
    if args.http_port == args.https_port:
        return "--http-port and --https-port must differ"
    if not args.workers == "auto" and not (args.workers.isdigit() and int(args.workers) > 0):
        return f"--workers: want a positive number or auto, got {args.workers!r}"
    for addr in args.bind_address:
        for port in (args.http_port, args.https_port):
            problem = _bindable(addr, port)
            if problem:
                return problem
    return ""


def _bindable(addr: str, port: int) -> str:
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((addr, port))
        except OSError as e:
            hint = " (ports below 1024 need root)" if port < 1024 and os.geteuid() else \
                " (another web server or ingress? pick others with --http-port/--https-port)"
            return f"cannot listen on {addr}:{port}: {e.strerror}{hint}"
    return ""


def run(args: argparse.Namespace) -> int:
    from pybernetes.ingress.nginx import APT_HINT, find_nginx
    flags.setup_logging(args.log_level)
    binary = find_nginx(args.nginx)
    if binary is None:
        where = args.nginx or "PATH, /usr/sbin"
        print(f"pybernetes ingress: nginx not found ({where}); the Ingress data plane is "
              f"nginx: {APT_HINT}", file=sys.stderr)
        return 2
    problem = _check(args)
    if problem:
        print(f"pybernetes ingress: {problem}", file=sys.stderr)
        return 2
    state = os.path.abspath(os.path.expanduser(
        args.state_dir or os.path.join(flags.default_data_dir(), "ingress")))
    try:
        os.makedirs(state, mode=0o700, exist_ok=True)
    except OSError as e:
        print(f"pybernetes ingress: cannot use state dir {state}: {e.strerror}", file=sys.stderr)
        return 1
    import asyncio

    from pybernetes.cli.controller_manager import _until_signalled
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    try:
        asyncio.run(_until_signalled(_run(args, binary, state)))
    except OSError as e:
        print(f"pybernetes ingress: {e}", file=sys.stderr)
        return 1
    return 0


def _settings(args: argparse.Namespace, state: str, temp: str):
    from pybernetes.ingress.certs import ensure_default_cert
    from pybernetes.ingress.nginx_conf import Settings
    return Settings(
        http_port=args.http_port, https_port=args.https_port,
        bind_addresses=tuple(args.bind_address), pid_file=os.path.join(state, "nginx.pid"),
        temp_dir=temp, default_cert=ensure_default_cert(os.path.join(state, "default.pem")),
        user=_worker_user(), workers=args.workers, access_log=args.access_log)


def _worker_user() -> str:
    """As root, nginx workers run as nobody (the master keeps root for the ports)."""
    if os.geteuid() != 0:
        return ""
    import grp
    import pwd
    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        return ""
    return f"nobody {grp.getgrgid(user.pw_gid).gr_name}"


def _temp_dir(state: str) -> str:
    """Scratch space for nginx workers: they may run as nobody, who cannot enter the
    (0700) state dir, so it lives under /tmp as nobody's own."""
    import tempfile
    if os.geteuid() != 0:
        path = os.path.join(state, "tmp")
        os.makedirs(path, exist_ok=True)
        return path
    import pwd
    path = tempfile.mkdtemp(prefix="pybernetes-ingress-")
    nobody = pwd.getpwnam("nobody")
    os.chown(path, nobody.pw_uid, nobody.pw_gid)
    return path


async def _run(args: argparse.Namespace, binary: str, state: str) -> None:
    import logging
    import shutil

    from pybernetes.client.api import APIClient
    from pybernetes.ingress.controller import IngressController, Options
    from pybernetes.ingress.nginx import Nginx
    log = logging.getLogger("pybernetes.ingress")
    temp = _temp_dir(state)
    nginx = Nginx(binary, state)
    opts = Options(state_dir=state, settings=_settings(args, state, temp),
                   class_name=args.ingress_class, make_default_class=not args.no_default_class,
                   status_addresses=tuple(args.status_address),
                   min_sync_period=args.min_sync_period, extra={"node_name": args.node_name})
    log.info("ingress: node %s, http %d, https %d on %s, nginx %s, state %s", args.node_name,
             args.http_port, args.https_port, ",".join(args.bind_address), binary, state)
    try:
        async with await APIClient.from_kubeconfig(args.kubeconfig,
                                                   user_agent="pybernetes-ingress") as client:
            await IngressController(client, nginx, opts).run()
    finally:
        await nginx.stop()
        if temp != os.path.join(state, "tmp"):
            shutil.rmtree(temp, ignore_errors=True)
        log.info("ingress: stopped")
