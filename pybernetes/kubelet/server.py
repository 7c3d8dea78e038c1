"""The kubelet's own HTTPS server (upstream's port 10250): container logs, exec, attach
and port-forward, which the API server proxies `pods/log`, `pods/exec`, ... to.

TLS with a serving cert from the cluster CA; callers must present a client cert from
that CA naming the API server (`kube-apiserver-kubelet-client`) or a member of
`system:masters` — upstream delegates that decision to the API server
(SubjectAccessReview), we keep the kubeadm default outcome. `/healthz` is open.
"""
from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from typing import Awaitable, Callable

from aiohttp import web

from .container_logs import LogOptions, follow_entries, render, since_ns_from
from .streaming import ContainerNotFound, StreamingProvider

log = logging.getLogger("pybernetes.kubelet.server")

APISERVER_CN = "kube-apiserver-kubelet-client"
ADMIN_GROUP = "system:masters"
PROVIDER = web.AppKey("provider", StreamingProvider)


def _text(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=message, content_type="text/plain")


@web.middleware
async def client_cert_auth(request: web.Request,
                           handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                           ) -> web.StreamResponse:
    if request.path == "/healthz":
        return await handler(request)
    transport = request.transport
    cert = transport.get_extra_info("peercert") if transport is not None else None
    if request.app.get("insecure_no_tls") and transport is not None and \
            transport.get_extra_info("sslcontext") is None:
        return await handler(request)
    if not cert:
        return _text(401, "Unauthorized")
    subject = {k: v for rdn in cert.get("subject", ()) for k, v in rdn}
    cn, orgs = subject.get("commonName"), {v for rdn in cert.get("subject", ())
                                           for k, v in rdn if k == "organizationName"}
    if cn != APISERVER_CN and ADMIN_GROUP not in orgs:
        return _text(403, f"Forbidden (user={cn}, verb=get, resource=nodes, "
                          f"subresource=proxy)")
    return await handler(request)


def _flag(q, *names: str) -> bool:
    return any(q.get(n, "").lower() in ("1", "true") for n in names)


def _int_param(q, name: str) -> int | None:
    raw = q.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"invalid {name}: {raw!r} is not an integer")


async def healthz(request: web.Request) -> web.Response:
    return _text(200, "ok")


async def container_logs(request: web.Request) -> web.StreamResponse:
    provider = request.app[PROVIDER]
    ns, pod, name = (request.match_info[k] for k in ("ns", "pod", "container"))
    q = request.query
    try:
        ref = await provider.find_container(ns, pod, name)
    except ContainerNotFound as e:
        return _text(404, str(e))
    previous = _flag(q, "previous")
    path = ref.previous_log_path if previous else ref.log_path
    if not path:
        return _text(400, f'previous terminated container "{name}" in pod "{pod}" not found')
    tail, limit = _int_param(q, "tailLines"), _int_param(q, "limitBytes")
    try:
        since = since_ns_from(q.get("sinceSeconds"), q.get("sinceTime"))
    except ValueError:
        return _text(400, "invalid sinceSeconds")
    opts = LogOptions(follow=_flag(q, "follow") and not previous, tail_lines=tail,
                      since_ns=since, timestamps=_flag(q, "timestamps"), limit_bytes=limit)
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await resp.prepare(request)
    remaining = limit if limit is not None and limit > 0 else None

    async def still_wanted() -> bool:
        # asked at every idle poll: a client that left ends the follow too
        transport = request.transport
        if transport is None or transport.is_closing():
            return False
        return await provider.container_running(ref.container_id)

    try:
        async for entry in follow_entries(path, opts, still_wanted):
            data = render(entry, opts.timestamps)
            if remaining is not None:
                data, remaining = data[:remaining], remaining - len(data[:remaining])
            await resp.write(data)
            if remaining == 0:
                break
    except FileNotFoundError:
        pass  # the log went away (pod deleted) while we read it
    except (ConnectionResetError, ConnectionError):
        return resp  # the client left
    await resp.write_eof()
    return resp


async def exec_handler(request: web.Request) -> web.StreamResponse:
    from .remotecommand import serve_remotecommand
    return await serve_remotecommand(request, request.app[PROVIDER], attach=False)


async def attach_handler(request: web.Request) -> web.StreamResponse:
    from .remotecommand import serve_remotecommand
    return await serve_remotecommand(request, request.app[PROVIDER], attach=True)


async def portforward_handler(request: web.Request) -> web.StreamResponse:
    from .portforward import serve_portforward
    return await serve_portforward(request, request.app[PROVIDER])


def build_app(provider: StreamingProvider, insecure_no_tls: bool = False) -> web.Application:
    app = web.Application(middlewares=[client_cert_auth])
    app[PROVIDER] = provider
    app["insecure_no_tls"] = insecure_no_tls
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/containerLogs/{ns}/{pod}/{container}", container_logs)
    for prefix, handler in (("exec", exec_handler), ("attach", attach_handler)):
        for path in (f"/{prefix}/{{ns}}/{{pod}}/{{container}}",
                     f"/{prefix}/{{ns}}/{{pod}}/{{uid}}/{{container}}"):
            app.router.add_route("GET", path, handler)
            app.router.add_route("POST", path, handler)
    for path in ("/portforward/{ns}/{pod}", "/portforward/{ns}/{pod}/{uid}"):
        app.router.add_route("GET", path, portforward_handler)
        app.router.add_route("POST", path, portforward_handler)
    return app


def server_ssl_context(cert_file: str, key_file: str, client_ca_file: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_file, key_file)
    ctx.load_verify_locations(client_ca_file)
    ctx.verify_mode = ssl.CERT_OPTIONAL  # /healthz answers without one; the rest checks
    return ctx


@dataclass
class KubeletServer:
    provider: StreamingProvider
    address: str = "127.0.0.1"
    port: int = 10250
    cert_file: str = ""
    key_file: str = ""
    client_ca_file: str = ""
    runner: web.AppRunner | None = None

    async def start(self) -> int:
        """Start serving; returns the port (useful with port 0)."""
        ssl_ctx = None
        if self.cert_file:
            ssl_ctx = server_ssl_context(self.cert_file, self.key_file, self.client_ca_file)
        self.runner = web.AppRunner(build_app(self.provider, insecure_no_tls=ssl_ctx is None),
                                    access_log=None, shutdown_timeout=1.0)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.address, self.port, ssl_context=ssl_ctx,
                           reuse_address=True)
        await site.start()
        server = site._server
        if self.port == 0 and server is not None and getattr(server, "sockets", None):
            self.port = server.sockets[0].getsockname()[1]
        log.info("kubelet server on https://%s:%d", self.address, self.port)
        return self.port

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


def main(argv: list[str] | None = None) -> int:
    """`python -m pybernetes.kubelet.server`: the streaming server alone, with the
    host-process provider (the `process` runtime's, and the streaming tests')."""
    import argparse
    import asyncio
    import os
    import signal

    from .streaming import DEFAULT_LOG_ROOT, HostProcessProvider
    p = argparse.ArgumentParser(prog="python -m pybernetes.kubelet.server")
    p.add_argument("--address", default="127.0.0.1")
    p.add_argument("--port", type=int, default=10250)
    p.add_argument("--port-file", default="", help="write the bound port here (with --port 0)")
    p.add_argument("--tls-cert-file", default="")
    p.add_argument("--tls-private-key-file", default="")
    p.add_argument("--client-ca-file", default="")
    p.add_argument("--log-root", default=DEFAULT_LOG_ROOT)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def serve() -> None:
        server = KubeletServer(HostProcessProvider(args.log_root), args.address, args.port,
                               args.tls_cert_file, args.tls_private_key_file,
                               args.client_ca_file)
        port = await server.start()
        if args.port_file:
            tmp = args.port_file + ".tmp"
            with open(tmp, "w") as f:
                f.write(str(port))
            os.replace(tmp, args.port_file)
        done = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, done.set)
        await done.wait()
        await server.stop()

    asyncio.run(serve())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
