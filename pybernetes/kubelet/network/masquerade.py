"""The node's one set of masquerade rules for its pods (kubenet's way of doing it):
traffic from the podCIDR to anywhere outside it, multicast aside, leaves with the
node's address.

The bridge plugin's own ipMasq does the same per pod: a chain and its rules made
with several iptables calls on ADD and removed again on DEL — about 40 ms of CPU per
pod here, and each call takes its turn at the xtables lock, which lines up a burst
of pod starts behind one another. One chain for the whole podCIDR costs nothing per
pod:

    nat POSTROUTING  -s <podCIDR> -m comment "pybernetes: masquerade pods on <bridge>"
                     -j PYB-MASQ-<bridge>
    PYB-MASQ-<bridge>  -d <podCIDR> -j RETURN;  -d 224.0.0.0/4 -j RETURN;  -j MASQUERADE
"""
from __future__ import annotations

import shlex

from .commands import run

CHAIN_PREFIX = "PYB-MASQ-"
COMMENT = "pybernetes: masquerade pods on {bridge}"


def chain(bridge: str) -> str:
    return CHAIN_PREFIX + bridge      # a bridge name has at most 15 characters: fits 28


def _chain_rules(cidr: str) -> list[list[str]]:
    return [["-d", cidr, "-j", "RETURN"], ["-d", "224.0.0.0/4", "-j", "RETURN"],
            ["-j", "MASQUERADE"]]


def _jump(bridge: str, cidr: str) -> list[str]:
    return ["-s", cidr, "-m", "comment", "--comment", COMMENT.format(bridge=bridge),
            "-j", chain(bridge)]


async def _nat(*args: str, check: bool = False) -> tuple[int, str]:
    code, out, _ = await run(["iptables", "-w", "-t", "nat", *args], check=check)
    return code, out.decode(errors="replace")


async def ensure(bridge: str, cidr: str) -> None:
    """Make the rules right for this bridge and podCIDR (idempotent; a jump for an
    older podCIDR of the bridge is replaced)."""
    ch = chain(bridge)
    await _nat("-N", ch)                       # fails harmlessly when it exists
    rules = _chain_rules(cidr)
    present = [(await _nat("-C", ch, *r))[0] == 0 for r in rules]
    if not all(present):
        await _nat("-F", ch, check=True)
        for r in rules:
            await _nat("-A", ch, *r, check=True)
    jump = _jump(bridge, cidr)
    if (await _nat("-C", "POSTROUTING", *jump))[0] != 0:
        await _drop_jumps(ch)
        await _nat("-A", "POSTROUTING", *jump, check=True)


async def remove(bridge: str) -> None:
    """Drop the bridge's jump(s) and chain; a no-op when they are absent."""
    ch = chain(bridge)
    await _drop_jumps(ch)
    await _nat("-F", ch)
    await _nat("-X", ch)


async def _drop_jumps(ch: str) -> None:
    _, listing = await _nat("-S", "POSTROUTING")
    for line in listing.splitlines():
        argv = shlex.split(line)
        if argv[:1] == ["-A"] and argv[-2:] == ["-j", ch]:
            await _nat("-D", *argv[1:])
