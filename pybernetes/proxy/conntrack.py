"""UDP conntrack cleanup (as kube-proxy does): a UDP "connection" lives in conntrack for
as long as packets keep coming, so a client that keeps sending to a Service would stay
DNATed to an endpoint that is gone. After a sync we delete the entries of endpoints
that left, and the entries of Services that just got their first endpoint (packets sent
while there was none may have made entries that now shadow the new rules). TCP needs
nothing: a gone endpoint resets or times out the connection by itself."""
from __future__ import annotations

import logging
import shutil
from typing import Iterable, Sequence

from pybernetes.proxy.model import ServicePort, targets

log = logging.getLogger(__name__)


def _udp_targets(ports: Iterable[ServicePort], node: str) -> dict[str, tuple[ServicePort, set]]:
    out = {}
    for sp in ports:
        if sp.protocol == "UDP":
            t = targets(sp, node)
            out[sp.key] = (sp, {e.ip for e in t.internal + t.external})
    return out


def stale_udp(old: Iterable[ServicePort], new: Iterable[ServicePort],
              node: str) -> list[list[str]]:
    """conntrack -D argument lists for what changed between two syncs."""
    before, after = _udp_targets(old, node), _udp_targets(new, node)
    cmds: list[list[str]] = []
    for key, (sp, ips) in before.items():
        now = after.get(key)
        gone = ips - (now[1] if now else set())
        addrs = sp.cluster_ips + sp.external_ips + sp.load_balancer_ips
        for ip in sorted(gone):
            cmds += [["-D", "-p", "udp", "--orig-dst", a, "--dst-nat", ip] for a in addrs]
            if sp.node_port:
                cmds.append(["-D", "-p", "udp", "--orig-port-dst", str(sp.node_port),
                             "--dst-nat", ip])
    for key, (sp, ips) in after.items():
        if ips and not (before.get(key) or (None, set()))[1]:
            cmds += [["-D", "-p", "udp", "--orig-dst", a, "--orig-port-dst", str(sp.port)]
                     for a in sp.cluster_ips + sp.external_ips + sp.load_balancer_ips]
            if sp.node_port:
                cmds.append(["-D", "-p", "udp", "--orig-port-dst", str(sp.node_port)])
    return cmds


_warned = False


async def clear_stale_udp(old: list[ServicePort], new: list[ServicePort], node: str,
                          prefix: Sequence[str] = ()) -> None:
    global _warned
    cmds = stale_udp(old, new, node)
    if not cmds:
        return
    if not shutil.which("conntrack"):
        if not _warned:
            log.warning("proxy: `conntrack` is not installed; UDP clients of removed "
                        "endpoints keep their old flows until they go quiet")
            _warned = True
        return
    from pybernetes.proxy.nftables import run
    for args in cmds:
        # exit 1 with "0 flow entries" is the common, harmless case
        await run(list(prefix) + ["conntrack", *args], check=False)
