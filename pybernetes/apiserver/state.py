"""What one API server process holds: the store, a watch cache per storage prefix,
one ResourceStore per served resource, and the admission chain."""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson

from ..admission.chain import Chain, default_chain
from ..api.strategy import Registry, Strategy
from ..storage.store import Store
from ..storage.watch_cache import WatchCache
from ..storage.watch_hub import WatchHub
from .config import APIServerConfig
from .resource_store import ResourceStore

if TYPE_CHECKING:
    from ..auth.authz import Authorizer
    from .allocators import Allocators

log = logging.getLogger("pybernetes.apiserver")


def _decode_cached(value: bytes, rev: int) -> dict:
    obj = orjson.loads(value)
    obj.setdefault("metadata", {})["resourceVersion"] = str(rev)
    return obj


class APIState:
    def __init__(self, config: APIServerConfig, store: Store, registry: Registry,
                 admission: Chain | None = None):
        self.config = config
        self.store = store
        self.registry = registry
        self.admission = admission or default_chain(config.disable_admission_plugins)
        self.caches: dict[str, WatchCache] = {}
        self.resources: dict[tuple[str, str, str], ResourceStore] = {}
        self.allocators: "Allocators | None" = None
        self.authorizer: "Authorizer | None" = None  # set by build_app
        for s in registry.strategies:
            if s.virtual:
                continue
            prefix = s.storage_prefix()
            cache = self.caches.get(prefix)
            if cache is None:
                cache = self.caches[prefix] = WatchCache(store, prefix, _decode_cached,
                                                         history=config.watch_cache_history)
            rs = self.resources[(s.group, s.version, s.plural)] = ResourceStore(self, s, cache)
            rs.hooks.extend(s.storage_hooks)

    async def start(self) -> None:
        self.hub = WatchHub(self.store, list(self.caches.values()))
        await self.hub.start()
        from .allocators import Allocators
        self.allocators = Allocators(self)
        log.info("watch caches started for %d resources at revision %d", len(self.caches),
                 await self.store.current_revision())

    async def stop(self) -> None:
        await self.hub.stop()

    def resource(self, group: str, version: str, plural: str) -> ResourceStore | None:
        return self.resources.get((group, version, plural))

    def strategy(self, group: str, version: str, plural: str) -> Strategy | None:
        return self.registry.get(group, version, plural)

    @property
    def namespaces(self) -> ResourceStore:
        return self.resources[("", "v1", "namespaces")]

    async def get_namespace(self, name: str) -> dict | None:
        """The namespace object: the cache first, the store when the cache has not seen it."""
        rs = self.namespaces
        cached = rs.cache.get(rs.key("", name))
        if cached is not None:
            return cached
        found = await rs.try_get("", name)
        return found[0] if found else None
