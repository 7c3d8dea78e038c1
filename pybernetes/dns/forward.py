"""Forwarding what is not ours to the node's resolvers (CoreDNS's `forward . /etc/resolv.conf`).

A UDP client's query goes to the upstream over UDP, once, on one shared socket per
upstream with the message ID swapped for a free one (so thousands can be in flight);
a truncated answer goes back truncated and the client retries over TCP, which we then
forward over TCP. Our own lookups (an ExternalName's target) retry over TCP themselves.
An upstream that does not answer in time is skipped for the next one."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import struct

log = logging.getLogger(__name__)

TIMEOUT = 2.0        # seconds per upstream try (CoreDNS forward's read timeout)
MAX_TCP = 65535


class UpstreamError(Exception):
    pass


def parse_upstream(text: str, default_port: int = 53) -> tuple[str, int]:
    """"1.2.3.4", "1.2.3.4:5353", "::1", "[::1]:53" -> (host, port); ValueError if bad."""
    text = text.strip()
    host, port = text, default_port
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"bad upstream {text!r}")
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        port = int(p)
    ipaddress.ip_address(host)
    if not 1 <= port <= 65535:
        raise ValueError(f"port out of range in {text!r}")
    return host, port


def servfail(query: bytes) -> bytes:
    """SERVFAIL for a query whose question we could read (header + question echoed)."""
    qend = question_end(query)
    if qend is None:
        return b""
    flags = struct.unpack("!H", query[2:4])[0]
    out_flags = 0x8000 | (flags & 0x7900) | 0x0080 | 2  # QR, opcode+RD+.. kept, RA, SERVFAIL
    return query[:2] + struct.pack("!HHHHH", out_flags, 1, 0, 0, 0) + query[12:qend]


def question_end(msg: bytes) -> int | None:
    """Offset just past the (single) question, or None if there is none readable."""
    if len(msg) < 17 or msg[4:6] != b"\x00\x01":
        return None
    i, n = 12, len(msg)
    while i < n:
        ln = msg[i]
        if ln == 0:
            return i + 5 if i + 5 <= n else None
        if ln & 0xC0:
            return None
        i += ln + 1
    return None


def _expire(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_exception(asyncio.TimeoutError())


class _UDPUpstream(asyncio.DatagramProtocol):
    """One connected UDP socket to one upstream; answers matched by our message ID."""

    def __init__(self) -> None:
        self.transport: asyncio.DatagramTransport | None = None
        self.pending: dict[int, tuple[asyncio.Future, bytes]] = {}

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if len(data) < 12:
            return
        entry = self.pending.get(struct.unpack("!H", data[:2])[0])
        if entry is None:
            return
        fut, question = entry
        qend = question_end(data)
        # the answer must be to this question, not a late one to an ID we reused
        if qend is not None and data[12:qend].lower() != question.lower():
            return
        if not fut.done():
            fut.set_result(data)

    def error_received(self, exc: Exception) -> None:
        for fut, _ in list(self.pending.values()):
            if not fut.done():
                fut.set_exception(UpstreamError(str(exc)))

    def connection_lost(self, exc) -> None:
        self.transport = None
        self.error_received(exc or UpstreamError("closed"))

    async def exchange(self, query: bytes, timeout: float) -> bytes:
        qend = question_end(query)
        if self.transport is None or qend is None:
            raise UpstreamError("not connected")
        qid = random.randrange(65536)
        for _ in range(64):
            if qid not in self.pending:
                break
            qid = random.randrange(65536)
        else:
            raise UpstreamError("too many queries in flight")
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.pending[qid] = (fut, query[12:qend])
        # a timer instead of wait_for: no extra task per query on the forwarding path
        timer = loop.call_later(timeout, _expire, fut)
        try:
            self.transport.sendto(struct.pack("!H", qid) + query[2:])
            answer = await fut
        finally:
            timer.cancel()
            self.pending.pop(qid, None)
        return query[:2] + answer[2:]


class Forwarder:
    """Sends raw queries to the upstream resolvers, in order, first answer wins."""

    def __init__(self, upstreams: list[tuple[str, int]], timeout: float = TIMEOUT):
        self.upstreams = upstreams
        self.timeout = timeout
        self._udp: dict[tuple[str, int], _UDPUpstream] = {}

    async def _udp_for(self, upstream: tuple[str, int]) -> _UDPUpstream:
        proto = self._udp.get(upstream)
        if proto is None or proto.transport is None:
            loop = asyncio.get_running_loop()
            _, proto = await loop.create_datagram_endpoint(_UDPUpstream, remote_addr=upstream)
            self._udp[upstream] = proto
        return proto

    async def forward(self, query: bytes, tcp: bool = False) -> bytes:
        """The upstream's answer with the client's ID; UpstreamError when none answered."""
        last = "no upstream resolvers configured"
        for upstream in self.upstreams:
            try:
                if tcp:
                    return await asyncio.wait_for(_tcp_exchange(upstream, query), self.timeout)
                return await (await self._udp_for(upstream)).exchange(query, self.timeout)
            except (OSError, asyncio.TimeoutError, UpstreamError, asyncio.IncompleteReadError) \
                    as e:
                last = f"{upstream[0]}:{upstream[1]}: {type(e).__name__} {e}".strip()
                log.debug("upstream %s", last)
        raise UpstreamError(last)

    async def resolve(self, query: bytes) -> bytes:
        """Our own lookup: UDP, then TCP when the answer came truncated."""
        answer = await self.forward(query)
        if len(answer) > 3 and answer[2] & 0x02:
            answer = await self.forward(query, tcp=True)
        return answer

    def close(self) -> None:
        for proto in self._udp.values():
            if proto.transport is not None:
                proto.transport.close()
        self._udp.clear()


async def _tcp_exchange(upstream: tuple[str, int], query: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*upstream)
    try:
        writer.write(struct.pack("!H", len(query)) + query)
        await writer.drain()
        size = struct.unpack("!H", await reader.readexactly(2))[0]
        return await reader.readexactly(size)
    finally:
        writer.close()
