"""exec and attach over the wire protocols kubectl speaks.

WebSocket (`v5.channel.k8s.io` ... `channel.k8s.io`): every binary message starts with
its channel: 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize (JSON {"Width","Height"});
v5 adds 255 = "close channel <next byte>" (how the client ends stdin). From v4 the
error channel carries a Status (exit code in details.causes[reason=ExitCode]); before,
plain text.

SPDY/3.1 (`X-Stream-Protocol-Version: v4.channel.k8s.io` ... `channel.k8s.io`): the
client opens one stream per channel, named by its `streamtype` header (error, stdin,
stdout, stderr, resize); each ends with FIN.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Awaitable, Callable

from aiohttp import WSMsgType, web

from ..machinery.http_upgrade import switch_protocols
from .spdy import SpdySession, SpdyStream, wait_streams
from .streaming import ContainerNotFound, StreamingProvider, StreamProcess

log = logging.getLogger("pybernetes.kubelet.remotecommand")

V5, V4, V3, V2, V1 = ("v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io",
                      "v2.channel.k8s.io", "channel.k8s.io")
WS_PROTOCOLS = (V5, V4, V3, V2, V1)
SPDY_PROTOCOLS = (V4, V3, V2, V1)
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255
STREAM_TIMEOUT = 30.0     # upstream's stream creation timeout
DRAIN_AFTER_EXIT = 2.0    # output still arriving after the exit (e.g. from a grandchild)
FIRST_RESIZE_WAIT = 1.0   # for a TTY: how long the first resize may take to arrive


class Channels:
    """One side of a session whatever the transport: output, input, resizes, the end."""

    async def write(self, channel: int, data: bytes) -> None:
        raise NotImplementedError

    async def finish(self, status: dict) -> None:
        raise NotImplementedError


def success_status() -> dict:
    return {"metadata": {}, "status": "Success"}


def exit_status(cmd: list[str], code: int) -> dict:
    return {"metadata": {}, "status": "Failure",
            "message": ("command terminated with non-zero exit code: error executing command "
                        f"[{' '.join(cmd)}], exit code {code}"),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]}}


def internal_status(message: str) -> dict:
    return {"metadata": {}, "status": "Failure", "message": message, "reason": "InternalError",
            "details": {"causes": [{"message": message}]}, "code": 500}


def error_payload(protocol: str, status: dict) -> bytes:
    """What the error channel carries: a Status from v4 on, before that the message."""
    if protocol in (V5, V4):
        return json.dumps(status).encode()
    return status.get("message", "").encode() if status.get("status") != "Success" else b""


class Request:
    """exec/attach parameters from the query (upstream's kubelet names, kubectl's too)."""

    def __init__(self, request: web.Request, attach: bool):
        q = request.query
        on = lambda *names: any(q.get(n, "").lower() in ("1", "true") for n in names)  # noqa
        self.stdin, self.stdout = on("input", "stdin"), on("output", "stdout")
        self.tty = on("tty")
        self.stderr = on("error", "stderr") and not self.tty
        self.command = q.getall("command", [])
        self.attach = attach
        self.ns, self.pod = request.match_info["ns"], request.match_info["pod"]
        self.container = request.match_info["container"]

    def wanted_streams(self, protocol: str) -> set[str]:
        wanted = {"error"}
        for name, on in (("stdin", self.stdin), ("stdout", self.stdout),
                         ("stderr", self.stderr)):
            if on:
                wanted.add(name)
        if self.tty and protocol in (V4, V3):
            wanted.add("resize")
        return wanted


async def first_size(resizes: "asyncio.Queue[tuple[int, int]]") -> tuple[int, int] | None:
    """The client's terminal size, which it sends right after connecting: a process
    started before it arrives would see a 0x0 terminal."""
    try:
        size = await asyncio.wait_for(resizes.get(), FIRST_RESIZE_WAIT)
    except asyncio.TimeoutError:
        return None
    while not resizes.empty():
        size = resizes.get_nowait()
    return size


async def start_process(provider: StreamingProvider, r: Request,
                        size: tuple[int, int] | None = None
                        ) -> tuple[StreamProcess | None, dict | None]:
    """The process, or the Status saying why there is none."""
    try:
        ref = await provider.find_container(r.ns, r.pod, r.container)
        if r.attach:
            proc = await provider.attach_stream(ref.container_id, r.tty, r.stdin)
            if size:   # the container's terminal takes the client's size, as exec's does
                await proc.resize(*size)
            return proc, None
        if not r.command:
            return None, internal_status("you must specify at least 1 command")
        return await provider.exec_stream(ref.container_id, r.command, r.tty, r.stdin,
                                          size=size), None
    except ContainerNotFound as e:
        return None, internal_status(f"container not found ({e})")
    except OSError as e:
        what = r.command[0] if r.command else r.container
        return None, internal_status(
            "error executing command in container: failed to exec in container: "
            f"exec: \"{what}\": {e.strerror or e}")


async def run_session(proc: StreamProcess, r: Request, channels: Channels,
                      stdin: Callable[[], Awaitable[bytes]] | None,
                      resizes: "asyncio.Queue[tuple[int, int]] | None",
                      gone: asyncio.Event) -> dict:
    """Pump stdio until the process exits; the Status to report. When the client goes
    away first (`gone`), the process is killed: nobody is left to talk to it."""
    async def pump(read: Callable[[], Awaitable[bytes]], channel: int) -> None:
        while data := await read():
            await channels.write(channel, data)

    async def feed() -> None:
        assert stdin is not None
        while data := await stdin():
            await proc.write_stdin(data)
        await proc.close_stdin()

    async def resize() -> None:
        assert resizes is not None
        while True:
            w, h = await resizes.get()
            with contextlib.suppress(OSError):
                await proc.resize(w, h)

    outputs = []
    if r.stdout or r.tty:
        outputs.append(asyncio.create_task(pump(proc.read_stdout, STDOUT)))
    if r.stderr:
        outputs.append(asyncio.create_task(pump(proc.read_stderr, STDERR)))
    inputs = []
    if stdin is not None:
        inputs.append(asyncio.create_task(feed()))
    if resizes is not None:
        inputs.append(asyncio.create_task(resize()))
    waiter, left = asyncio.create_task(proc.wait()), asyncio.create_task(gone.wait())
    try:
        await asyncio.wait({waiter, left}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            await proc.kill()
        code = await waiter
        if outputs and not gone.is_set():
            await asyncio.wait(outputs, timeout=DRAIN_AFTER_EXIT)
    finally:
        for t in outputs + inputs + [waiter, left]:
            t.cancel()
        await asyncio.gather(*outputs, *inputs, waiter, left, return_exceptions=True)
        await proc.kill()
    return success_status() if code == 0 else exit_status(r.command, code)


async def serve_remotecommand(request: web.Request, provider: StreamingProvider,
                              attach: bool) -> web.StreamResponse:
    r = Request(request, attach)
    upgrade = request.headers.get("Upgrade", "").lower()
    if upgrade == "websocket":
        return await _serve_websocket(request, provider, r)
    if upgrade.startswith("spdy/3.1"):
        return await _serve_spdy(request, provider, r)
    return web.Response(status=400, text="Upgrade request required", content_type="text/plain")


# --- WebSocket --------------------------------------------------------------------------

class _WSChannels(Channels):
    def __init__(self, ws: web.WebSocketResponse, protocol: str):
        self.ws, self.protocol = ws, protocol

    async def write(self, channel: int, data: bytes) -> None:
        await self.ws.send_bytes(bytes([channel]) + data)

    async def finish(self, status: dict) -> None:
        payload = error_payload(self.protocol, status)
        with contextlib.suppress(ConnectionError, RuntimeError):
            if payload:
                await self.ws.send_bytes(bytes([ERROR]) + payload)
            await self.ws.close()


async def _serve_websocket(request: web.Request, provider: StreamingProvider,
                           r: Request) -> web.StreamResponse:
    ws = web.WebSocketResponse(protocols=WS_PROTOCOLS, autoping=True, max_msg_size=0)
    await ws.prepare(request)
    protocol = ws.ws_protocol or V1
    channels = _WSChannels(ws, protocol)
    stdin_q: asyncio.Queue[bytes] = asyncio.Queue()
    resizes: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
    gone = asyncio.Event()
    reader = asyncio.create_task(_ws_reader(ws, stdin_q, resizes, gone))
    try:
        size = await first_size(resizes) if r.tty and protocol in (V5, V4, V3) else None
        proc, status = await start_process(provider, r, size)
        if proc is not None:
            status = await run_session(proc, r, channels, stdin_q.get if r.stdin else None,
                                       resizes if r.tty else None, gone)
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    assert status is not None
    await channels.finish(status)
    return ws


async def _ws_reader(ws: web.WebSocketResponse, stdin_q: "asyncio.Queue[bytes]",
                     resizes: "asyncio.Queue[tuple[int, int]]", gone: asyncio.Event) -> None:
    try:
        async for msg in ws:
            if msg.type != WSMsgType.BINARY or not msg.data:
                continue
            channel, data = msg.data[0], msg.data[1:]
            if channel == STDIN and data:
                stdin_q.put_nowait(data)
            elif channel == RESIZE and data:
                _queue_resize(resizes, data)
            elif channel == CLOSE and data[:1] == bytes([STDIN]):
                stdin_q.put_nowait(b"")
        gone.set()  # the connection closed (not merely cancelled by us)
    finally:
        stdin_q.put_nowait(b"")  # no more input


def _queue_resize(resizes: "asyncio.Queue[tuple[int, int]]", data: bytes) -> None:
    try:
        size = json.loads(data)
        resizes.put_nowait((int(size["Width"]), int(size["Height"])))
    except (ValueError, KeyError, TypeError):
        log.debug("bad resize message %r", data[:100])


# --- SPDY/3.1 ---------------------------------------------------------------------------

class UpgradedTransport:
    """A SPDY transport over a connection taken from aiohttp after 101."""

    def __init__(self, upgraded):
        self.upgraded = upgraded

    async def read(self) -> bytes:
        return await self.upgraded.read(65536)

    async def write(self, data: bytes) -> None:
        await self.upgraded.write(data)

    def close(self) -> None:
        self.upgraded.close()


def negotiate(request: web.Request, supported: tuple[str, ...]) -> str | None:
    """Upstream's handshake: the first of our protocols that the client offers
    (no header at all: the original `channel.k8s.io`, as 1.0 clients)."""
    offered = [p.strip() for v in request.headers.getall("X-Stream-Protocol-Version", [])
               for p in v.split(",") if p.strip()]
    if not offered:
        return V1 if V1 in supported else None
    return next((p for p in supported if p in offered), None)


class SpdyStart:
    """A started SPDY session: streams arrive on `streams`; `runner` reads frames."""

    def __init__(self, session: SpdySession, protocol: str, streams: "asyncio.Queue[SpdyStream]",
                 runner: asyncio.Task, response: web.StreamResponse):
        self.session, self.protocol, self.streams = session, protocol, streams
        self.runner, self.response = runner, response

    async def stop(self) -> None:
        await self.session.close()
        self.runner.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.runner


async def start_spdy(request: web.Request, supported: tuple[str, ...]
                     ) -> SpdyStart | web.Response:
    protocol = negotiate(request, supported)
    if protocol is None:
        offered = request.headers.getall("X-Stream-Protocol-Version", [])
        return web.Response(status=403, content_type="text/plain",
                            text=f"unable to upgrade: unable to negotiate protocol: client "
                                 f"supports {offered}, server accepts {list(supported)}")
    upgraded = await switch_protocols(request, [
        ("Connection", "Upgrade"), ("Upgrade", "SPDY/3.1"),
        ("X-Stream-Protocol-Version", protocol)])
    streams: asyncio.Queue[SpdyStream] = asyncio.Queue()
    session = SpdySession(UpgradedTransport(upgraded), streams.put_nowait)
    return SpdyStart(session, protocol, streams, asyncio.create_task(session.run()),
                     upgraded.response)


class _SpdyChannels(Channels):
    def __init__(self, session: SpdySession, streams: dict[str, SpdyStream], protocol: str):
        self.session, self.streams, self.protocol = session, streams, protocol
        self.by_channel = {STDOUT: streams.get("stdout"), STDERR: streams.get("stderr")}

    async def write(self, channel: int, data: bytes) -> None:
        stream = self.by_channel.get(channel)
        if stream is not None:
            await stream.write(data)

    async def finish(self, status: dict) -> None:
        error = self.streams.get("error")
        payload = error_payload(self.protocol, status)
        if error is not None and payload:
            await error.write(payload)
        for s in self.streams.values():
            await s.close()
        await self.session.close()


async def _serve_spdy(request: web.Request, provider: StreamingProvider,
                      r: Request) -> web.StreamResponse:
    started = await start_spdy(request, SPDY_PROTOCOLS)
    if isinstance(started, web.Response):
        return started
    try:
        try:
            streams = await wait_streams(started.streams, r.wanted_streams(started.protocol),
                                         STREAM_TIMEOUT)
        except asyncio.TimeoutError:
            log.info("exec/attach: the client did not open its streams in time")
            return started.response
        channels = _SpdyChannels(started.session, streams, started.protocol)
        resizes: asyncio.Queue[tuple[int, int]] = asyncio.Queue()
        resize_task = None
        if "resize" in streams:
            resize_task = asyncio.create_task(_spdy_resizes(streams["resize"], resizes))
        size = await first_size(resizes) if resize_task is not None else None
        proc, failure = await start_process(provider, r, size)
        if proc is None:
            assert failure is not None
            if resize_task is not None:
                resize_task.cancel()
            await channels.finish(failure)
            return started.response
        stdin = streams["stdin"].read if "stdin" in streams else None
        try:
            status = await run_session(proc, r, channels, stdin, resizes if r.tty else None,
                                       started.session.closed)
        finally:
            if resize_task is not None:
                resize_task.cancel()
        await channels.finish(status)
        return started.response
    finally:
        await started.stop()


async def _spdy_resizes(stream: SpdyStream, resizes: "asyncio.Queue[tuple[int, int]]") -> None:
    """Resize events are JSON objects one after another on the stream."""
    decoder, buf = json.JSONDecoder(), ""
    while data := await stream.read():
        buf += data.decode("utf-8", "replace")
        while buf.strip():
            try:
                obj, end = decoder.raw_decode(buf.lstrip())
            except ValueError:
                break
            buf = buf.lstrip()[end:]
            _queue_resize(resizes, json.dumps(obj).encode())
