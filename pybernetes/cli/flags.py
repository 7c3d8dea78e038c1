"""Flags and setup shared by several `pybernetes` subcommands."""
from __future__ import annotations

import argparse
import logging
import os
import socket
import sys

LOG_LEVELS = ("debug", "info", "warning", "error")


def default_data_dir() -> str:
    """k3s' convention: a system directory as root, the user's data directory otherwise."""
    if os.geteuid() == 0:
        return "/var/lib/pybernetes"
    return os.path.join(os.path.expanduser("~"), ".local", "share", "pybernetes")


def add_data_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", default=default_data_dir(), metavar="DIR",
                   help="where state, certificates and logs live (default: %(default)s)")


def add_storage(p: argparse.ArgumentParser) -> None:
    p.add_argument("--storage", choices=("sqlite", "etcd"), default="sqlite",
                   help="sqlite: embedded database in the data dir (default); "
                        "etcd: an external etcd v3 cluster (see --etcd-endpoints)")
    p.add_argument("--etcd-endpoints", type=comma_list, default=["http://127.0.0.1:2379"],
                   metavar="URL,...",
                   help="etcd client URLs, comma separated (default: http://127.0.0.1:2379); "
                        "used with --storage etcd")


def add_log_level(p: argparse.ArgumentParser) -> None:
    p.add_argument("--log-level", choices=LOG_LEVELS, default="info",
                   help="how much to log to stderr (default: %(default)s)")


def comma_list(value: str) -> list[str]:
    items = [v.strip() for v in value.split(",") if v.strip()]
    if not items:
        raise argparse.ArgumentTypeError("expected at least one value")
    return items


def port(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {value!r}") from None
    if not 1 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range 1-65535: {n}")
    return n


def setup_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr, level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname).1s %(name)s: %(message)s", datefmt="%H:%M:%S")


def url_host(bind_address: str) -> str:
    """The host to put in a URL to reach a server bound to `bind_address`."""
    if bind_address in ("", "0.0.0.0"):
        return "127.0.0.1"
    if bind_address == "::":
        return "[::1]"
    return f"[{bind_address}]" if ":" in bind_address else bind_address


def serving_hosts(bind_address: str) -> list[str]:
    """Names the serving certificate needs beyond the defaults: this host, the bind address."""
    hosts = [socket.gethostname()]
    if bind_address not in ("0.0.0.0", "::", ""):
        hosts.append(bind_address)
    return hosts
