"""port-forward: SPDY/3.1 (`portforward.k8s.io`), either as an HTTP upgrade (kubectl up
to 1.30) or tunnelled in WebSocket binary messages (subprotocol
`SPDY/3.1+portforward.k8s.io`, kubectl 1.31+); and the WebSocket channel protocol
(`v4.channel.k8s.io`, `v4.base64.channel.k8s.io`, or none; the official Python client's):
ports from the `port` query, channels 2i (data) and 2i+1 (error) for the i-th, each
starting with the port as two little-endian bytes.

For every local connection the client opens two streams sharing a `requestid`
header: `streamtype: error` and `streamtype: data`, both naming the `port`. We connect
to that port in the pod's network, copy bytes both ways on the data stream, write a
message on the error stream if forwarding fails, and FIN both when done.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import logging

from aiohttp import WSMsgType, web

from .remotecommand import start_spdy
from .spdy import SpdySession, SpdyStream
from .streaming import StreamingProvider

log = logging.getLogger("pybernetes.kubelet.portforward")

PROTOCOL = "portforward.k8s.io"
TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
CHANNEL_PROTOCOLS = ("v4.channel.k8s.io", "v4.base64.channel.k8s.io")
HALF_CLOSED_WAIT = 60.0   # after the client's FIN, how long the pod may keep answering


class WebSocketTransport:
    """SPDY frames carried in WebSocket binary messages (the tunnel)."""

    def __init__(self, ws: web.WebSocketResponse):
        self.ws = ws

    async def read(self) -> bytes:
        while True:
            msg = await self.ws.receive()
            if msg.type == WSMsgType.BINARY:
                if msg.data:
                    return msg.data
                continue
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSING, WSMsgType.CLOSED,
                            WSMsgType.ERROR):
                return b""

    async def write(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    def close(self) -> None:
        if not self.ws.closed:
            asyncio.ensure_future(self.ws.close())


async def serve_portforward(request: web.Request, provider: StreamingProvider
                            ) -> web.StreamResponse:
    ns, pod = request.match_info["ns"], request.match_info["pod"]
    upgrade = request.headers.get("Upgrade", "").lower()
    if upgrade == "websocket":
        offered = request.headers.get("Sec-WebSocket-Protocol", "")
        if TUNNEL_PROTOCOL not in offered:
            return await _serve_channels(request, provider, ns, pod)
        ws = web.WebSocketResponse(protocols=(TUNNEL_PROTOCOL,), autoping=True, max_msg_size=0)
        await ws.prepare(request)
        streams: asyncio.Queue[SpdyStream] = asyncio.Queue()
        session = SpdySession(WebSocketTransport(ws), streams.put_nowait)
        runner = asyncio.create_task(session.run())
        try:
            await Forwarder(provider, ns, pod).serve(streams, runner)
        finally:
            await session.close()
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await runner
        return ws
    if upgrade.startswith("spdy/3.1"):
        started = await start_spdy(request, (PROTOCOL,))
        if isinstance(started, web.Response):
            return started
        try:
            await Forwarder(provider, ns, pod).serve(started.streams, started.runner)
        finally:
            await started.stop()
        return started.response
    return web.Response(status=400, text="Upgrade request required", content_type="text/plain")


class Forwarder:
    def __init__(self, provider: StreamingProvider, ns: str, pod: str):
        self.provider, self.ns, self.pod = provider, ns, pod
        self.pending: dict[str, dict[str, SpdyStream]] = {}
        self.tasks: set[asyncio.Task] = set()

    async def serve(self, streams: "asyncio.Queue[SpdyStream]", runner: asyncio.Task) -> None:
        """Pair streams into forwards until the session ends."""
        try:
            while not runner.done():
                getter = asyncio.create_task(streams.get())
                await asyncio.wait({getter, runner}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                self._add(getter.result())
        finally:
            for t in list(self.tasks):
                t.cancel()
            await asyncio.gather(*self.tasks, return_exceptions=True)

    def _add(self, stream: SpdyStream) -> None:
        rid = stream.headers.get("requestid", "")
        pair = self.pending.setdefault(rid, {})
        pair[stream.type] = stream
        if "data" in pair and "error" in pair:
            del self.pending[rid]
            task = asyncio.create_task(self._forward(pair["data"], pair["error"]))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

    async def _forward(self, data: SpdyStream, error: SpdyStream) -> None:
        port_text = data.headers.get("port", "")
        try:
            try:
                port = int(port_text)
                reader, writer = await self.provider.port_forward(self.ns, self.pod, port)
            except (ValueError, OSError) as e:
                await error.write(f"error forwarding port {port_text} to pod {self.pod}: "
                                  f"{e}".encode())
                return
            try:
                await _copy_both(data, reader, writer)
            finally:
                writer.close()
        finally:
            await data.close()
            await error.close()


async def _copy_both(stream: SpdyStream, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> None:
    async def up() -> None:
        while chunk := await stream.read():
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()

    async def down() -> None:
        while chunk := await reader.read(65536):
            await stream.write(chunk)
        await stream.close()

    up_task, down_task = asyncio.create_task(up()), asyncio.create_task(down())
    try:
        done, _ = await asyncio.wait({up_task, down_task}, return_when=asyncio.FIRST_COMPLETED)
        if down_task not in done:
            await asyncio.wait({down_task}, timeout=HALF_CLOSED_WAIT)
    except (ConnectionError, OSError):
        pass
    finally:
        for t in (up_task, down_task):
            t.cancel()
        await asyncio.gather(up_task, down_task, return_exceptions=True)


# --- the WebSocket channel protocol ---------------------------------------------------------

def _ports(request: web.Request) -> list[int]:
    """The `port` query values (repeated or comma-separated), as upstream parses them."""
    ports = []
    values = request.query.getall("port", [])
    if not values:
        raise ValueError('query parameter "port" is required')
    for value in values:
        for p in value.split(","):
            if not p.isdigit() or not 0 < int(p) < 65536:
                raise ValueError(f"unable to parse {value!r} as a port")
            ports.append(int(p))
    return ports


async def _serve_channels(request: web.Request, provider: StreamingProvider, ns: str,
                          pod: str) -> web.StreamResponse:
    try:
        ports = _ports(request)
    except ValueError as e:
        return web.Response(status=400, text=str(e), content_type="text/plain")
    ws = web.WebSocketResponse(protocols=CHANNEL_PROTOCOLS, autoping=True, max_msg_size=0)
    await ws.prepare(request)
    text = ws.ws_protocol == "v4.base64.channel.k8s.io"

    async def send(channel: int, data: bytes) -> None:
        if text:
            await ws.send_str(str(channel) + base64.b64encode(data).decode())
        else:
            await ws.send_bytes(bytes([channel]) + data)

    writers: dict[int, asyncio.StreamWriter] = {}
    pumps = []
    try:
        for i, port in enumerate(ports):
            prefix = port.to_bytes(2, "little")
            await send(2 * i, prefix)
            await send(2 * i + 1, prefix)
            try:
                reader, writers[i] = await provider.port_forward(ns, pod, port)
            except OSError as e:
                await send(2 * i + 1, f"error forwarding port {port} to pod {pod}: "
                                      f"{e}".encode())
                continue
            pumps.append(asyncio.create_task(_pump_to_ws(reader, send, 2 * i)))
        await _ws_to_ports(ws, writers, text)
    finally:
        for t in pumps:
            t.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        for w in writers.values():
            w.close()
        await ws.close()
    return ws


async def _pump_to_ws(reader: asyncio.StreamReader, send, channel: int) -> None:
    with contextlib.suppress(ConnectionError, OSError, RuntimeError):
        while chunk := await reader.read(65536):
            await send(channel, chunk)


async def _ws_to_ports(ws: web.WebSocketResponse, writers: dict[int, asyncio.StreamWriter],
                       text: bool) -> None:
    async for msg in ws:
        if msg.type == WSMsgType.BINARY and msg.data:
            channel, data = msg.data[0], msg.data[1:]
        elif msg.type == WSMsgType.TEXT and msg.data:
            if not msg.data[0].isdigit():
                continue
            channel, data = int(msg.data[0]), base64.b64decode(msg.data[1:])
        else:
            continue
        writer = writers.get(channel // 2) if channel % 2 == 0 else None
        if writer is not None and data:
            writer.write(data)
            with contextlib.suppress(ConnectionError, OSError):
                await writer.drain()
