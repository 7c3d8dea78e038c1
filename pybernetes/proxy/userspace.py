"""The userspace proxy: the fallback data plane where nftables cannot be used (not
root, the process runtime, or `--proxy-mode userspace`). Every proxied connection
passes through this process (asyncio, uvloop when installed), so it is slower than
the kernel's NAT, but it does the same job:

- NodePorts listen on the node's addresses (by default its InternalIP and 127.0.0.1),
  load balancer and external IPs on the Service port wherever this machine owns them,
  cluster IPs on the Service port when the service CIDR is routed to this machine
  (as root we add `ip route add local CIDR dev lo`, which makes every VIP bindable;
  otherwise VIPs are skipped and the start message says so).
- Connections spread evenly (round-robin) over the ready endpoints, or stick to one
  per client address with `sessionAffinity: ClientIP` until its timeout runs out.
- A port of a Service without endpoints has no listener at all, so the kernel refuses
  a connection at once (TCP RST, ICMP port unreachable for UDP) instead of a timeout.
- TCP is spliced both ways with half-close; UDP keeps one upstream socket per client
  address, dropped after UDP_IDLE seconds without traffic.

What it cannot do that the kernel's NAT can: a port a host process already listens on
for every address (0.0.0.0:80, say) cannot be bound again for a VIP, so that Service
port is skipped with a warning; clients' source addresses are not kept (endpoints see
the node's); traffic policy Local with no endpoint here is reset rather than dropped.

`run_userspace(source, options)` is what `pybernetes proxy` calls: `source` is a
ServiceWatcher (its sync callback is replaced) or an APIClient; `options` is any object
with the attributes of UserspaceOptions (an argparse Namespace will do)."""
from __future__ import annotations

import asyncio
import errno
import ipaddress
import itertools
import logging
import os
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from typing import Any, Iterable

from pybernetes.proxy.model import Endpoint, ServicePort, targets

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 3.0    # per endpoint; then the next one is tried
UDP_IDLE = 30.0          # seconds an idle UDP client session is kept
HIGH_WATER = 256 * 1024  # bytes buffered toward a slow peer before its source is paused
START_MESSAGE = ("userspace proxy: slower, every connection passes through this process "
                 "(the kernel's nftables NAT is not used: {why})")


@dataclass
class UserspaceOptions:
    node_name: str = ""
    node_ips: tuple[str, ...] = ()   # where NodePorts listen; () = InternalIP and 127.0.0.1
    service_cidr: str = ""           # routed to lo as root, so cluster IPs can be bound
    reason: str = "asked for"        # why nftables is not used, for the start message
    min_sync_period: float = 1.0
    sync_period: float = 30.0


def _opt(options: Any, name: str) -> Any:
    return getattr(options, name, getattr(UserspaceOptions, name))


# -- choosing an endpoint -------------------------------------------------------------------

class Balancer:
    """Even spread over a ServicePort's endpoints: round-robin, or per client address
    with ClientIP affinity (kube-proxy's userspace LoadBalancerRR)."""

    def __init__(self) -> None:
        self._next = itertools.count()
        self._affinity: dict[str, tuple[Endpoint, float]] = {}

    def pick(self, endpoints: tuple[Endpoint, ...], client_ip: str, affinity: int,
             skip: Iterable[Endpoint] = ()) -> Endpoint | None:
        tried = set(skip)
        choices = [e for e in endpoints if e not in tried]
        if not choices:
            return None
        now = time.monotonic()
        if affinity:
            held = self._affinity.get(client_ip)
            if held and held[0] in choices and now - held[1] < affinity:
                self._affinity[client_ip] = (held[0], now)
                return held[0]
        ep = choices[next(self._next) % len(choices)]
        if affinity:
            self._affinity[client_ip] = (ep, now)
            if len(self._affinity) > 4096:
                self._expire(now, affinity)
        return ep

    def _expire(self, now: float, affinity: int) -> None:
        for ip, (_, at) in list(self._affinity.items()):
            if now - at >= affinity:
                del self._affinity[ip]


# -- listeners ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Bind:
    protocol: str   # TCP or UDP
    ip: str
    port: int
    external: bool  # NodePort/external/LB traffic (externalTrafficPolicy) or cluster IP


class Route:
    """What one listener forwards to; replaced in place on every sync so open
    listeners keep their sockets and their round-robin position."""

    def __init__(self, sp: ServicePort, endpoints: tuple[Endpoint, ...]):
        self.sp, self.endpoints, self.balancer = sp, endpoints, Balancer()


def _reset(sock: socket.socket | None) -> None:
    """Close with RST (SO_LINGER 0), so the client fails at once."""
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass


class _Pipe(asyncio.Protocol):
    """One direction's receiver; writes what it gets to `peer` and pauses reading when
    the peer's buffer fills (flow control both ways)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self.pending = bytearray()   # what arrived before the peer existed
        self.eof = False
        self.closed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(HIGH_WATER)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.write(data)
        else:
            self.pending += data

    def eof_received(self) -> bool:
        self.eof = True
        if self.peer is not None and self.peer.transport is not None:
            if self.peer.transport.can_write_eof():
                self.peer.transport.write_eof()
            self._close_when_both_done()
        return True   # keep our write side open: the other direction may still flow

    def _close_when_both_done(self) -> None:
        """Both directions ended (EOF each way): nothing more can flow, close both."""
        if self.eof and self.peer is not None and self.peer.eof:
            for t in (self.transport, self.peer.transport):
                if t is not None:
                    t.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()

    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def join(self, other: "_Pipe") -> None:
        self.peer, other.peer = other, self
        for a, b in ((self, other), (other, self)):
            if a.pending and b.transport is not None:
                b.transport.write(bytes(a.pending))
                a.pending.clear()
            if a.eof and b.transport is not None and b.transport.can_write_eof():
                b.transport.write_eof()
        self._close_when_both_done()


class _Client(_Pipe):
    """The accepted side: once connected it asks its listener for a backend."""

    def __init__(self, listener: "TCPListener"):
        super().__init__()
        self.listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.listener.accepted(self)


class TCPListener:
    def __init__(self, bind: Bind, route: Route):
        self.bind, self.route = bind, route
        self.server: asyncio.AbstractServer | None = None
        self.conns: set[_Pipe] = set()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Client(self), self.bind.ip,
                                               self.bind.port, reuse_address=True,
                                               backlog=1024)

    def accepted(self, client: _Client) -> None:
        assert client.transport is not None
        client.transport.pause_reading()   # nothing is read until a backend is there
        self.conns.add(client)
        client.closed.add_done_callback(lambda _: self.conns.discard(client))
        asyncio.get_running_loop().create_task(self._connect(client))

    async def _connect(self, client: _Client) -> None:
        assert client.transport is not None
        peer = client.transport.get_extra_info("peername") or ("", 0)
        route, tried = self.route, []
        loop = asyncio.get_running_loop()
        while not client.closed.done():
            ep = route.balancer.pick(route.endpoints, peer[0], route.sp.affinity_timeout, tried)
            if ep is None:
                break
            tried.append(ep)
            try:
                _, backend = await asyncio.wait_for(
                    loop.create_connection(_Pipe, ep.ip, ep.port), CONNECT_TIMEOUT)
            except (OSError, asyncio.TimeoutError) as e:
                log.info("userspace proxy: %s: endpoint %s:%d failed: %s", route.sp.key,
                         ep.ip, ep.port, e or "timeout")
                continue
            if client.closed.done():     # the client gave up while we connected
                backend.transport.close()   # type: ignore[union-attr]
                return
            self.conns.add(backend)
            backend.closed.add_done_callback(lambda _: self.conns.discard(backend))
            backend.join(client)
            client.transport.resume_reading()
            return
        _reset(client.transport.get_extra_info("socket"))   # no endpoint answers: RST
        client.transport.close()

    async def stop(self, connections: bool = False) -> None:
        """Stop listening; established connections carry on (as conntrack keeps NATed
        ones) unless `connections`."""
        if self.server is not None:
            self.server.close()
        if connections:
            for conn in list(self.conns):
                if conn.transport is not None:
                    conn.transport.close()


class _UDPUpstream(asyncio.DatagramProtocol):
    def __init__(self, listener: "UDPListener", client: tuple):
        self.listener, self.client = listener, client
        self.transport: asyncio.DatagramTransport | None = None
        self.used = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        self.used = time.monotonic()
        if self.listener.transport is not None:
            self.listener.transport.sendto(data, self.client)


class UDPListener(asyncio.DatagramProtocol):
    def __init__(self, bind: Bind, route: Route):
        self.bind, self.route = bind, route
        self.transport: asyncio.DatagramTransport | None = None
        self.sessions: dict[tuple, tuple[_UDPUpstream, Endpoint]] = {}
        self._reaper: asyncio.Task | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await loop.create_datagram_endpoint(lambda: self, local_addr=(self.bind.ip,
                                                                      self.bind.port))
        self._reaper = loop.create_task(self._reap())

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        session = self.sessions.get(addr)
        if session and session[1] in self.route.endpoints and session[0].transport:
            session[0].used = time.monotonic()
            session[0].transport.sendto(data)
            return
        asyncio.get_running_loop().create_task(self._open(data, addr))

    async def _open(self, data: bytes, addr: tuple) -> None:
        ep = self.route.balancer.pick(self.route.endpoints, addr[0],
                                      self.route.sp.affinity_timeout)
        if ep is None:
            return
        old = self.sessions.pop(addr, None)
        if old and old[0].transport:
            old[0].transport.close()
        loop = asyncio.get_running_loop()
        try:
            _, up = await loop.create_datagram_endpoint(
                lambda: _UDPUpstream(self, addr), remote_addr=(ep.ip, ep.port))
        except OSError as e:
            log.info("userspace proxy: %s: udp endpoint %s:%d: %s", self.route.sp.key,
                     ep.ip, ep.port, e)
            return
        self.sessions[addr] = (up, ep)
        up.transport.sendto(data)  # type: ignore[union-attr]

    async def _reap(self) -> None:
        while True:
            await asyncio.sleep(UDP_IDLE / 3)
            now = time.monotonic()
            for addr, (up, _) in list(self.sessions.items()):
                if now - up.used > UDP_IDLE:
                    del self.sessions[addr]
                    if up.transport:
                        up.transport.close()

    async def stop(self, connections: bool = False) -> None:
        if self._reaper:
            self._reaper.cancel()
        for up, _ in self.sessions.values():
            if up.transport:
                up.transport.close()
        if self.transport is not None:
            self.transport.close()


# -- the proxier ---------------------------------------------------------------------------

def wanted_binds(sp: ServicePort, node: str, node_ips: tuple[str, ...]
                 ) -> dict[Bind, tuple[Endpoint, ...]]:
    """Every (address, port) this ServicePort listens on, with the endpoints that
    traffic goes to. No entry at all when the Service has no endpoints: the kernel then
    refuses connections at once."""
    if sp.protocol not in ("TCP", "UDP"):
        return {}
    t = targets(sp, node)
    if not t.has_endpoints:
        return {}
    out: dict[Bind, tuple[Endpoint, ...]] = {}
    for ip in sp.cluster_ips:
        out[Bind(sp.protocol, ip, sp.port, False)] = t.internal
    for ip in sp.external_ips + sp.load_balancer_ips:
        out[Bind(sp.protocol, ip, sp.port, True)] = t.external
    if sp.node_port:
        for ip in node_ips:
            out[Bind(sp.protocol, ip, sp.node_port, True)] = t.external
    return out


class UserspaceProxier:
    def __init__(self, node: str, node_ips: tuple[str, ...]):
        self.node, self.node_ips = node, node_ips
        self.listeners: dict[Bind, TCPListener | UDPListener] = {}
        self.unbindable: dict[Bind, str] = {}   # what could not be bound, and why

    async def sync(self, ports: list[ServicePort]) -> None:
        want: dict[Bind, Route] = {}
        for sp in ports:
            for bind, eps in wanted_binds(sp, self.node, self.node_ips).items():
                if bind not in want:   # two Services on one external IP:port: first wins
                    want[bind] = Route(sp, eps)
        for bind in [b for b in self.listeners if b not in want]:
            await self.listeners.pop(bind).stop()
        for bind, route in want.items():
            have = self.listeners.get(bind)
            if have is not None:
                self._update(have.route, route)
                continue
            await self._open(bind, route)
        self.unbindable = {b: why for b, why in self.unbindable.items() if b in want}

    @staticmethod
    def _update(old: Route, new: Route) -> None:
        old.sp, old.endpoints = new.sp, new.endpoints   # the balancer's state carries on

    async def _open(self, bind: Bind, route: Route) -> None:
        listener = (TCPListener if bind.protocol == "TCP" else UDPListener)(bind, route)
        try:
            await listener.start()
        except OSError as e:
            if self.unbindable.get(bind) != e.strerror:
                level = logging.DEBUG if e.errno == errno.EADDRNOTAVAIL else logging.WARNING
                hint = " (a host process holds this port)" if e.errno == errno.EADDRINUSE else ""
                log.log(level, "userspace proxy: %s: cannot listen on %s %s:%d: %s%s",
                        route.sp.key, bind.protocol, bind.ip, bind.port, e.strerror, hint)
            self.unbindable[bind] = e.strerror or str(e)
            return
        self.unbindable.pop(bind, None)
        self.listeners[bind] = listener
        log.info("userspace proxy: %s listening on %s %s:%d", route.sp.key, bind.protocol,
                 bind.ip, bind.port)

    async def close(self) -> None:
        for listener in self.listeners.values():
            await listener.stop(connections=True)
        self.listeners.clear()


# -- the service CIDR on lo -------------------------------------------------------------

def route_service_cidr(cidr: str) -> bool:
    """`ip route add local CIDR dev lo` (root): every VIP becomes a local address we
    can bind, and nothing for the service CIDR leaves through the default route. True
    when we added it (and so remove it at exit); False when it was there or we can't."""
    try:
        net = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return False
    if os.geteuid() != 0 or net.version != 4:
        return False
    p = subprocess.run(["ip", "route", "add", "local", str(net), "dev", "lo", "table", "local"],
                       capture_output=True, text=True)
    if p.returncode != 0 and "File exists" not in p.stderr:
        log.warning("userspace proxy: cannot route %s to lo: %s", net, p.stderr.strip())
    return p.returncode == 0


def unroute_service_cidr(cidr: str) -> None:
    net = ipaddress.ip_network(cidr, strict=False)
    subprocess.run(["ip", "route", "del", "local", str(net), "dev", "lo", "table", "local"],
                   capture_output=True)


def _cidr_is_local(cidr: str) -> bool:
    """Is some address of the CIDR delivered to this machine (bindable)?"""
    try:
        ip = str(next(ipaddress.ip_network(cidr, strict=False).hosts()))
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((ip, 0))
        return True
    except (ValueError, StopIteration, OSError):
        return False


def default_node_ips() -> tuple[str, ...]:
    from pybernetes.kubelet.machine import primary_ip
    return tuple(dict.fromkeys([primary_ip(), "127.0.0.1"]))


async def run_userspace(source: Any, options: Any) -> None:
    """Serve Services in userspace until cancelled; listeners and the route we added
    are removed on the way out."""
    from pybernetes.proxy.watcher import ServiceWatcher
    node_ips = tuple(_opt(options, "node_ips") or ()) or default_node_ips()
    proxier = UserspaceProxier(_opt(options, "node_name"), node_ips)
    cidr = _opt(options, "service_cidr")
    routed = route_service_cidr(cidr) if cidr else False
    vips = "cluster IPs bound on lo" if cidr and _cidr_is_local(cidr) else \
        "cluster IPs not served (the service CIDR is not routed to this machine; as root " \
        "the proxy routes it to lo)"
    log.warning(START_MESSAGE.format(why=_opt(options, "reason")) +
                f"; node ports on {', '.join(node_ips)}; {vips}")
    if isinstance(source, ServiceWatcher):
        watcher = source
        watcher.sync = proxier.sync
    else:
        watcher = ServiceWatcher(source, proxier.sync, _opt(options, "min_sync_period"),
                                 _opt(options, "sync_period"))
    try:
        await watcher.run()
    finally:
        await proxier.close()
        if routed:
            unroute_service_cidr(cidr)
