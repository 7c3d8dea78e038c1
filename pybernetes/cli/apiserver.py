"""`pybernetes apiserver`: the API server alone (REST, watch, authn/authz, storage)."""
from __future__ import annotations

import argparse
import ipaddress
import sys

from pybernetes.cli import flags

DESCRIPTION = """\
Run the Kubernetes API server: it serves the Kubernetes REST API over HTTPS and
is the only component that touches storage. `pybernetes server` starts it for
you; run it alone to split components across processes or machines.

Without --tls-cert-file/--tls-private-key-file/--client-ca-file it uses (and on
first run creates) the certificates in DATA_DIR/pki.
"""

EPILOG = """\
examples:
  pybernetes apiserver --data-dir /tmp/pyb --secure-port 6443
  pybernetes apiserver --storage etcd --etcd-endpoints http://127.0.0.1:2379
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("apiserver", help="run the API server only",
                       description=DESCRIPTION, epilog=EPILOG,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    flags.add_data_dir(p)
    p.add_argument("--bind-address", default="127.0.0.1", metavar="IP",
                   help="address to listen on (default: %(default)s; 0.0.0.0 for all)")
    p.add_argument("--advertise-address", default="", metavar="IP",
                   help="address in-cluster clients reach this server at (the `kubernetes` "
                        "Service's endpoint); served as well when --bind-address does not "
                        "cover it (default: the bind address, or this machine's primary "
                        "address when binding to all)")
    p.add_argument("--secure-port", type=flags.port, default=6443, metavar="PORT",
                   help="HTTPS port (default: %(default)s)")
    flags.add_storage(p)
    p.add_argument("--tls-cert-file", default="", metavar="FILE",
                   help="serving certificate (PEM)")
    p.add_argument("--tls-private-key-file", default="", metavar="FILE",
                   help="private key of the serving certificate (PEM)")
    p.add_argument("--client-ca-file", default="", metavar="FILE",
                   help="CA that signs client certificates; a client cert's CN is the user "
                        "name and its O fields are the groups")
    p.add_argument("--service-cluster-ip-range", default="10.43.0.0/16", metavar="CIDR",
                   type=_cidr, help="Service ClusterIPs come from here (default: %(default)s)")
    p.add_argument("--service-node-port-range", default="30000-32767", metavar="LOW-HIGH",
                   type=_port_range, help="NodePorts come from here (default: %(default)s)")
    p.add_argument("--disable-admission-plugins", default="", metavar="LIST",
                   type=_admission_plugins,
                   help="comma-separated admission plugins to turn off (e.g. ServiceAccount)")
    p.add_argument("--authorization-mode", default="AlwaysAllow", metavar="MODES",
                   type=_authorization_modes,
                   help="comma-separated authorizers, asked in order, first allow wins: "
                        "AlwaysAllow (every authenticated user may do everything), RBAC "
                        "(Roles and bindings), AlwaysDeny; system:masters is always allowed "
                        "(default: %(default)s)")
    flags.add_log_level(p)
    p.set_defaults(func=run)


def _authorization_modes(value: str) -> list[str]:
    from pybernetes.auth.authz import parse_modes
    try:
        return parse_modes(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _admission_plugins(value: str) -> list[str]:
    from pybernetes.admission.chain import plugin_names
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in plugin_names()]
    if unknown:
        raise argparse.ArgumentTypeError(f"{', '.join(unknown)} (known: "
                                         f"{', '.join(plugin_names())})")
    return names


def config_from_args(args: argparse.Namespace):
    """The APIServerConfig these flags describe, with the data dir's PKI filling TLS gaps."""
    from pybernetes.apiserver.config import APIServerConfig
    config = APIServerConfig(
        data_dir=args.data_dir, bind_address=args.bind_address,
        advertise_address=args.advertise_address, secure_port=args.secure_port,
        storage=args.storage, etcd_endpoints=list(args.etcd_endpoints),
        tls_cert_file=args.tls_cert_file, tls_private_key_file=args.tls_private_key_file,
        client_ca_file=args.client_ca_file,
        service_cluster_ip_range=args.service_cluster_ip_range,
        service_node_port_range=args.service_node_port_range, log_level=args.log_level,
        disable_admission_plugins=list(getattr(args, "disable_admission_plugins", None) or []),
        authorization_modes=_modes_arg(getattr(args, "authorization_mode", None)))
    if bool(config.tls_cert_file) != bool(config.tls_private_key_file):
        raise SystemExit("pybernetes apiserver: --tls-cert-file and --tls-private-key-file "
                         "must be given together")
    if not (config.tls_cert_file and config.client_ca_file):
        from pybernetes.auth.pki import ensure_pki
        from pybernetes.apiserver.bootstrap import first_service_ip
        pki = ensure_pki(config.pki_dir, flags.serving_hosts(
            config.bind_address, config.advertise_address,
            first_service_ip(config.service_cluster_ip_range)))
        config.tls_cert_file = config.tls_cert_file or pki.server_crt
        config.tls_private_key_file = config.tls_private_key_file or pki.server_key
        config.client_ca_file = config.client_ca_file or pki.ca_crt
    return config


def _modes_arg(value: list[str] | str | None) -> list[str]:
    """The parsed flag (argparse does not run `type` on a string default)."""
    if value is None:
        return ["AlwaysAllow"]
    return _authorization_modes(value) if isinstance(value, str) else list(value)


def run(args: argparse.Namespace) -> int:
    flags.setup_logging(args.log_level)
    try:
        from pybernetes.apiserver.server import run as serve
    except ImportError as e:
        print(f"pybernetes apiserver: the API server is not available: {e}", file=sys.stderr)
        return 1
    serve(config_from_args(args))
    return 0


def _cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value, strict=True))
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"invalid CIDR {value!r}: {e}") from None


def _port_range(value: str) -> str:
    low, sep, high = value.partition("-")
    try:
        lo, hi = int(low), int(high)
    except ValueError:
        lo = hi = -1
    if not sep or not 1 <= lo <= hi <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port range {value!r} (want LOW-HIGH)")
    return f"{lo}-{hi}"
