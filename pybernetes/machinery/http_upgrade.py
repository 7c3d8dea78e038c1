"""Taking over an aiohttp server connection after `101 Switching Protocols`.

aiohttp upgrades only to WebSocket by itself; SPDY/3.1 (kubectl's exec and
port-forward before WebSocket) and the API server's byte splice to a kubelet need the
raw connection. `switch_protocols` answers 101 and returns a reader fed with every
byte the client sends from then on, and the prepared response to write raw bytes
with. The handler must keep running while the connection is in use; returning ends it.
"""
from __future__ import annotations

import asyncio

from aiohttp import web


class _Feed:
    """Stands in for aiohttp's payload parser: every byte after the headers goes here."""

    def __init__(self, reader: asyncio.StreamReader):
        self.reader = reader

    def feed_data(self, data: bytes) -> tuple[bool, bytes]:
        self.reader.feed_data(data)
        return False, b""

    def feed_eof(self) -> None:
        self.reader.feed_eof()


class Upgraded:
    """Both directions of a switched connection."""

    def __init__(self, reader: asyncio.StreamReader, response: web.StreamResponse,
                 request: web.Request):
        self.reader, self.response, self.request = reader, response, request

    async def read(self, n: int = 65536) -> bytes:
        return await self.reader.read(n)

    async def write(self, data: bytes) -> None:
        await self.response.write(data)

    def close(self) -> None:
        transport = self.request.transport
        if transport is not None:
            transport.close()


async def switch_protocols(request: web.Request, headers: dict[str, str] | list) -> Upgraded:
    """Answer 101 with `headers` and take the connection over."""
    reader = asyncio.StreamReader(limit=2 ** 22)
    protocol = request.protocol
    assert protocol is not None
    # Before the 101 goes out: clients send nothing until they see it, so no byte of the
    # new protocol can reach aiohttp's HTTP parser.
    protocol.set_parser(_Feed(reader))  # type: ignore[arg-type]
    protocol.keep_alive(False)
    response = web.StreamResponse(status=101)
    items = headers.items() if isinstance(headers, dict) else headers
    for k, v in items:
        response.headers.add(k, v)
    await response.prepare(request)
    return Upgraded(reader, response, request)
