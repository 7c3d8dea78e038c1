"""The nftables data plane (kube-proxy's nftables mode, our own rules): the desired state
is rendered into one table of chains, verdict maps and sets, and each sync applies the
difference from what was applied before as ONE `nft -f -` transaction, so packets see
either the old rules or the new ones, never a mix.

Packet paths through table `ip <table>`:
  nat-prerouting / nat-output (dstnat) → services:
      ip daddr . proto . port vmap @service-ips       cluster, external and LB IPs
      fib daddr type local … proto . port vmap @service-nodeports
  svc-… (all usable endpoints) / svl-… (this node's): affinity lookups, then
      numgen random mod N vmap {…} → ep-… : dnat to the endpoint
  ext-… (traffic to node ports, external and LB IPs): masquerade + svc-…, or for
      externalTrafficPolicy Local: keep the source and only use svl-…
  nat-postrouting (srcnat) → masquerading: SNAT what carries the mark bit
  filter-input / filter-forward / filter-output: Services without endpoints are
      rejected (ICMP port unreachable) so clients fail at once; ports of cluster IPs
      that no Service has, and unallocated service-CIDR addresses, too.
"""
from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
from dataclasses import dataclass, field
from typing import Iterable, Sequence

from pybernetes.proxy.model import Endpoint, ServicePort, targets

log = logging.getLogger(__name__)

MASQ_MARK = 0x4000  # the bit kube-proxy uses; SNAT in postrouting when set

# regular chains whose rules never depend on the services, by table layout
BASE_CHAINS = {  # name: (type, hook, priority)
    "nat-prerouting": ("nat", "prerouting", -100),
    "nat-output": ("nat", "output", -100),
    "nat-postrouting": ("nat", "postrouting", 100),
    "filter-input": ("filter", "input", 0),
    "filter-forward": ("filter", "forward", 0),
    "filter-output": ("filter", "output", -110),          # before DNAT: no-endpoint rejects
    "filter-output-post-dnat": ("filter", "output", -90),  # after DNAT: unknown VIP ports
}
MAPS = {  # name: declaration
    "service-ips": "type ipv4_addr . inet_proto . inet_service : verdict",
    "service-nodeports": "type inet_proto . inet_service : verdict",
    "no-endpoint-services": "type ipv4_addr . inet_proto . inet_service : verdict",
    "no-endpoint-nodeports": "type inet_proto . inet_service : verdict",
    "cluster-ips": "type ipv4_addr",  # a set: every cluster IP we know
}


@dataclass(frozen=True)
class Config:
    table: str = "pybernetes"
    node_name: str = ""
    cluster_cidr: str = ""      # pod CIDR: traffic from elsewhere to a cluster IP is SNATed
    service_cidr: str = ""      # addresses here that no Service has are rejected
    masquerade_all: bool = False


@dataclass
class State:
    """What one table holds: regular chains (name → rules), map/set elements
    (name → {key: value or None}) and affinity sets (name → timeout seconds)."""
    chains: dict[str, tuple[str, ...]] = field(default_factory=dict)
    elements: dict[str, dict[str, str | None]] = field(
        default_factory=lambda: {m: {} for m in MAPS})
    affinity: dict[str, int] = field(default_factory=dict)


@functools.lru_cache(maxsize=1 << 16)
def _hash(*parts: object) -> str:
    # names are recomputed for every endpoint on every sync: cached, and hex (base32 is
    # pure Python and was most of the render time with 10,000 endpoints)
    return hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()[:10]


def _ident(sp: ServicePort) -> str:
    # readable tail so `nft list table` tells which Service a chain serves; the hash
    # makes it unique (names alone could collide after the character cleanup)
    return f"{sp.namespace}/{sp.name}/{sp.protocol.lower()}/{sp.port_name}"


def chain_names(sp: ServicePort) -> tuple[str, str, str]:
    """(cluster-policy chain, local-policy chain, external chain) of a service port."""
    h = _hash(sp.key, sp.protocol)
    ident = _ident(sp)
    return f"svc-{h}-{ident}", f"svl-{h}-{ident}", f"ext-{h}-{ident}"


def endpoint_chain(sp: ServicePort, ep: Endpoint) -> str:
    return f"ep-{_hash(sp.key, sp.protocol, ep.ip, ep.port)}-{_ident(sp)}__{ep.ip}/{ep.port}"


def affinity_set(sp: ServicePort, ep: Endpoint) -> str:
    # the timeout is part of the name: a set's timeout cannot change in place
    return f"aff-{_hash(sp.key, sp.protocol, ep.ip, ep.port, sp.affinity_timeout)}"


# -- rendering ----------------------------------------------------------------------------

def _static_chains(cfg: Config) -> dict[str, tuple[str, ...]]:
    local_ok = "fib daddr type local ip daddr != 127.0.0.0/8"
    if cfg.service_cidr:
        local_ok += f" ip daddr != {cfg.service_cidr}"
    cluster_check = ["ip daddr @cluster-ips reject"]
    if cfg.service_cidr:
        cluster_check.append(f"ip daddr {cfg.service_cidr} reject")
    return {
        "nat-prerouting": ("jump services",),
        "nat-output": ("jump services",),
        "nat-postrouting": ("jump masquerading",),
        "filter-input": ("ct state new jump endpoints-check",
                         "ct state new jump cluster-ips-check"),
        "filter-forward": ("ct state new jump endpoints-check",
                           "ct state new jump cluster-ips-check"),
        "filter-output": ("ct state new jump endpoints-check",),
        "filter-output-post-dnat": ("ct state new jump cluster-ips-check",),
        "services": ("ip daddr . meta l4proto . th dport vmap @service-ips",
                     f"{local_ok} meta l4proto . th dport vmap @service-nodeports"),
        "endpoints-check": ("ip daddr . meta l4proto . th dport vmap @no-endpoint-services",
                            f"{local_ok} meta l4proto . th dport vmap @no-endpoint-nodeports"),
        "cluster-ips-check": tuple(cluster_check),
        "mark-for-masquerade": (f"meta mark set meta mark | {MASQ_MARK:#x}",),
        "masquerading": (f"meta mark & {MASQ_MARK:#x} == 0 return",
                         f"meta mark set meta mark ^ {MASQ_MARK:#x}",
                         "masquerade fully-random"),
        "reject-chain": ("reject",),
    }


def _dispatch(sp: ServicePort, eps: Sequence[Endpoint], first: Iterable[str] = ()) -> tuple:
    """Rules of a svc-/svl- chain: sticky clients first, then an even random spread."""
    rules = list(first)
    if not eps:
        return tuple(rules) + ("drop",)  # a Local policy with no endpoint on this node
    if sp.affinity_timeout:
        rules += [f"ip saddr @{affinity_set(sp, e)} goto {endpoint_chain(sp, e)}" for e in eps]
    if len(eps) == 1:
        rules.append(f"goto {endpoint_chain(sp, eps[0])}")
    else:
        arms = ", ".join(f"{i} : goto {endpoint_chain(sp, e)}" for i, e in enumerate(eps))
        rules.append(f"numgen random mod {len(eps)} vmap {{ {arms} }}")
    return tuple(rules)


def _endpoint_rules(sp: ServicePort, ep: Endpoint) -> tuple[str, ...]:
    rules = [f"ip saddr {ep.ip} jump mark-for-masquerade"]  # hairpin: a pod reaching itself
    if sp.affinity_timeout:
        rules.append(f"update @{affinity_set(sp, ep)} {{ ip saddr }}")
    rules.append(f"meta l4proto {sp.protocol.lower()} dnat to {ep.ip}:{ep.port}")
    return tuple(rules)


def _masq_cluster_ip(sp: ServicePort, cfg: Config) -> list[str]:
    """Traffic to a cluster IP from outside the pod network (the host, another machine)
    is SNATed so the endpoint's reply comes back through this node."""
    if cfg.masquerade_all:
        return ["jump mark-for-masquerade"]
    if not cfg.cluster_cidr:
        return []
    proto = sp.protocol.lower()
    return [f"ip daddr {ip} {proto} dport {sp.port} ip saddr != {cfg.cluster_cidr} "
            f"jump mark-for-masquerade" for ip in sp.cluster_ips]


def _external_rules(sp: ServicePort, cfg: Config, svc: str, svl: str) -> tuple[str, ...]:
    if not sp.external_local:
        return ("jump mark-for-masquerade", f"goto {svc}")
    rules = []
    if cfg.cluster_cidr:  # pods may use any endpoint, as for the cluster IP
        rules.append(f"ip saddr {cfg.cluster_cidr} goto {svc}")
    # the node itself has no "local" source IP to keep: treat it as cluster traffic
    rules += ["fib saddr type local jump mark-for-masquerade", f"fib saddr type local goto {svc}",
              f"goto {svl}"]
    return tuple(rules)


def _render_port(sp: ServicePort, cfg: Config, st: State) -> None:
    proto = sp.protocol.lower()
    external_addrs = sp.external_ips + sp.load_balancer_ips
    for ip in sp.cluster_ips:
        st.elements["cluster-ips"][ip] = None
    t = targets(sp, cfg.node_name)
    if not t.has_endpoints:
        for ip in sp.cluster_ips + external_addrs:
            st.elements["no-endpoint-services"][f"{ip} . {proto} . {sp.port}"] = \
                "goto reject-chain"
        if sp.node_port:
            st.elements["no-endpoint-nodeports"][f"{proto} . {sp.node_port}"] = \
                "goto reject-chain"
        return
    svc, svl, ext = chain_names(sp)
    masq = _masq_cluster_ip(sp, cfg)
    st.chains[svc] = _dispatch(sp, t.cluster, () if sp.internal_local else masq)
    if sp.internal_local or sp.external_local:
        st.chains[svl] = _dispatch(sp, t.local, masq if sp.internal_local else ())
    for ep in t.cluster:  # local endpoints are among these
        st.chains[endpoint_chain(sp, ep)] = _endpoint_rules(sp, ep)
        if sp.affinity_timeout:
            st.affinity[affinity_set(sp, ep)] = sp.affinity_timeout
    internal_target = svl if sp.internal_local else svc
    for ip in sp.cluster_ips:
        st.elements["service-ips"][f"{ip} . {proto} . {sp.port}"] = f"goto {internal_target}"
    if external_addrs or sp.node_port:
        st.chains[ext] = _external_rules(sp, cfg, svc, svl)
        for ip in external_addrs:
            st.elements["service-ips"][f"{ip} . {proto} . {sp.port}"] = f"goto {ext}"
        if sp.node_port:
            st.elements["service-nodeports"][f"{proto} . {sp.node_port}"] = f"goto {ext}"


def render(ports: Iterable[ServicePort], cfg: Config,
           cache: dict[ServicePort, State] | None = None) -> State:
    """The whole table for these ports. With `cache` (kept by the caller between syncs,
    always for the same cfg) a port equal to one rendered last time reuses its rules."""
    st = State(chains=_static_chains(cfg))
    fresh: dict[ServicePort, State] = {}
    for sp in ports:
        part = cache.get(sp) if cache is not None else None
        if part is None:
            part = State(chains={}, affinity={})
            _render_port(sp, cfg, part)
        fresh[sp] = part
        st.chains.update(part.chains)
        st.affinity.update(part.affinity)
        for m, items in part.elements.items():
            if items:
                st.elements[m].update(items)
    if cache is not None:
        cache.clear()
        cache.update(fresh)
    return st


# -- the transaction ------------------------------------------------------------------------

def _chain_decl(table: str, name: str) -> str:
    if name in BASE_CHAINS:
        typ, hook, prio = BASE_CHAINS[name]
        return (f"add chain ip {table} {name} "
                f"{{ type {typ} hook {hook} priority {prio}; policy accept; }}")
    return f"add chain ip {table} {name}"


def _elements(table: str, verb: str, name: str, items: list[tuple[str, str | None]]) -> list[str]:
    out = []
    for i in range(0, len(items), 500):  # several short statements parse faster than one
        body = ", ".join(k if v is None else f"{k} : {v}" for k, v in items[i:i + 500])
        out.append(f"{verb} element ip {table} {name} {{ {body} }}")
    return out


def script(table: str, old: State | None, new: State, full: bool = False) -> str:
    """The nft commands that turn `old` (what the kernel holds, None = unknown) into
    `new`. With old None the table is deleted and made again (startup, after a failed
    apply); `full` rewrites every chain and map but keeps the affinity sets' contents."""
    lines = [f"add table ip {table}"]
    if old is None:
        lines += [f"delete table ip {table}", f"add table ip {table}"]
        old, full = State(chains={}, affinity={}), True
    if full:
        lines += [_chain_decl(table, n) for n in BASE_CHAINS]
        lines += [f"add {'set' if ':' not in d else 'map'} ip {table} {m} {{ {d}; }}"
                  for m, d in MAPS.items()]
    changed = [n for n, rules in new.chains.items() if full or old.chains.get(n) != rules]
    lines += [_chain_decl(table, n) for n in changed if n not in old.chains or full]
    lines += [f"add set ip {table} {s} {{ type ipv4_addr; flags dynamic,timeout; "
              f"timeout {t}s; }}" for s, t in new.affinity.items()
              if s not in old.affinity]
    additions: dict[str, list[tuple[str, str | None]]] = {}
    for m in MAPS:
        want, have = new.elements[m], old.elements.get(m, {})
        if full:
            lines.append(f"flush {'set' if ':' not in MAPS[m] else 'map'} ip {table} {m}")
            additions[m] = list(want.items())
            continue
        gone = [(k, None) for k, v in have.items() if want.get(k, "\0") != v]
        lines += _elements(table, "delete", m, gone)
        additions[m] = [(k, v) for k, v in want.items() if have.get(k, "\0") != v]
    for n in changed:
        lines.append(f"flush chain ip {table} {n}")
        lines += [f"add rule ip {table} {n} {r}" for r in new.chains[n]]
    for m, items in additions.items():
        lines += _elements(table, "add", m, items)
    stale = [n for n in old.chains if n not in new.chains]
    lines += [f"flush chain ip {table} {n}" for n in stale]
    lines += [f"delete chain ip {table} {n}" for n in stale]
    lines += [f"delete set ip {table} {s}" for s in old.affinity if s not in new.affinity]
    return "\n".join(lines) + "\n"


class CommandError(OSError):
    pass


async def run(argv: Sequence[str], stdin: bytes | None = None,
              check: bool = True) -> tuple[int, str]:
    """Run a command; (exit code, stderr+stdout text). Raises CommandError when check."""
    proc = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate(stdin)
    text = out.decode(errors="replace").strip()
    if check and proc.returncode:
        raise CommandError(f"{' '.join(argv[:4])}… exited {proc.returncode}: {text[:2000]}")
    return proc.returncode or 0, text


class NftablesProxier:
    """Keeps one nftables table equal to the rendered state of the Services. `prefix` is
    put before every command (e.g. `ip netns exec NAME`) to program another netns."""

    FULL_SYNC_PERIOD = 3600.0  # seconds; a full rewrite now and then repairs meddling

    def __init__(self, cfg: Config, prefix: Sequence[str] = ()):
        self.cfg, self.prefix = cfg, list(prefix)
        self.applied: State | None = None
        self.ports: list[ServicePort] = []
        self._count = 0
        self._cache: dict[ServicePort, State] = {}
        self._last_full = float("-inf")
        self.last_script_lines = 0
        self.last_render_seconds = self.last_apply_seconds = 0.0

    async def sync(self, ports: list[ServicePort]) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        new = render(ports, self.cfg, self._cache)
        full = began - self._last_full >= self.FULL_SYNC_PERIOD
        text = script(self.cfg.table, self.applied, new, full=full)
        rendered = loop.time()
        try:
            await self.nft(text)
        except BaseException:
            self.applied = None  # unknown now: start from scratch next time
            raise
        self.last_render_seconds, self.last_apply_seconds = rendered - began, loop.time() - rendered
        self.last_script_lines = text.count("\n")
        self.applied, self._count = new, self._count + 1
        if full:
            self._last_full = began
        old_ports, self.ports = self.ports, ports
        from pybernetes.proxy.conntrack import clear_stale_udp
        await clear_stale_udp(old_ports, ports, self.cfg.node_name, self.prefix)

    async def nft(self, text: str) -> None:
        await run(self.prefix + ["nft", "-f", "-"], stdin=text.encode())

    async def delete_table(self) -> None:
        """Remove our table (and with it every rule); absent is fine."""
        await run(self.prefix + ["nft", "delete", "table", "ip", self.cfg.table], check=False)
        self.applied = None
