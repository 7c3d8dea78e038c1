"""`pybernetes dns`: informers on Services, EndpointSlices and Namespaces feed the
zone; UDP/TCP listeners answer from it and forward the rest; the kube-dns Service's
endpoints are kept pointing here; /metrics, /health and /ready on the metrics port."""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from aiohttp import web

from pybernetes.client.api import ENDPOINTSLICES, NAMESPACES, SERVICES, APIClient
from pybernetes.client.informer import Informer, object_key
from pybernetes.dns.forward import Forwarder
from pybernetes.dns.kube_dns import Publisher
from pybernetes.dns.resolver import Resolver
from pybernetes.dns.server import DNSServer
from pybernetes.dns.zone import DEFAULT_TTL, SERVICE_NAME_LABEL, Zone

log = logging.getLogger(__name__)


@dataclass
class Config:
    kubeconfig: str
    cluster_dns: list[str]
    bind_address: str
    cluster_domain: str = "cluster.local"
    dns_port: int = 53
    metrics_port: int = 9153
    upstreams: list[tuple[str, int]] = field(default_factory=list)
    ttl: int = DEFAULT_TTL
    node_name: str = ""
    publish: bool = True


def slice_service_key(sl: dict) -> list[str]:
    md = sl.get("metadata") or {}
    svc = (md.get("labels") or {}).get(SERVICE_NAME_LABEL)
    return [f"{md.get('namespace')}/{svc}"] if svc else []


class ZoneFeed:
    """Informer events → zone updates, one service at a time."""

    def __init__(self, client: APIClient, zone: Zone):
        self.zone = zone
        self.services = Informer(client, SERVICES)
        self.slices = Informer(client, ENDPOINTSLICES)
        self.namespaces = Informer(client, NAMESPACES)
        self.slices.add_index("service", slice_service_key)
        self.on_kube_dns = lambda: None
        self.services.add_handler(lambda o: self._service(object_key(o)),
                                  lambda o, n: self._service(object_key(n)),
                                  lambda o: self._service(object_key(o)))
        self.slices.add_handler(self._slice, lambda o, n: (self._slice(o), self._slice(n)),
                                self._slice)
        ns = lambda *_: zone.set_namespaces(self.namespaces.keys())  # noqa: E731
        self.namespaces.add_handler(ns, ns, ns)

    def _service(self, key: str) -> None:
        ns, _, name = key.partition("/")
        self.zone.set_service(key, self.services.get(ns, name),
                              self.slices.by_index("service", key))
        if key == "kube-system/kube-dns":
            self.on_kube_dns()

    def _slice(self, sl: dict) -> None:
        for key in slice_service_key(sl):
            self._service(key)

    @property
    def informers(self) -> tuple[Informer, ...]:
        return self.services, self.slices, self.namespaces

    @property
    def synced(self) -> bool:
        return all(i.has_synced for i in self.informers)


async def metrics_app(resolver: Resolver, feed: ZoneFeed) -> web.Application:
    async def metrics(_req: web.Request) -> web.Response:
        s = resolver.stats
        lines = ["# TYPE coredns_dns_requests_total counter"]
        lines += [f'coredns_dns_requests_total{{proto="{p}"}} {n}'
                  for p, n in s.requests.items()]
        lines.append("# TYPE coredns_dns_responses_total counter")
        lines += [f'coredns_dns_responses_total{{rcode="{r}"}} {n}'
                  for r, n in sorted(s.rcodes.items())]
        lines += ["# TYPE coredns_cache_hits_total counter",
                  f"coredns_cache_hits_total {s.cache_hits}",
                  "# TYPE coredns_forward_requests_total counter",
                  f"coredns_forward_requests_total {s.forwarded}", ""]
        return web.Response(text="\n".join(lines), content_type="text/plain")

    async def health(_req: web.Request) -> web.Response:
        return web.Response(text="OK")

    async def ready(_req: web.Request) -> web.Response:
        if feed.synced:
            return web.Response(text="OK")
        return web.Response(status=503, text="kubernetes informers not synced\n")

    app = web.Application()
    app.add_routes([web.get("/metrics", metrics), web.get("/health", health),
                    web.get("/ready", ready)])
    return app


async def _serve_metrics(app: web.Application, host: str, port: int) -> tuple[web.AppRunner,
                                                                              int]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    sock = site._server.sockets[0]  # noqa: SLF001 - the only way to learn an ephemeral port
    return runner, sock.getsockname()[1]


def _drop_loops(cfg: Config, port: int) -> list[tuple[str, int]]:
    """Never forward to ourselves (directly or via the cluster DNS address)."""
    own = {(cfg.bind_address, port)} | {(ip, 53) for ip in cfg.cluster_dns}
    kept = [u for u in cfg.upstreams if u not in own]
    for u in cfg.upstreams:
        if u in own:
            log.warning("upstream %s:%d is this server itself; not forwarding there", *u)
    if not kept:
        log.warning("no upstream resolvers: names outside %s get SERVFAIL",
                    cfg.cluster_domain)
    return kept


async def run(cfg: Config) -> None:
    client = await APIClient.from_kubeconfig(cfg.kubeconfig, user_agent="pybernetes-dns")
    zone = Zone(cfg.cluster_domain, cfg.ttl, cfg.cluster_dns)
    feed = ZoneFeed(client, zone)
    forwarder = Forwarder([])
    resolver = Resolver(zone, forwarder, synced=lambda: feed.synced)
    server = DNSServer(resolver, cfg.bind_address, cfg.dns_port)
    runner = None
    publisher = None
    tasks: list[asyncio.Task] = []
    try:
        await server.start()
        forwarder.upstreams = _drop_loops(cfg, server.port)
        metrics_port = 0
        if cfg.metrics_port >= 0:
            runner, metrics_port = await _serve_metrics(await metrics_app(resolver, feed),
                                                        cfg.bind_address, cfg.metrics_port)
        log.info("serving DNS for %s on %s port %d (UDP and TCP), forwarding the rest to %s; "
                 "metrics on port %d", cfg.cluster_domain, cfg.bind_address, server.port,
                 ", ".join(f"{h}:{p}" for h, p in forwarder.upstreams) or "nobody",
                 metrics_port)
        for inf in feed.informers:
            await inf.start()
        if cfg.publish:
            publisher = Publisher(client, cfg.cluster_dns, cfg.bind_address, server.port,
                                  metrics_port, cfg.node_name)
            feed.on_kube_dns = publisher.wake.set
            tasks.append(asyncio.create_task(publisher.run()))
        await _log_synced(feed)
        await asyncio.Event().wait()
    finally:
        for t in tasks:
            t.cancel()
        if publisher is not None:
            try:
                await asyncio.wait_for(publisher.withdraw(), 5)
            except asyncio.TimeoutError:
                pass
        await server.stop()
        forwarder.close()
        if runner is not None:
            await runner.cleanup()
        for inf in feed.informers:
            await inf.stop()
        await client.close()


async def _log_synced(feed: ZoneFeed) -> None:
    for inf in feed.informers:
        await inf.wait_synced(timeout=None)
    log.info("zone %s synced: %d services, %d namespaces", feed.zone.domain,
             len(feed.services.items), len(feed.namespaces.items))
