"""One store watch feeding every watch cache.

Why one watch and not one per cache: a cache must know the store's *global*
revision to answer "is my view at least as new as revision N?" (the consistent
LIST of Kubernetes 1.31+). A per-prefix watch only sees its own prefix's
revisions, so an idle resource's cache would look stale forever. One watch over
`/registry/` sees every revision: each event goes to the cache of its prefix and
advances all caches' revision.
"""
from __future__ import annotations

import asyncio
import logging

from .store import CompactedError, Store
from .watch_cache import WatchCache

log = logging.getLogger("pybernetes.storage")
ROOT = "/registry/"


class WatchHub:
    def __init__(self, store: Store, caches: list[WatchCache]):
        self.store = store
        self.caches = caches
        self._by_prefix = {c.prefix: c for c in caches}
        self._task: asyncio.Task | None = None
        self._revision = 0
        for c in caches:
            c.clock = self._clock

    def _clock(self) -> int:
        return self._revision

    async def start(self) -> None:
        await self._relist_all()
        self._task = asyncio.create_task(self._run(), name="watch-hub")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
        for c in self.caches:
            c.close_subscribers("stopped")

    async def _relist_all(self) -> None:
        start = await self.store.current_revision()
        await asyncio.gather(*(c.relist() for c in self.caches))
        # every cache listed at or after `start`; events after it are replayed and
        # each cache skips what its list already holds
        self._revision = start
        self._advance(max(start, 0))

    def _cache_for(self, key: str) -> WatchCache | None:
        # keys are /registry/<resource>/...: the prefix is the first two segments
        end = key.find("/", len(ROOT))
        return self._by_prefix.get(key[:end + 1]) if end > 0 else None

    def _advance(self, rev: int) -> None:
        """Caches read the global revision through their clock; only waiters need waking."""
        for c in self.caches:
            if c.has_waiters:
                c.advance(rev)

    async def _run(self) -> None:
        delay = 0.05
        while True:
            try:
                async for ev in self.store.watch(ROOT, self._revision):
                    cache = self._cache_for(ev.key)
                    if cache is not None:
                        cache.apply(ev)
                    self._revision = ev.revision
                    self._advance(ev.revision)
                    delay = 0.05
                raise ConnectionError("store watch ended")
            except asyncio.CancelledError:
                raise
            except CompactedError:
                log.info("watch hub: history compacted, relisting every cache")
                for c in self.caches:
                    c.close_subscribers("relisted")
                await self._relist_all()
            except Exception as e:
                log.warning("watch hub: store watch failed (%s), retrying", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
