"""Per-resource watch cache: one store watch feeds current state, history and subscribers.

The API server keeps one WatchCache per resource prefix (e.g. "/registry/pods/").
Objects are decoded once, here; every subscriber shares the same dicts, so they
must treat them as read-only. The newest events also carry a memo in which the API
server keeps each event's encodings, so a line is encoded once for all its watchers
(upstream's cachingObject); older events drop it to bound memory. Fan-out is a deque
append per subscriber: a subscriber whose buffer is full is closed rather than allowed
to stall the cache (its client re-watches from the last resourceVersion it saw, as with
Kubernetes).

`revision` advances only with events under this prefix (no progress notifications
in the Store contract), so callers should hand out `revision` as the list
resourceVersion and use `wait_until` only for revisions of this resource.
"""
from __future__ import annotations

import asyncio
import bisect
import collections
import logging
from dataclasses import dataclass
from typing import Callable

from .store import CompactedError, Event, Store

log = logging.getLogger(__name__)

Decode = Callable[[bytes, int], dict]

_LIST_PAGE = 5000
MEMO_WINDOW = 1024  # the newest events keep their encodings (at least a subscriber's buffer)
_RETRY_MIN, _RETRY_MAX = 0.05, 2.0


@dataclass(slots=True)
class CacheEvent:
    type: str               # "ADDED" | "MODIFIED" | "DELETED"
    key: str
    obj: dict
    prev_obj: dict | None
    revision: int
    # per-representation encodings of this event, shared by every watcher that sends it
    # (the API server fills it); {} while the event is recent, None once it is not
    memo: dict | None = None


class Subscription:
    """Async iterator of CacheEvents: the backlog (history) first, then live events.

    Ends (StopAsyncIteration) when closed; `closed_reason` says why
    ("too slow", "relisted", "stopped", "closed").
    """

    def __init__(self, cache: "WatchCache", key_prefix: str, backlog: list[CacheEvent],
                 max_buffer: int, after_rev: int):
        self.key_prefix = key_prefix
        self.after_rev = after_rev
        self.closed_reason: str | None = None
        self._cache = cache
        self._backlog = collections.deque(backlog)
        self._buffer: collections.deque[CacheEvent] = collections.deque()
        self._max_buffer = max_buffer
        self._waiter: asyncio.Future | None = None

    def _push(self, ev: CacheEvent) -> bool:
        """Called by the cache; False means the subscriber is too far behind."""
        if ev.revision <= self.after_rev:
            return True     # subscribed from a revision the cache had not reached yet
        if len(self._buffer) >= self._max_buffer:
            return False
        self._buffer.append(ev)
        self._wake()
        return True

    def _close(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
        self._wake()

    def _wake(self) -> None:
        w = self._waiter
        if w is not None and not w.done():
            w.set_result(None)

    def close(self) -> None:
        """Stop receiving; the iterator ends after what is already buffered."""
        self._cache._unsubscribe(self)
        self._close("closed")

    def drain(self, limit: int) -> list[CacheEvent]:
        """Up to `limit` events that are ready now (backlog first), without waiting."""
        out: list[CacheEvent] = []
        for q in (self._backlog, self._buffer):
            while q and len(out) < limit:
                out.append(q.popleft())
        return out

    @property
    def pending(self) -> bool:
        return bool(self._backlog or self._buffer)

    async def wait(self, timeout: float) -> None:
        """Until an event is ready, the subscription is closed, or `timeout` seconds pass."""
        if self._backlog or self._buffer or self.closed_reason is not None:
            return
        loop = asyncio.get_running_loop()
        fut = self._waiter = loop.create_future()
        timer = loop.call_later(max(timeout, 0.0), _resolve, fut)
        try:
            await fut
        finally:
            timer.cancel()
            self._waiter = None

    def __aiter__(self) -> "Subscription":
        return self

    async def __anext__(self) -> CacheEvent:
        while True:
            if self._backlog:
                return self._backlog.popleft()
            if self._buffer:
                return self._buffer.popleft()
            if self.closed_reason is not None:
                raise StopAsyncIteration
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    async def __aenter__(self) -> "Subscription":
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()


def _resolve(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


class WatchCache:
    def __init__(self, store: Store, prefix: str, decode: Decode, history: int = 100_000,
                 subscriber_buffer: int = 1000):
        self.store = store
        self.prefix = prefix
        self.decode = decode
        self.history = history
        self.subscriber_buffer = subscriber_buffer
        self.memo_window = max(MEMO_WINDOW, subscriber_buffer)
        self._objs: dict[str, dict] = {}
        self._keys: list[str] = []              # sorted keys of _objs
        self._events: list[CacheEvent] = []     # history, oldest first
        self._event_revs: list[int] = []        # parallel to _events, for bisect
        self._floor = 0                         # all events with revision > floor are kept
        self._revision = 0
        self._subs: dict[str, set[Subscription]] = {}
        self._rev_waiters: list[tuple[int, asyncio.Future]] = []
        self._task: asyncio.Task | None = None
        # a feeder (WatchHub) may set a clock giving the global revision it has seen
        self.clock: Callable[[], int] | None = None

    # ---- lifecycle ---------------------------------------------------------

    async def start(self) -> None:
        if self._task is not None:
            return
        await self._relist()
        self._task = asyncio.create_task(self._run(), name=f"watch-cache {self.prefix}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        self._close_all("stopped")

    @property
    def revision(self) -> int:
        """The newest revision this cache's view reflects: its own last event, or the
        global revision its feeder has seen (no events for this prefix up to there)."""
        clock = self.clock
        if clock is not None:
            c = clock()
            if c > self._revision:
                return c
        return self._revision

    async def wait_until(self, rev: int, timeout: float = 3.0) -> None:
        if self.revision >= rev:
            return
        fut = asyncio.get_running_loop().create_future()
        self._rev_waiters.append((rev, fut))
        try:
            await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            raise TimeoutError(f"watch cache for {self.prefix} did not reach revision {rev} "
                               f"within {timeout}s (at {self._revision})") from None
        finally:
            self._rev_waiters = [(r, f) for r, f in self._rev_waiters if f is not fut]

    # ---- reads ---------------------------------------------------------------

    def get(self, key: str) -> dict | None:
        return self._objs.get(key)

    def list(self, key_prefix: str) -> list[dict]:
        lo = bisect.bisect_left(self._keys, key_prefix)
        out = []
        for key in self._keys[lo:]:
            if not key.startswith(key_prefix):
                break
            out.append(self._objs[key])
        return out

    def events_since(self, key_prefix: str, after_rev: int) -> list[CacheEvent]:
        if after_rev < self._floor:
            raise CompactedError(after_rev, self._floor)
        i = bisect.bisect_right(self._event_revs, after_rev)
        return [ev for ev in self._events[i:] if ev.key.startswith(key_prefix)]

    def subscribe(self, key_prefix: str, after_rev: int) -> Subscription:
        backlog = self.events_since(key_prefix, after_rev)
        sub = Subscription(self, key_prefix, backlog, self.subscriber_buffer, after_rev)
        self._subs.setdefault(key_prefix, set()).add(sub)
        return sub

    # ---- feeding by an outside driver (one store watch for many caches) -------
    # A feeder such as WatchHub calls these instead of start(): relist() once, then
    # apply() each event under this prefix in revision order, and advance() with
    # every global revision so an idle cache still knows how new its view is.

    async def relist(self) -> None:
        """Reload from the store (history restarts at the list revision)."""
        await self._relist()

    def apply(self, ev: Event) -> None:
        """Apply one store event under this prefix (events at or below `revision` are ignored)."""
        self._apply(ev)

    def advance(self, rev: int) -> None:
        """Note that the store has no further events for this prefix up to `rev`
        (a feeder with a `clock` only needs to call this while someone waits)."""
        if rev > self._revision:
            self._set_revision(rev)

    @property
    def has_waiters(self) -> bool:
        return bool(self._rev_waiters)

    def close_subscribers(self, reason: str) -> None:
        """End every subscription (e.g. "relisted" after the feeder lost history)."""
        self._close_all(reason)

    # ---- feeding ---------------------------------------------------------------

    async def _relist(self) -> None:
        """Load current state from the store; history restarts at the list revision."""
        objs: dict[str, dict] = {}
        after, at_rev = "", 0
        while True:
            items, rev, more = await self.store.list(self.prefix, limit=_LIST_PAGE,
                                                     start_after=after, at_rev=at_rev)
            at_rev = rev
            for kv in items:
                objs[kv.key] = self.decode(kv.value, kv.mod_revision)
            if not more or not items:
                break
            after = items[-1].key
        self._objs, self._keys = objs, sorted(objs)
        self._events, self._event_revs = [], []
        self._set_revision(max(at_rev, self._revision))
        self._floor = self._revision

    async def _run(self) -> None:
        delay = _RETRY_MIN
        while True:
            try:
                async for ev in self.store.watch(self.prefix, self._revision):
                    self._apply(ev)
                    delay = _RETRY_MIN
                raise ConnectionError("store watch ended")
            except asyncio.CancelledError:
                raise
            except CompactedError:
                log.info("watch cache %s: history compacted, relisting", self.prefix)
                self._close_all("relisted")
                await self._retry(self._relist)
            except Exception as e:   # store hiccup: re-watch from where we are
                log.warning("watch cache %s: watch failed (%s), retrying", self.prefix, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)

    async def _retry(self, fn: Callable) -> None:
        delay = _RETRY_MIN
        while True:
            try:
                return await fn()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("watch cache %s: %s failed (%s), retrying", self.prefix,
                            getattr(fn, "__name__", fn), e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX)

    def _apply(self, ev: Event) -> None:
        if ev.revision <= self._revision:
            return      # already reflected (e.g. a re-watch overlapping a relist)
        key, prev = ev.key, self._objs.get(ev.key)
        if ev.type == "delete":
            obj = self._deleted_obj(ev, prev)
            if prev is not None:
                del self._objs[key]
                self._keys.pop(bisect.bisect_left(self._keys, key))
            cev = CacheEvent("DELETED", key, obj, prev, ev.revision)
        else:
            obj = self.decode(ev.value, ev.revision)  # type: ignore[arg-type]
            if prev is None:
                bisect.insort(self._keys, key)
            self._objs[key] = obj
            cev = CacheEvent("ADDED" if prev is None else "MODIFIED", key, obj, prev, ev.revision)
        self._record(cev)
        self._fan_out(cev)
        self._set_revision(ev.revision)

    def _deleted_obj(self, ev: Event, prev: dict | None) -> dict:
        """The last state, stamped with the delete revision."""
        if ev.prev_value is not None:
            return self.decode(ev.prev_value, ev.revision)
        # prev value compacted away in the store: reuse our copy with a new resourceVersion
        obj = dict(prev or {})
        obj["metadata"] = dict(obj.get("metadata") or {}, resourceVersion=str(ev.revision))
        return obj

    def _record(self, cev: CacheEvent) -> None:
        cev.memo = {}
        self._events.append(cev)
        self._event_revs.append(cev.revision)
        if len(self._events) > self.memo_window:
            self._events[-self.memo_window - 1].memo = None   # bounded memory: O(1) per event
        excess = len(self._events) - self.history
        if excess > max(self.history // 4, 1):    # trim in chunks: amortised O(1)
            self._floor = self._event_revs[excess - 1]
            del self._events[:excess]
            del self._event_revs[:excess]

    def _fan_out(self, cev: CacheEvent) -> None:
        for key_prefix, subs in self._subs.items():
            if not cev.key.startswith(key_prefix):
                continue
            slow = [s for s in subs if not s._push(cev)]
            for s in slow:
                subs.discard(s)
                s._close("too slow")

    def _set_revision(self, rev: int) -> None:
        self._revision = rev
        if self._rev_waiters:
            for r, fut in self._rev_waiters:
                if r <= rev and not fut.done():
                    fut.set_result(None)

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.key_prefix)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.key_prefix]

    def _close_all(self, reason: str) -> None:
        subs, self._subs = self._subs, {}
        for group in subs.values():
            for s in group:
                s._close(reason)

