"""port-forward: SPDY/3.1 (`portforward.k8s.io`), either as an HTTP upgrade (kubectl up
to 1.30) or tunnelled in WebSocket binary messages (subprotocol
`SPDY/3.1+portforward.k8s.io`, kubectl 1.31+).

For every local connection the client opens two streams sharing a `requestid`
header: `streamtype: error` and `streamtype: data`, both naming the `port`. We connect
to that port in the pod's network, copy bytes both ways on the data stream, write a
message on the error stream if forwarding fails, and FIN both when done.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging

from aiohttp import WSMsgType, web

from .remotecommand import start_spdy
from .spdy import SpdySession, SpdyStream
from .streaming import StreamingProvider

log = logging.getLogger("pybernetes.kubelet.portforward")

PROTOCOL = "portforward.k8s.io"
TUNNEL_PROTOCOL = "SPDY/3.1+portforward.k8s.io"
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
        ws = web.WebSocketResponse(protocols=(TUNNEL_PROTOCOL,), autoping=True, max_msg_size=0)
        await ws.prepare(request)
        if ws.ws_protocol != TUNNEL_PROTOCOL:
            await ws.close(message=b"unsupported port-forward protocol")
            return ws
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
