"""The proxy's routes (DESIGN.md §6): the service CIDR is a `local` route on lo, so a
packet for any service address is taken in by this machine (DNATed by our rules, or
rejected by them) and never follows the default route; the pod CIDR gets an
`unreachable` route, so a pod address not on one of this node's bridges (their /24s
are more specific) fails here instead of leaving the machine."""
from __future__ import annotations

import logging
from typing import Sequence

from pybernetes.proxy.nftables import run

log = logging.getLogger(__name__)


def wanted(service_cidr: str, cluster_cidr: str) -> list[list[str]]:
    """`ip route` arguments (after add/del) of the routes the proxy keeps."""
    out = []
    if service_cidr:
        out.append(["local", service_cidr, "dev", "lo", "table", "local"])
    if cluster_cidr:
        out.append(["unreachable", cluster_cidr])
    return out


async def ensure(routes: list[list[str]], prefix: Sequence[str] = ()) -> list[list[str]]:
    """Add the routes that are missing; returns those this call added (the ones to
    remove on cleanup). An existing route of the same kind is left as it is."""
    added = []
    for r in routes:
        code, out = await run(list(prefix) + ["ip", "route", "add", *r], check=False)
        if code == 0:
            added.append(r)
            log.info("proxy: route added: %s", " ".join(r))
        elif "File exists" not in out:
            raise OSError(f"ip route add {' '.join(r)}: {out}")
    return added


async def remove(routes: list[list[str]], prefix: Sequence[str] = ()) -> None:
    for r in routes:
        code, out = await run(list(prefix) + ["ip", "route", "del", *r], check=False)
        if code and "No such process" not in out:
            log.warning("proxy: ip route del %s: %s", " ".join(r), out)
