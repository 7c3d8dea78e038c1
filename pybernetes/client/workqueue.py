"""The controllers' work queue (client-go's rate-limited workqueue): a key is queued
at most once however often it is added, is never handed to two workers at once, and
a failed key comes back after a per-key exponential delay bounded by an overall rate."""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import Awaitable, Callable

from pybernetes.machinery.errors import StatusError

BASE_DELAY = 0.005   # first retry after 5 ms, as client-go ...
MAX_DELAY = 60.0     # ... but capped at a minute, not 1000 s: a small cluster heals faster
QPS, BURST = 10.0, 100  # overall retry rate (client-go's BucketRateLimiter)


class TokenBucket:
    """Hands out the time at which the next retry may run, `qps` per second after a burst."""

    def __init__(self, qps: float = QPS, burst: int = BURST,
                 clock: Callable[[], float] = time.monotonic):
        self.qps, self.burst, self.clock = qps, burst, clock
        self.tokens, self.last = float(burst), clock()

    def delay(self) -> float:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.last) * self.qps)
        self.last = now
        self.tokens -= 1
        return 0.0 if self.tokens >= 0 else -self.tokens / self.qps


class WorkQueue:
    def __init__(self, base_delay: float = BASE_DELAY, max_delay: float = MAX_DELAY,
                 bucket: TokenBucket | None = None):
        self.base_delay, self.max_delay = base_delay, max_delay
        self.bucket = bucket or TokenBucket()
        self._queue: deque[str] = deque()
        self._dirty: set[str] = set()
        self._processing: set[str] = set()
        self._failures: dict[str, int] = {}
        self._waiters: deque[asyncio.Future] = deque()
        # key -> (when, timer): one pending wake-up per key, the earliest (client-go's
        # delaying queue), so repeated add_after calls neither pile up timers nor
        # process a key once per call
        self._waiting: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self.closed = False

    def __len__(self) -> int:
        return len(self._queue)

    def add(self, key: str) -> None:
        if self.closed or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._wake()

    def add_after(self, key: str, delay: float) -> None:
        """Add `key` once `delay` seconds have passed; an earlier pending add_after of
        the same key wins, a sooner one replaces it."""
        if self.closed:
            return
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        when = loop.time() + delay
        pending = self._waiting.get(key)
        if pending is not None:
            if pending[0] <= when:
                return
            pending[1].cancel()
        self._waiting[key] = (when, loop.call_at(when, self._ready, key))

    def _ready(self, key: str) -> None:
        self._waiting.pop(key, None)
        self.add(key)

    def add_rate_limited(self, key: str) -> None:
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        per_key = min(self.base_delay * 2 ** n, self.max_delay)
        self.add_after(key, max(per_key, self.bucket.delay()))

    def forget(self, key: str) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: str) -> int:
        return self._failures.get(key, 0)

    async def get(self) -> str | None:
        """The next key, marked as being processed; None once the queue is shut down."""
        while not self._queue:
            if self.closed:
                return None
            fut = asyncio.get_running_loop().create_future()
            self._waiters.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut in self._waiters:
                    self._waiters.remove(fut)
                elif self._queue:
                    self._wake()  # we were woken for an item: pass the wake-up on
                raise
        key = self._queue.popleft()
        self._processing.add(key)
        self._dirty.discard(key)
        return key

    def done(self, key: str) -> None:
        """The worker finished `key`; if it was added meanwhile it is queued again."""
        self._processing.discard(key)
        if key in self._dirty:
            self._queue.append(key)
            self._wake()

    def shutdown(self) -> None:
        self.closed = True
        for _, timer in self._waiting.values():
            timer.cancel()
        self._waiting.clear()
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)

    def _wake(self) -> None:
        while self._waiters:
            fut = self._waiters.popleft()
            if not fut.done():
                fut.set_result(None)
                return


async def serve(queue: WorkQueue, sync: Callable[[str], Awaitable[None]], log: logging.Logger,
                what: str = "key", max_retries: int | None = None) -> None:
    """One worker: take keys until the queue shuts down and `sync` each; a failed key
    comes back with the queue's rate limit (conflicts quietly: the next sync reads
    fresh state), or is dropped after `max_retries` failures in a row."""
    while True:
        key = await queue.get()
        if key is None:
            return
        try:
            await sync(key)
            queue.forget(key)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - any failure is retried with back-off
            conflict = isinstance(e, StatusError) and e.code == 409
            if max_retries is not None and queue.num_requeues(key) >= max_retries:
                log.error("%s %s: dropped after %d retries: %s", what, key, max_retries, e)
                queue.forget(key)
            else:
                expected = isinstance(e, (StatusError, OSError))  # no traceback for these
                log.log(logging.DEBUG if conflict else logging.WARNING,
                        "%s %s: sync failed, retrying: %s", what, key, e, exc_info=not expected)
                queue.add_rate_limited(key)
        finally:
            queue.done(key)
