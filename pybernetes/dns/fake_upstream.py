"""A small upstream resolver on loopback for tests and benchmarks (never the real
internet): answers A/AAAA/TXT from a fixed table, NXDOMAIN otherwise, and counts
what it was asked. Over UDP an answer that does not fit 512 bytes (or the query's
EDNS size) comes back truncated, so clients must retry over TCP."""
from __future__ import annotations

import asyncio
import struct

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class FakeUpstream:
    def __init__(self, records: dict[tuple[str, str], list[str]], host: str = "127.0.0.1",
                 ttl: int = 60):
        """records: {("name.", "A"): ["192.0.2.1", ...]} (names lower case, absolute)."""
        self.records = records
        self.host, self.ttl = host, ttl
        self.port = 0
        self.queries: list[tuple[str, str, str]] = []  # (transport, name, type)
        self._udp = None
        self._tcp = None

    def answer(self, wire: bytes, tcp: bool) -> bytes:
        q = dns.message.from_wire(wire)
        question = q.question[0]
        name = question.name.to_text().lower()
        rtype = dns.rdatatype.to_text(question.rdtype)
        self.queries.append(("tcp" if tcp else "udp", name, rtype))
        r = dns.message.make_response(q, recursion_available=True)
        values = self.records.get((name, rtype))
        if values:
            r.answer.append(dns.rrset.from_text_list(question.name, self.ttl, "IN", rtype,
                                                     values))
        elif not any(n == name for n, _ in self.records):
            r.set_rcode(dns.rcode.NXDOMAIN)
        limit = 65535 if tcp else max(512, q.payload if q.edns >= 0 else 512)
        out = r.to_wire()
        if len(out) > limit:
            r.answer = []
            r.flags |= dns.flags.TC
            out = r.to_wire()
        return out

    async def start(self) -> "FakeUpstream":
        loop = asyncio.get_running_loop()
        outer = self

        class UDP(asyncio.DatagramProtocol):
            def connection_made(self, transport) -> None:
                self.transport = transport

            def datagram_received(self, data: bytes, addr) -> None:
                self.transport.sendto(outer.answer(data, False), addr)

        for attempt in range(20):  # the same free port number for UDP and TCP
            self._udp, _ = await loop.create_datagram_endpoint(UDP, local_addr=(self.host, 0))
            self.port = self._udp.get_extra_info("sockname")[1]
            try:
                self._tcp = await asyncio.start_server(self._tcp_client, self.host, self.port)
                return self
            except OSError:
                self._udp.close()
                if attempt == 19:
                    raise
        return self

    async def _tcp_client(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                size = struct.unpack("!H", await reader.readexactly(2))[0]
                out = self.answer(await reader.readexactly(size), True)
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
            await self._tcp.wait_closed()
