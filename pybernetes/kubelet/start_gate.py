"""How many pods the kubelet starts at once.

Starting a pod is CPU work on the node (namespaces, CNI plugins, runc, the API writes),
so when 100 pods arrive together and all of them start at the same time they share the
CPU and all finish late: in a measured burst of 100 on two cores, with every pod
started at once, the first pod ran after 6.8 s; with eight at a time it ran after 1 s and
the last as soon as before. The gate bounds the pods between "no sandbox yet" and
"containers started", first come first served. Waiting that is not CPU work (an image
pull, a postStart hook) happens outside it, so a slow registry never holds back pods
whose images are cached."""
from __future__ import annotations

import asyncio
import contextlib
import os
from typing import AsyncIterator


def default_slots() -> int:
    return max(4, 4 * (os.cpu_count() or 1))


class StartGate:
    def __init__(self, slots: int) -> None:
        """slots <= 0: no bound."""
        self._sem = asyncio.Semaphore(slots) if slots > 0 else None
        self._holders: set[object] = set()

    @contextlib.asynccontextmanager
    async def hold(self, owner: object) -> AsyncIterator[None]:
        """A slot for `owner` (a pod's work) while the block runs."""
        if self._sem is None:
            yield
            return
        await self._sem.acquire()
        self._holders.add(owner)
        try:
            yield
        finally:
            if owner in self._holders:
                self._holders.discard(owner)
                self._sem.release()

    @contextlib.asynccontextmanager
    async def released(self, owner: object) -> AsyncIterator[None]:
        """Give the owner's slot (if it has one) to others while the block waits."""
        if self._sem is None or owner not in self._holders:
            yield
            return
        self._holders.discard(owner)
        self._sem.release()
        try:
            yield
        finally:
            await self._sem.acquire()
            self._holders.add(owner)
