"""Flags and setup shared by several `pybernetes` subcommands."""
from __future__ import annotations

import argparse
import logging
import os
import re
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


def cidr(value: str):
    """An IPv4/IPv6 network like 10.43.0.0/16 (host bits must be zero)."""
    import ipaddress
    try:
        return ipaddress.ip_network(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a CIDR like 10.43.0.0/16: {value!r}") from None


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


def serving_hosts(bind_address: str, *more: str) -> list[str]:
    """Names the serving certificate needs beyond the defaults: this host, the bind
    address and `more` (the advertised address, the `kubernetes` Service's IP)."""
    hosts = [socket.gethostname()]
    for host in (bind_address, *more):
        if host not in ("0.0.0.0", "::", ""):
            hosts.append(host)
    return hosts


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s)")


def duration(value: str) -> float:
    """Seconds, from a Go duration as upstream's flags take it (15s, 1m30s, 500ms) or a
    plain number of seconds; never negative."""
    try:
        seconds = float(value)
    except ValueError:
        scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
        parts = _DURATION_PART.findall(value)
        if not parts or "".join(n + u for n, u in parts) != value:
            raise argparse.ArgumentTypeError(
                f"invalid duration {value!r} (e.g. 15s, 1m, 500ms)") from None
        seconds = sum(float(n) * scale[u] for n, u in parts)
    if seconds < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {value}")
    return seconds


def positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {value!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {n}")
    return n


def boolean(s: str) -> bool:
    """A flag value as Go's flag package reads booleans: true/false, 1/0 (yes/no too)."""
    if s.lower() in ("true", "1", "yes"):
        return True
    if s.lower() in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {s!r} (true or false)")


def add_leader_election(p: argparse.ArgumentParser, lease: str) -> None:
    """--leader-elect and its timing, with upstream's names and defaults."""
    p.add_argument("--leader-elect", type=boolean, nargs="?", const=True, default=True,
                   metavar="BOOL",
                   help=f"run only while holding the kube-system/{lease} Lease, so several "
                        "copies can run for high availability (default: true)")
    p.add_argument("--leader-elect-lease-duration", type=duration, default=15.0,
                   metavar="DURATION",
                   help="how long standbys wait after the leader's last renewal before one "
                        "takes over (default: 15s)")
    p.add_argument("--leader-elect-renew-deadline", type=duration, default=10.0,
                   metavar="DURATION",
                   help="how long the leader keeps retrying a renewal before it stops "
                        "leading and exits; less than the lease duration (default: 10s)")
    p.add_argument("--leader-elect-retry-period", type=duration, default=2.0,
                   metavar="DURATION",
                   help="how often candidates try to acquire, and the leader to renew, "
                        "the Lease (default: 2s)")


def leader_election_timing(args: argparse.Namespace) -> dict[str, float]:
    """LeaderElector keyword arguments from the flags; ValueError when inconsistent."""
    timing = {"lease_duration": args.leader_elect_lease_duration,
              "renew_deadline": args.leader_elect_renew_deadline,
              "retry_period": args.leader_elect_retry_period}
    if not timing["retry_period"] > 0:
        raise ValueError("--leader-elect-retry-period must be greater than zero")
    if not timing["renew_deadline"] > timing["retry_period"]:
        raise ValueError("--leader-elect-renew-deadline must be greater than "
                         "--leader-elect-retry-period")
    if not timing["lease_duration"] > timing["renew_deadline"]:
        raise ValueError("--leader-elect-lease-duration must be greater than "
                         "--leader-elect-renew-deadline")
    return timing


def leadership_lost(component: str, err: Exception) -> int:
    """Log upstream's line for a leader that could not keep its Lease; the exit code."""
    logging.getLogger(f"pybernetes.{component}").error("leaderelection lost: %s", err)
    return 1
