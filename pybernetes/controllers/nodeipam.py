"""Node IPAM (upstream's range allocator): every node gets its own slice of the
cluster CIDR as spec.podCIDR / spec.podCIDRs, from which its pods take addresses.

The cluster CIDR (--cluster-cidr, default 10.42.0.0/16 as k3s) is cut into
subnets of --node-cidr-mask-size (24). Before handing anything out the controller
marks every CIDR already on a Node as taken, so a CIDR is never given twice, not
even across restarts; a deleted node's CIDR becomes free again. When no subnet is
left the node gets a `CIDRNotAvailable` event and is tried again later. With two
cluster CIDRs (IPv4,IPv6) a node gets one subnet of each (IPv6 subnets are /64)."""
from __future__ import annotations

import ipaddress
import logging

from pybernetes.client.api import NODES
from pybernetes.controllers.base import Controller
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

CLUSTER_CIDR = "10.42.0.0/16"  # k3s' default
NODE_MASK_V4, NODE_MASK_V6 = 24, 64
MAX_MASK_DIFF = 16             # upstream refuses more than 2^16 subnets per cluster CIDR
RETRY_FULL = 30.0              # seconds before a node that found no free CIDR tries again

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CIDRSetError(ValueError):
    pass


class CIDRSet:
    """The subnets of one cluster CIDR, each free or taken. Allocation continues
    after the last subnet handed out (upstream's nextCandidate), so a freed subnet
    is not reused at once."""

    def __init__(self, cluster_cidr: str, mask: int):
        self.net: Network = ipaddress.ip_network(cluster_cidr, strict=False)
        if mask < self.net.prefixlen or mask > self.net.max_prefixlen:
            raise CIDRSetError(f"node CIDR mask size {mask} does not fit in cluster CIDR "
                               f"{self.net} (want {self.net.prefixlen}..{self.net.max_prefixlen})")
        if mask - self.net.prefixlen > MAX_MASK_DIFF:
            raise CIDRSetError(f"node CIDR mask size {mask} is too large for cluster CIDR "
                               f"{self.net}: at most {MAX_MASK_DIFF} bits more than its prefix")
        self.mask = mask
        self.size = 1 << (mask - self.net.prefixlen)
        self._step = 1 << (self.net.max_prefixlen - mask)
        self._base = int(self.net.network_address)
        self._taken: set[int] = set()
        self._next = 0

    def _subnet(self, i: int) -> str:
        return f"{ipaddress.ip_address(self._base + i * self._step)}/{self.mask}"

    def _indexes(self, cidr: str) -> range:
        """The subnet indexes `cidr` covers (a larger CIDR covers several)."""
        net = ipaddress.ip_network(cidr, strict=False)
        if net.version != self.net.version or not (net.subnet_of(self.net)  # type: ignore[arg-type]
                                                   or self.net.subnet_of(net)):  # type: ignore
            raise CIDRSetError(f"{cidr} is not inside cluster CIDR {self.net}")
        lo = max(int(net.network_address), self._base)
        hi = min(int(net.broadcast_address), int(self.net.broadcast_address))
        return range((lo - self._base) // self._step, (hi - self._base) // self._step + 1)

    def contains(self, cidr: str) -> bool:
        try:
            self._indexes(cidr)
            return True
        except (CIDRSetError, ValueError):
            return False

    def occupy(self, cidr: str) -> None:
        self._taken.update(self._indexes(cidr))

    def release(self, cidr: str) -> None:
        self._taken.difference_update(self._indexes(cidr))

    def allocate_next(self) -> str:
        for k in range(self.size):
            i = (self._next + k) % self.size
            if i not in self._taken:
                self._taken.add(i)
                self._next = (i + 1) % self.size
                return self._subnet(i)
        raise CIDRSetError("CIDR allocation failed; there are no remaining CIDRs left to "
                           "allocate in the accepted range")

    @property
    def used(self) -> int:
        return len(self._taken)


def parse_cluster_cidrs(value: str, mask_v4: int = NODE_MASK_V4,
                        mask_v6: int = NODE_MASK_V6) -> list[CIDRSet]:
    """`--cluster-cidr`: one CIDR, or an IPv4 and an IPv6 one (dual stack)."""
    cidrs = [c.strip() for c in value.split(",") if c.strip()]
    if not 1 <= len(cidrs) <= 2:
        raise CIDRSetError("--cluster-cidr takes one CIDR, or two (one IPv4, one IPv6)")
    sets = []
    for c in cidrs:
        try:
            net = ipaddress.ip_network(c, strict=False)
        except ValueError:
            raise CIDRSetError(f"--cluster-cidr: invalid CIDR {c!r}") from None
        sets.append(CIDRSet(str(net), mask_v4 if net.version == 4 else mask_v6))
    if len(sets) == 2 and sets[0].net.version == sets[1].net.version:
        raise CIDRSetError("--cluster-cidr: two CIDRs must be one IPv4 and one IPv6")
    return sets


def node_cidrs(node: dict) -> list[str]:
    spec = node.get("spec") or {}
    return list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))


class NodeIPAMController(Controller):
    name = "nodeipam"
    workers = 1  # allocation is one sequence of decisions; one worker keeps it simple
    cluster_cidr = CLUSTER_CIDR
    node_mask = NODE_MASK_V4

    def setup(self) -> None:
        self.NODES = NODES
        self.sets = parse_cluster_cidrs(self.cluster_cidr, self.node_mask)
        self.nodes = self.informers.get(NODES)
        self.nodes.add_handler(on_add=self._seen, on_update=lambda old, new: self._seen(new),
                               on_delete=self._gone)
        self._ready = False

    async def run(self) -> None:
        # The informers are synced: every CIDR in use is known before one is handed out.
        for node in self.nodes.list():
            self._occupy(node)
        self._ready = True
        log.info("nodeipam: %s, /%d per node; %s in use", ",".join(str(s.net) for s in self.sets),
                 self.node_mask, ", ".join(str(s.used) for s in self.sets))
        for node in self.nodes.list():
            if not node_cidrs(node):
                self.enqueue(node)
        await super().run()

    def _seen(self, node: dict) -> None:
        if node_cidrs(node):
            self._occupy(node)
        elif self._ready:
            self.enqueue(node)

    def _gone(self, node: dict) -> None:
        for cidr in node_cidrs(node):
            for s in self.sets:
                if s.contains(cidr):
                    s.release(cidr)
                    log.info("nodeipam: released %s of deleted node %s", cidr,
                             node["metadata"]["name"])

    def _occupy(self, node: dict) -> None:
        for cidr in node_cidrs(node):
            s = next((s for s in self.sets if s.contains(cidr)), None)
            if s is None:
                log.warning("nodeipam: node %s has podCIDR %s outside the cluster CIDR",
                            node["metadata"]["name"], cidr)
                continue
            s.occupy(cidr)

    async def reconcile(self, key: str) -> None:
        node = self.nodes.get(None, key)
        if node is None or node_cidrs(node):
            return
        got: list[tuple[CIDRSet, str]] = []
        try:
            for s in self.sets:
                got.append((s, s.allocate_next()))
        except CIDRSetError as e:
            for s, cidr in got:
                s.release(cidr)
            log.warning("nodeipam: node %s: %s", key, e)
            self.recorder.event({**node, "apiVersion": "v1", "kind": "Node"}, "Normal",
                                "CIDRNotAvailable", f"Node {key} status is now: CIDRNotAvailable")
            self.queue.add_after(key, RETRY_FULL)
            return
        cidrs = [c for _, c in got]
        body = {"metadata": {"resourceVersion": node["metadata"]["resourceVersion"]},
                "spec": {"podCIDR": cidrs[0], "podCIDRs": cidrs}}
        try:
            await self.client.patch(self.NODES, key, body)
        except StatusError as e:
            for s, cidr in got:  # not ours after all: the next reconcile sees the truth
                s.release(cidr)
            if e.code == 404:
                return
            raise
        log.info("nodeipam: node %s gets podCIDR %s", key, ",".join(cidrs))
