"""ConfigMaps and Secrets that pods' volumes and env read, fetched once for all pods
that ask within a moment.

Every pod sync re-reads the objects its volumes project (that is how a ConfigMap
change reaches a mounted file), and every pod of a namespace projects the same
`kube-root-ca.crt`: a burst of 100 pods made ~300 identical GETs. Here concurrent
asks for one object share one request, and an answer (a 404 too) is reused for
`ttl` seconds, so a change reaches pods at most that much later than it would
otherwise. (Upstream's kubelet watches each referenced object instead.)
The objects returned are shared: read them, never change them."""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

Key = tuple[str, str, str]                      # (kind, namespace, name)
Fetch = Callable[[str, str, str], Awaitable[dict | None]]


class RecentObjects:
    def __init__(self, fetch: Fetch, ttl: float = 1.0, max_entries: int = 4096) -> None:
        self._fetch, self.ttl, self.max_entries = fetch, ttl, max_entries
        self._answers: dict[Key, tuple[float, dict | None]] = {}
        self._inflight: dict[Key, asyncio.Future] = {}

    async def get(self, kind: str, namespace: str, name: str) -> dict | None:
        key = (kind, namespace, name)
        hit = self._answers.get(key)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        pending = self._inflight.get(key)
        if pending is None:
            pending = self._inflight[key] = asyncio.ensure_future(self._ask(key))
        # shielded: one caller cancelled (its pod deleted) must not fail the others
        return await asyncio.shield(pending)

    async def _ask(self, key: Key) -> dict | None:
        asked = time.monotonic()
        try:
            obj = await self._fetch(*key)
        finally:
            self._inflight.pop(key, None)
        if len(self._answers) >= self.max_entries:
            self._forget_old()
        self._answers[key] = (asked, obj)
        return obj

    def _forget_old(self) -> None:
        now = time.monotonic()
        for key in [k for k, (at, _) in self._answers.items() if now - at >= self.ttl]:
            del self._answers[key]
        if len(self._answers) >= self.max_entries:
            self._answers.clear()
