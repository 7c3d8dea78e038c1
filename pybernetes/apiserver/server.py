"""Run one API server process: open the store, fill the watch caches, bootstrap the
standard objects, serve HTTPS until SIGINT/SIGTERM."""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from aiohttp import web

from ..api.registry import registry
from ..storage.store import Store, open_store
from .app import build_app
from .bootstrap import bootstrap
from .config import APIServerConfig
from .state import APIState

log = logging.getLogger("pybernetes.apiserver")


async def compaction_loop(store: Store, interval: float) -> None:
    """Every `interval`, compact to the revision seen one interval ago (as upstream does),
    so history lives at least one interval for continue tokens and Exact lists."""
    previous = 0
    while True:
        await asyncio.sleep(interval)
        try:
            current = await store.current_revision()
            if previous and previous > await store.compacted_revision():
                await store.compact(previous)
                log.info("compacted store to revision %d", previous)
            previous = current
        except Exception:
            log.exception("compaction failed; will retry")


async def start(config: APIServerConfig) -> tuple[web.AppRunner, APIState, list[asyncio.Task]]:
    """Start serving; returns what `stop` needs. Used by `run` and by in-process tests."""
    from ..auth.authn import make_server_ssl_context
    store = open_store(config.storage, data_dir=config.data_dir,
                       etcd_endpoints=config.etcd_endpoints)
    await store.start()
    api = APIState(config, store, registry())
    await api.start()
    await bootstrap(api)
    app = build_app(api)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    ssl_ctx = None
    if config.tls_cert_file:
        ssl_ctx = make_server_ssl_context(config.tls_cert_file, config.tls_private_key_file,
                                          config.client_ca_file or None)
    for address in _listen_addresses(config):
        site = web.TCPSite(runner, address, config.secure_port, ssl_context=ssl_ctx,
                           backlog=1024, reuse_address=True)
        await site.start()
    tasks = [asyncio.create_task(compaction_loop(store, config.compaction_interval))]
    scheme = "https" if ssl_ctx else "http"
    log.info("serving on %s://%s:%d (storage: %s)", scheme,
             " and ".join(_listen_addresses(config)), config.secure_port, config.storage)
    return runner, api, tasks


def _listen_addresses(config: APIServerConfig) -> list[str]:
    """The bind address, plus the advertised one when binding does not cover it (a
    loopback-bound server stays reachable for pods through the `kubernetes` Service)."""
    from .bootstrap import advertised_address
    if config.bind_address in ("0.0.0.0", "::"):
        return [config.bind_address]
    advertised = advertised_address(config)
    return [config.bind_address] + ([advertised] if advertised != config.bind_address else [])


async def stop(runner: web.AppRunner, api: APIState, tasks: list[asyncio.Task]) -> None:
    for t in tasks:
        t.cancel()
    await runner.cleanup()
    await api.stop()
    await api.store.close()


async def serve(config: APIServerConfig) -> None:
    runner, api, tasks = await start(config)
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, done.set)
    await done.wait()
    log.info("shutting down")
    await stop(runner, api, tasks)


def run(config: APIServerConfig) -> None:
    logging.basicConfig(level=getattr(logging, config.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve(config))
    else:
        uvloop.run(serve(config))
