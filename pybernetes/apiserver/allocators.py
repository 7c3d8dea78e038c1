"""Service ClusterIP and NodePort allocation.

Each allocated IP or port is a reservation key in the store
(`/registry/ranges/serviceips/<ip>`, `/registry/ranges/servicenodeports/<port>`),
taken with an atomic create, so two API servers (or two racing requests) can
never hand out the same one. Reservations are released when the Service goes.
"""
from __future__ import annotations

import ipaddress
import random
from typing import TYPE_CHECKING, Any

from ..machinery import errors
from ..machinery.errors import FieldError, invalid_value
from ..storage.store import KeyExistsError, KeyNotFoundError

if TYPE_CHECKING:
    from .resource_store import Context
    from .state import APIState

IP_PREFIX = "/registry/ranges/serviceips/"
PORT_PREFIX = "/registry/ranges/servicenodeports/"
_RANDOM_TRIES = 32


class Range:
    """A pool of integers [first, last] reserved through store keys."""

    def __init__(self, api: "APIState", prefix: str, first: int, last: int, render, describe: str):
        self.api, self.prefix, self.first, self.last = api, prefix, first, last
        self.render = render  # int -> key suffix / display value
        self.describe = describe

    def contains(self, n: int) -> bool:
        return self.first <= n <= self.last

    async def reserve(self, n: int, owner: str) -> bool:
        try:
            await self.api.store.create(self.prefix + self.render(n), owner.encode())
            return True
        except KeyExistsError:
            kv = await self.api.store.get(self.prefix + self.render(n))
            return kv is not None and kv.value.decode() == owner

    async def is_free(self, n: int) -> bool:
        return await self.api.store.get(self.prefix + self.render(n)) is None

    async def allocate(self, owner: str, dry_run: bool) -> int | None:
        size = self.last - self.first + 1
        for _ in range(_RANDOM_TRIES):
            n = self.first + random.randrange(size)
            if dry_run:
                if await self.is_free(n):
                    return n
            elif await self.reserve(n, owner):
                return n
        kvs, _, _ = await self.api.store.list(self.prefix)
        used = {kv.key[len(self.prefix):] for kv in kvs}
        free = [n for n in range(self.first, self.last + 1) if self.render(n) not in used]
        random.shuffle(free)
        for n in free:
            if dry_run or await self.reserve(n, owner):
                return n
        return None

    async def release(self, n: int, owner: str) -> None:
        key = self.prefix + self.render(n)
        kv = await self.api.store.get(key)
        if kv is None or kv.value.decode() != owner:
            return
        try:
            await self.api.store.delete(key, expected_rev=kv.mod_revision)
        except (KeyNotFoundError, Exception):  # someone else released it first
            pass


def _owner(svc: dict) -> str:
    md = svc["metadata"]
    return f"{md.get('namespace', '')}/{md['name']}"


def _wants_node_ports(svc: dict) -> bool:
    spec = svc.get("spec", {})
    if spec.get("type") == "NodePort":
        return True
    return spec.get("type") == "LoadBalancer" and spec.get("allocateLoadBalancerNodePorts", True)


def _has_cluster_ip(svc: dict) -> bool:
    spec = svc.get("spec", {})
    return spec.get("type") != "ExternalName" and spec.get("clusterIP") != "None"


class ServiceAllocation:
    """ResourceStore hooks for services: allocate on create/update, release on delete."""

    def __init__(self, api: "APIState"):
        cfg = api.config
        net = ipaddress.ip_network(cfg.service_cluster_ip_range)
        base = int(net.network_address)
        self.net = net
        # network address and broadcast are not handed out (upstream skips both)
        self.ips = Range(api, IP_PREFIX, base + 1, base + net.num_addresses - 2,
                         lambda n: str(ipaddress.ip_address(n)), cfg.service_cluster_ip_range)
        lo, hi = (int(x) for x in cfg.service_node_port_range.split("-"))
        self.ports = Range(api, PORT_PREFIX, lo, hi, str, cfg.service_node_port_range)

    # --- hooks ---
    async def before_create(self, svc: dict, ctx: "Context") -> None:
        owner = _owner(svc)
        causes: list[FieldError] = []
        if _has_cluster_ip(svc):
            causes += await self._cluster_ip(svc, owner, ctx.dry_run)
        if _wants_node_ports(svc):
            causes += await self._node_ports(svc, owner, ctx.dry_run, set())
        if causes:
            if not ctx.dry_run:
                await self.after_delete(svc)
            raise errors.invalid("Service", svc["metadata"]["name"], causes)

    async def before_update(self, new: dict, old: dict, ctx: "Context") -> None:
        owner = _owner(new)
        causes: list[FieldError] = []
        if _has_cluster_ip(new) and not new["spec"].get("clusterIP"):
            causes += await self._cluster_ip(new, owner, ctx.dry_run)
        if _wants_node_ports(new):
            causes += await self._node_ports(new, owner, ctx.dry_run, _node_ports_of(old))
        if causes:
            raise errors.invalid("Service", new["metadata"]["name"], causes)
        if not ctx.dry_run:
            for port in _node_ports_of(old) - _node_ports_of(new):
                await self.ports.release(port, owner)

    async def fill_update(self, new: dict, old: dict, ctx: "Context") -> None:
        _keep_allocated(new, old)

    async def after_delete(self, svc: dict) -> None:
        owner = _owner(svc)
        for ip in svc.get("spec", {}).get("clusterIPs") or [svc.get("spec", {}).get("clusterIP")]:
            n = self._ip_int(ip)
            if n is not None:
                await self.ips.release(n, owner)
        for port in _node_ports_of(svc):
            await self.ports.release(port, owner)

    # --- helpers ---
    def _ip_int(self, ip: Any) -> int | None:
        try:
            addr = ipaddress.ip_address(ip)
        except (ValueError, TypeError):
            return None
        return int(addr) if addr in self.net else None

    async def _cluster_ip(self, svc: dict, owner: str, dry_run: bool) -> list[FieldError]:
        spec = svc["spec"]
        want = spec.get("clusterIP") or (spec.get("clusterIPs") or [""])[0]
        if want:
            n = self._ip_int(want)
            if n is None or not self.ips.contains(n):
                return [invalid_value("spec.clusterIPs", [want],
                                      f"failed to allocate IP {want}: provided IP is not in the "
                                      f"valid range. The range of valid IPs is {self.ips.describe}")]
            ok = await self.ips.is_free(n) if dry_run else await self.ips.reserve(n, owner)
            if not ok:
                return [invalid_value("spec.clusterIPs", [want],
                                      f"failed to allocate IP {want}: provided IP is already "
                                      "allocated")]
        else:
            n = await self.ips.allocate(owner, dry_run)
            if n is None:
                raise errors.internal("failed to allocate a serviceIP: range is full")
            want = str(ipaddress.ip_address(n))
        spec["clusterIP"] = want
        spec["clusterIPs"] = [want]
        return []

    async def _node_ports(self, svc: dict, owner: str, dry_run: bool,
                          already: set[int]) -> list[FieldError]:
        causes: list[FieldError] = []
        for i, port in enumerate(svc["spec"].get("ports") or []):
            want = port.get("nodePort")
            if want:
                if want in already:
                    continue
                if not self.ports.contains(want):
                    causes.append(invalid_value(f"spec.ports[{i}].nodePort", want,
                                                "provided port is not in the valid range. The "
                                                f"range of valid ports is {self.ports.describe}"))
                    continue
                ok = await self.ports.is_free(want) if dry_run else \
                    await self.ports.reserve(want, owner)
                if not ok:
                    causes.append(invalid_value(f"spec.ports[{i}].nodePort", want,
                                                "provided port is already allocated"))
            else:
                n = await self.ports.allocate(owner, dry_run)
                if n is None:
                    raise errors.internal("failed to allocate a nodePort: range is full")
                port["nodePort"] = n
        return causes


def _keep_allocated(new: dict, old: dict) -> None:
    """An update that omits allocated values keeps them (upstream's patchAllocatedValues)."""
    spec, old_spec = new.setdefault("spec", {}), old.get("spec", {})
    if _has_cluster_ip(new) and _has_cluster_ip(old) and not spec.get("clusterIP"):
        spec["clusterIP"] = old_spec.get("clusterIP")
        spec["clusterIPs"] = old_spec.get("clusterIPs") or [old_spec.get("clusterIP")]
    if _wants_node_ports(new) and _wants_node_ports(old):
        by_port = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
                   for p in old_spec.get("ports") or []}
        for p in spec.get("ports") or []:
            if not p.get("nodePort"):
                kept = by_port.get((p.get("port"), p.get("protocol", "TCP")))
                if kept:
                    p["nodePort"] = kept


def _node_ports_of(svc: dict) -> set[int]:
    return {p["nodePort"] for p in (svc.get("spec", {}).get("ports") or []) if p.get("nodePort")}


class Allocators:
    def __init__(self, api: "APIState"):
        self.services = ServiceAllocation(api)
        rs = api.resource("", "v1", "services")
        if rs is not None:
            rs.hooks.append(self.services)
