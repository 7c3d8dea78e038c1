"""The DNS listeners: UDP and TCP on one address and port (port 0: an ephemeral port,
the same number for both). A cached answer is sent straight from the datagram
callback; anything else (a zone lookup, a forward) runs as a task."""
from __future__ import annotations

import asyncio
import logging
import socket
import struct

from pybernetes.dns.resolver import Resolver

log = logging.getLogger(__name__)

TCP_IDLE = 10.0         # seconds a TCP client may stay quiet between queries
MAX_TASKS = 10000       # queries in flight over UDP; beyond this new ones are dropped
BIND_TRIES = 20


class ListenError(Exception):
    """The address or port cannot be listened on (in use, not ours, not permitted)."""


class _UDP(asyncio.DatagramProtocol):
    def __init__(self, resolver: Resolver):
        self.resolver = resolver
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task] = set()

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        if len(data) < 12 or data[2] & 0x80:  # too short, or a response: not for us
            return
        hit = self.resolver.cached(data, False)
        if hit is not None:
            stats = self.resolver.stats
            stats.requests["udp"] += 1
            stats.by_rcode[hit[3] & 0x0F] += 1
            self.transport.sendto(hit, addr)
            return
        if len(self.tasks) >= MAX_TASKS:
            return  # overloaded: the client retries, as with a lost datagram
        task = asyncio.ensure_future(self._reply(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _reply(self, data: bytes, addr) -> None:
        try:
            reply = await self.resolver.handle(data, False)
        except Exception:  # noqa: BLE001 - one bad query must not stop the server
            log.exception("answering a UDP query from %s", addr[0])
            return
        if reply and self.transport is not None:
            self.transport.sendto(reply, addr)


class DNSServer:
    """UDP + TCP listeners for one resolver."""

    def __init__(self, resolver: Resolver, host: str, port: int):
        self.resolver, self.host, self.requested_port = resolver, host, port
        self.port = 0
        self._udp: asyncio.DatagramTransport | None = None
        self._udp_proto: _UDP | None = None
        self._tcp: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Bind both; with port 0 pick a port free for UDP and TCP alike."""
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        last: OSError | None = None
        for _ in range(BIND_TRIES if self.requested_port == 0 else 1):
            udp_sock = socket.socket(family, socket.SOCK_DGRAM)
            try:
                udp_sock.bind((self.host, self.requested_port))
                port = udp_sock.getsockname()[1]
                tcp = await asyncio.start_server(self._tcp_client, self.host, port,
                                                 family=family, reuse_address=True)
            except OSError as e:
                udp_sock.close()
                last = e
                continue
            self._udp, self._udp_proto = await loop.create_datagram_endpoint(
                lambda: _UDP(self.resolver), sock=udp_sock)
            self._tcp, self.port = tcp, port
            return
        raise ListenError(f"cannot listen on {self.host} port {self.requested_port}: "
                          f"{getattr(last, 'strerror', None) or last}")

    async def stop(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
        if self._udp is not None:
            self._udp.close()
        if self._udp_proto is not None:
            for t in list(self._udp_proto.tasks):
                t.cancel()

    async def _tcp_client(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        """Length-prefixed queries, answered in order, until the client goes quiet."""
        try:
            while True:
                head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE)
                query = await asyncio.wait_for(
                    reader.readexactly(struct.unpack("!H", head)[0]), TCP_IDLE)
                if len(query) < 12 or query[2] & 0x80:
                    break
                reply = await self.resolver.handle(query, True)
                if not reply:
                    break
                writer.write(struct.pack("!H", len(reply)) + reply)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.TimeoutError, ConnectionError):
            pass
        except Exception:  # noqa: BLE001 - one bad client must not stop the server
            log.exception("answering a TCP client")
        finally:
            writer.close()
