"""The SPDY/3.1 server session against a minimal client written here from the spec."""
from __future__ import annotations

import asyncio
import struct
import zlib

from pybernetes.kubelet import spdy


class Pipe:
    """An in-memory transport: what the client writes the session reads, and back."""

    def __init__(self) -> None:
        self.to_server: asyncio.Queue[bytes] = asyncio.Queue()
        self.to_client = bytearray()
        self.got = asyncio.Event()

    async def read(self) -> bytes:
        return await self.to_server.get()

    async def write(self, data: bytes) -> None:
        self.to_client += data
        self.got.set()

    def close(self) -> None:
        self.to_server.put_nowait(b"")


class Client:
    def __init__(self, pipe: Pipe):
        self.pipe = pipe
        self.deflate = zlib.compressobj(zdict=spdy.DICTIONARY)
        self.inflate = zlib.decompressobj(zdict=spdy.DICTIONARY)

    def control(self, kind: int, flags: int, payload: bytes) -> None:
        self.pipe.to_server.put_nowait(
            struct.pack(">HHI", 0x8000 | 3, kind, (flags << 24) | len(payload)) + payload)

    def syn_stream(self, sid: int, headers: dict[str, str], fin: bool = False) -> None:
        block = self.deflate.compress(spdy.encode_headers(headers))
        block += self.deflate.flush(zlib.Z_SYNC_FLUSH)
        self.control(spdy.SYN_STREAM, spdy.FLAG_FIN if fin else 0,
                     struct.pack(">IIBB", sid, 0, 0, 0) + block)

    def data(self, sid: int, payload: bytes, fin: bool = False) -> None:
        self.pipe.to_server.put_nowait(
            struct.pack(">II", sid, ((1 if fin else 0) << 24) | len(payload)) + payload)

    def frames(self) -> list[tuple]:
        """Everything the server sent so far, decoded."""
        buf, out = bytes(self.pipe.to_client), []
        self.pipe.to_client.clear()
        while buf:
            length = int.from_bytes(buf[5:8], "big")
            head, payload, buf = buf[:8], buf[8:8 + length], buf[8 + length:]
            if head[0] & 0x80:
                kind = int.from_bytes(head[2:4], "big")
                if kind == spdy.SYN_REPLY:
                    sid = int.from_bytes(payload[:4], "big")
                    out.append(("reply", sid, spdy.decode_headers(
                        self.inflate.decompress(payload[4:]))))
                else:
                    out.append(("control", kind, payload))
            else:
                out.append(("data", int.from_bytes(head[:4], "big"), head[4] & 1, payload))
        return out


def test_dictionary_is_the_specs() -> None:
    d = spdy.DICTIONARY
    assert len(d) == 1423
    assert d.startswith(b"\x00\x00\x00\x07options") and d.endswith(b",*,enq=0.")


def test_headers_round_trip_with_repeated_values() -> None:
    block = spdy.encode_headers({"StreamType": "data", "port": "8080"})
    assert spdy.decode_headers(block) == {"streamtype": "data", "port": "8080"}
    raw = struct.pack(">I", 1) + struct.pack(">I", 1) + b"a" + struct.pack(">I", 3) + b"x\0y"
    assert spdy.decode_headers(raw) == {"a": "x,y"}


def test_streams_data_fin_and_ping() -> None:
    async def go() -> list[tuple]:
        pipe, streams = Pipe(), asyncio.Queue()
        session = spdy.SpdySession(pipe, streams.put_nowait)
        runner = asyncio.create_task(session.run())
        client = Client(pipe)
        client.syn_stream(1, {"streamtype": "stdin"})
        client.syn_stream(3, {"streamtype": "stdout"})
        got = await spdy.wait_streams(streams, {"stdin", "stdout"}, 5)
        client.data(1, b"abc")
        client.data(1, b"", fin=True)
        assert await got["stdin"].read() == b"abc"
        assert await got["stdin"].read() == b""
        await got["stdout"].write(b"xyz")
        await got["stdout"].close()
        client.control(spdy.PING, 0, struct.pack(">I", 7))
        for _ in range(50):
            if b"\x00\x06" in bytes(pipe.to_client[-12:]):
                break
            await asyncio.sleep(0.01)
        client.control(spdy.GOAWAY, 0, struct.pack(">II", 0, 0))
        await asyncio.wait_for(runner, 5)
        return client.frames()

    frames = asyncio.run(go())
    assert frames[:2] == [("reply", 1, {}), ("reply", 3, {})]
    assert ("data", 3, 0, b"xyz") in frames and ("data", 3, 1, b"") in frames
    assert ("control", spdy.PING, struct.pack(">I", 7)) in frames
