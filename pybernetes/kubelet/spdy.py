"""A SPDY/3.1 session, server side, as kubectl's exec/attach/port-forward use it
(draft-mbelshe-httpbis-spdy-00 and the SPDY/3.1 additions).

The client opens every stream (SYN_STREAM with a `streamtype` header); we accept each
with SYN_REPLY and then both sides send DATA frames, FIN half-closing a stream. Header
blocks are zlib streams (one per direction per session) primed with the dictionary
from the spec. Flow control (WINDOW_UPDATE) is not enforced: the Go implementation
kubectl uses (moby/spdystream) neither sends nor honours window updates.
"""
from __future__ import annotations

import asyncio
import struct
import zlib
from typing import Awaitable, Callable, Protocol

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = \
    1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
RST_PROTOCOL_ERROR, RST_CANCEL = 1, 5
MAX_FRAME = 1 << 24         # the length field is 24 bits
WRITE_CHUNK = 32 * 1024

# The header compression dictionary of SPDY/3 (spec §2.6.10.1): length-prefixed words,
# then a run of status lines, dates and media types.
_WORDS = (
    "options head post put delete trace accept accept-charset accept-encoding "
    "accept-language accept-ranges age allow authorization cache-control connection "
    "content-base content-encoding content-language content-length content-location "
    "content-md5 content-range content-type date etag expect expires from host if-match "
    "if-modified-since if-none-match if-range if-unmodified-since last-modified location "
    "max-forwards pragma proxy-authenticate proxy-authorization range referer retry-after "
    "server te trailer transfer-encoding upgrade user-agent vary via warning "
    "www-authenticate method get status 200|OK version HTTP/1.1 url public set-cookie "
    "keep-alive origin"
)
_TAIL = (
    "100101201202205206300302303304305306307402405406407408409410411412413414415416417"
    "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently"
    "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error"
    "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct "
    "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,"
    "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,text/javascript,"
    "publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0."
)


def _dictionary() -> bytes:
    """The words length-prefixed ("200|OK" is the one with a space), then the tail."""
    out = bytearray()
    for w in _WORDS.split(" "):
        w = w.replace("|", " ")
        out += struct.pack(">I", len(w)) + w.encode()
    return bytes(out) + _TAIL.encode()


DICTIONARY = _dictionary()


class Transport(Protocol):
    async def read(self) -> bytes: ...          # b"" at EOF
    async def write(self, data: bytes) -> None: ...
    def close(self) -> None: ...


def encode_headers(headers: dict[str, str]) -> bytes:
    out = bytearray(struct.pack(">I", len(headers)))
    for k, v in headers.items():
        kb, vb = k.lower().encode(), v.encode()
        out += struct.pack(">I", len(kb)) + kb + struct.pack(">I", len(vb)) + vb
    return bytes(out)


def decode_headers(block: bytes) -> dict[str, str]:
    """Names lower-cased; several values of one name (NUL-separated) joined by commas."""
    (count,), pos, out = struct.unpack_from(">I", block), 4, {}
    for _ in range(count):
        (n,) = struct.unpack_from(">I", block, pos)
        name = block[pos + 4:pos + 4 + n].decode("latin-1").lower()
        pos += 4 + n
        (n,) = struct.unpack_from(">I", block, pos)
        value = block[pos + 4:pos + 4 + n].decode("latin-1")
        pos += 4 + n
        out[name] = value.replace("\0", ",")
    return out


class SpdyError(Exception):
    pass


class SpdyStream:
    """One client-opened stream: read its DATA, write ours, FIN to half-close."""

    def __init__(self, session: "SpdySession", stream_id: int, headers: dict[str, str]):
        self.session, self.id, self.headers = session, stream_id, headers
        self._incoming: asyncio.Queue[bytes] = asyncio.Queue()
        self.remote_closed = False
        self.local_closed = False

    @property
    def type(self) -> str:
        return self.headers.get("streamtype", "")

    def _feed(self, data: bytes, fin: bool) -> None:
        if self.remote_closed:
            return
        if data:
            self._incoming.put_nowait(data)
        if fin:
            self.remote_closed = True
            self._incoming.put_nowait(b"")

    async def read(self) -> bytes:
        """The next piece of data; b"" once the client half-closed (or reset) it."""
        data = await self._incoming.get()
        if not data:
            self._incoming.put_nowait(b"")
        return data

    async def write(self, data: bytes) -> None:
        if self.local_closed or not data:
            return
        for i in range(0, len(data), WRITE_CHUNK):
            await self.session.send_data(self.id, data[i:i + WRITE_CHUNK], fin=False)

    async def close(self) -> None:
        if not self.local_closed:
            self.local_closed = True
            await self.session.send_data(self.id, b"", fin=True)

    async def reset(self) -> None:
        self.local_closed = True
        self._feed(b"", True)
        await self.session.send_control(RST_STREAM, 0,
                                        struct.pack(">II", self.id, RST_CANCEL))


class SpdySession:
    """Server side of one SPDY/3.1 connection. `on_stream` is called (synchronously)
    for each new stream, after its SYN_REPLY went out."""

    def __init__(self, transport: Transport, on_stream: Callable[[SpdyStream], None]):
        self.transport, self.on_stream = transport, on_stream
        self.streams: dict[int, SpdyStream] = {}
        self._inflate = zlib.decompressobj(zdict=DICTIONARY)
        self._deflate = zlib.compressobj(zdict=DICTIONARY)
        self._write_lock = asyncio.Lock()
        self._buf = bytearray()
        self.closed = asyncio.Event()
        self._goaway_sent = False

    # ----- writing -----------------------------------------------------------------
    async def send_control(self, kind: int, flags: int, payload: bytes) -> None:
        head = struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload))
        await self._send(head + payload)

    async def send_data(self, stream_id: int, data: bytes, fin: bool) -> None:
        head = struct.pack(">II", stream_id & 0x7FFFFFFF,
                           ((FLAG_FIN if fin else 0) << 24) | len(data))
        await self._send(head + data)

    async def _send(self, frame: bytes) -> None:
        if self.closed.is_set():
            return
        async with self._write_lock:
            try:
                await self.transport.write(frame)
            except (ConnectionError, RuntimeError, OSError):
                self.closed.set()

    async def _send_headers_frame(self, kind: int, stream_id: int, headers: dict[str, str],
                                  prefix: bytes = b"") -> None:
        # compress and write under one lock: the zlib stream must reach the peer in order
        async with self._write_lock:
            block = self._deflate.compress(encode_headers(headers))
            block += self._deflate.flush(zlib.Z_SYNC_FLUSH)
            payload = struct.pack(">I", stream_id & 0x7FFFFFFF) + prefix + block
            head = struct.pack(">HHI", 0x8000 | VERSION, kind, len(payload))
            if self.closed.is_set():
                return
            try:
                await self.transport.write(head + payload)
            except (ConnectionError, RuntimeError, OSError):
                self.closed.set()

    async def go_away(self) -> None:
        if not self._goaway_sent:
            self._goaway_sent = True
            await self.send_control(GOAWAY, 0, struct.pack(">II", 0, 0))

    # ----- reading -----------------------------------------------------------------
    async def _read_exactly(self, n: int) -> bytes | None:
        while len(self._buf) < n:
            data = await self.transport.read()
            if not data:
                return None
            self._buf += data
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    async def run(self) -> None:
        """Read frames until the client goes away; then every stream sees EOF."""
        try:
            while True:
                head = await self._read_exactly(8)
                if head is None:
                    break
                length = int.from_bytes(head[5:8], "big")
                payload = await self._read_exactly(length)
                if payload is None:
                    break
                flags = head[4]
                if head[0] & 0x80:
                    kind = int.from_bytes(head[2:4], "big")
                    if not await self._control(kind, flags, payload):
                        break
                else:
                    sid = int.from_bytes(head[0:4], "big") & 0x7FFFFFFF
                    stream = self.streams.get(sid)
                    if stream is not None:
                        stream._feed(payload, bool(flags & FLAG_FIN))
        except (ConnectionError, OSError, zlib.error, struct.error, SpdyError):
            pass
        finally:
            self.closed.set()
            for s in self.streams.values():
                s._feed(b"", True)

    async def _control(self, kind: int, flags: int, payload: bytes) -> bool:
        if kind == SYN_STREAM:
            sid = int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF
            headers = decode_headers(self._inflate.decompress(payload[10:]))
            stream = SpdyStream(self, sid, headers)
            self.streams[sid] = stream
            if flags & FLAG_FIN:
                stream._feed(b"", True)
            await self._send_headers_frame(SYN_REPLY, sid, {})
            self.on_stream(stream)
        elif kind in (SYN_REPLY, HEADERS):
            self._inflate.decompress(payload[4:])  # keep the zlib stream in step
        elif kind == RST_STREAM:
            sid = int.from_bytes(payload[0:4], "big") & 0x7FFFFFFF
            stream = self.streams.get(sid)
            if stream is not None:
                stream.local_closed = True
                stream._feed(b"", True)
        elif kind == PING:
            if int.from_bytes(payload[0:4], "big") % 2 == 1:  # the client's: echo it
                await self.send_control(PING, 0, payload[:4])
        elif kind == GOAWAY:
            return False
        return True  # SETTINGS, WINDOW_UPDATE and unknown frames are ignored

    async def close(self) -> None:
        await self.go_away()
        self.closed.set()
        self.transport.close()


async def wait_streams(queue: "asyncio.Queue[SpdyStream]", wanted: set[str],
                       timeout: float) -> dict[str, SpdyStream]:
    """Collect streams by type until every type in `wanted` arrived."""
    got: dict[str, SpdyStream] = {}

    async def collect() -> None:
        while not wanted <= set(got):
            s = await queue.get()
            got[s.type] = s
    await asyncio.wait_for(collect(), timeout)
    return got


Handler = Callable[[SpdyStream], Awaitable[None]]
