"""WatchCache over a real store (SQLite; one test also over etcd)."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from pybernetes.storage.sqlite import SQLiteStore
from pybernetes.storage.store import CompactedError, Store
from pybernetes.storage.watch_cache import CacheEvent, Subscription, WatchCache

P = "/registry/configmaps/"


def decode(value: bytes, rev: int) -> dict:
    obj = json.loads(value)
    obj["metadata"]["resourceVersion"] = str(rev)
    return obj


def cm(ns: str, name: str, data: str = "") -> bytes:
    return json.dumps({"kind": "ConfigMap", "metadata": {"namespace": ns, "name": name},
                       "data": {"v": data}}).encode()


@pytest.fixture
async def sqlite_store(tmp_path: Path):
    async with SQLiteStore(str(tmp_path / "state.db"), poll_interval=0.05) as s:
        yield s


@pytest.fixture
async def cache(sqlite_store: Store):
    c = WatchCache(sqlite_store, P, decode, history=1000, subscriber_buffer=50)
    await c.start()
    yield c
    await c.stop()


async def collect(sub: Subscription, n: int, timeout: float = 5.0) -> list[CacheEvent]:
    out: list[CacheEvent] = []

    async def run() -> None:
        async for ev in sub:
            out.append(ev)
            if len(out) >= n:
                return
    await asyncio.wait_for(run(), timeout)
    return out


async def test_initial_list_then_live_state(sqlite_store: Store) -> None:
    await sqlite_store.create(P + "b/one", cm("b", "one", "1"))
    r_a = await sqlite_store.create(P + "a/two", cm("a", "two", "2"))
    await sqlite_store.create("/registry/secrets/a/s", b"{}")   # other resource: not cached
    cache = WatchCache(sqlite_store, P, decode)
    await cache.start()
    try:
        r0 = cache.revision
        assert r0 == await sqlite_store.current_revision()
        assert [o["metadata"]["name"] for o in cache.list(P)] == ["two", "one"]
        assert cache.get(P + "a/two")["metadata"]["resourceVersion"] == str(r_a)

        r_u = await sqlite_store.update(P + "a/two", cm("a", "two", "2b"), r_a)
        r_c = await sqlite_store.create(P + "a/three", cm("a", "three"))
        r_d, _ = await sqlite_store.delete(P + "b/one")
        await cache.wait_until(r_d)
        assert [o["metadata"]["name"] for o in cache.list(P + "a/")] == ["three", "two"]
        assert cache.list(P + "b/") == []
        assert cache.get(P + "a/two")["data"] == {"v": "2b"}

        with pytest.raises(CompactedError):     # older than what the cache started from
            cache.events_since(P, r_a)
        events = cache.events_since(P, r0)
        assert [(e.type, e.key, e.revision) for e in events] == [
            ("MODIFIED", P + "a/two", r_u), ("ADDED", P + "a/three", r_c),
            ("DELETED", P + "b/one", r_d)]
        deleted = events[-1]
        # DELETED carries the last state stamped with the delete revision
        assert deleted.obj["data"] == {"v": "1"}
        assert deleted.obj["metadata"]["resourceVersion"] == str(r_d)
        assert events[0].prev_obj["data"] == {"v": "2"}
        assert cache.events_since(P + "b/", r0) == [deleted]
        with pytest.raises(TimeoutError):
            await cache.wait_until(r_d + 10, timeout=0.2)
    finally:
        await cache.stop()


async def test_subscribe_history_then_live(cache: WatchCache, sqlite_store: Store) -> None:
    r1 = await sqlite_store.create(P + "ns/a", cm("ns", "a"))
    r2 = await sqlite_store.update(P + "ns/a", cm("ns", "a", "x"), r1)
    await sqlite_store.create(P + "other/z", cm("other", "z"))
    await cache.wait_until(r2)
    sub = cache.subscribe(P + "ns/", r1)
    r3, _ = await sqlite_store.delete(P + "ns/a")
    got = await collect(sub, 2)
    assert [(e.type, e.revision) for e in got] == [("MODIFIED", r2), ("DELETED", r3)]
    sub.close()
    assert [e async for e in sub] == []     # closed iterator ends


async def test_too_old_revision_is_compacted(sqlite_store: Store) -> None:
    cache = WatchCache(sqlite_store, P, decode, history=8)
    start = await sqlite_store.current_revision()
    await cache.start()
    try:
        revs = [await sqlite_store.create(f"{P}n/{i}", cm("n", str(i))) for i in range(30)]
        await cache.wait_until(revs[-1])
        with pytest.raises(CompactedError):
            cache.events_since(P, start)
        with pytest.raises(CompactedError):
            cache.subscribe(P, revs[5])
        # the most recent `history` events are always there
        assert [e.revision for e in cache.events_since(P, revs[-9])] == revs[-8:]
    finally:
        await cache.stop()


async def test_slow_subscriber_is_closed_not_blocking(cache: WatchCache,
                                                      sqlite_store: Store) -> None:
    slow = cache.subscribe(P, cache.revision)
    fast = cache.subscribe(P, cache.revision)
    fast_got: list[CacheEvent] = []

    async def drain_fast() -> None:
        async for ev in fast:
            fast_got.append(ev)
            if len(fast_got) == 120:
                return
    task = asyncio.create_task(drain_fast())
    for i in range(120):
        await sqlite_store.create(f"{P}s/{i:03d}", cm("s", str(i)))
    await asyncio.wait_for(task, 10)
    assert slow.closed_reason == "too slow"
    # it still yields what it buffered (a consistent prefix), then ends
    buffered = [e async for e in slow]
    assert 0 < len(buffered) <= 50
    assert [e.revision for e in buffered] == [e.revision for e in fast_got[:len(buffered)]]
    assert fast.closed_reason is None and len(fast_got) == 120


async def test_fan_out_to_100_subscribers(cache: WatchCache, sqlite_store: Store) -> None:
    n_subs, n_writes = 100, 30
    subs = [cache.subscribe(P, cache.revision) for _ in range(n_subs)]
    received: list[list[float]] = [[] for _ in subs]
    first_objs: list[dict] = []

    async def consume(i: int, sub: Subscription) -> None:
        async for ev in sub:
            if not received[i]:
                first_objs.append(ev.obj)
            received[i].append(time.monotonic())
            if len(received[i]) == n_writes:
                return
    tasks = [asyncio.create_task(consume(i, s)) for i, s in enumerate(subs)]
    for i in range(n_writes):
        await sqlite_store.create(f"{P}f/{i:03d}", cm("f", str(i)))
        await asyncio.sleep(0.01)
    await asyncio.wait_for(asyncio.gather(*tasks), 10)
    # every subscriber got every event, in order (latency is the benchmark's business)
    assert all(len(r) == n_writes and r == sorted(r) for r in received)
    # subscribers share one decoded object per event (no per-subscriber copies)
    assert len(first_objs) == n_subs and all(o is first_objs[0] for o in first_objs)


async def test_relist_after_compaction_closes_old_subscribers(cache: WatchCache,
                                                               sqlite_store: Store) -> None:
    r1 = await sqlite_store.create(P + "r/a", cm("r", "a"))
    await cache.wait_until(r1)
    sub = cache.subscribe(P, r1)
    # simulate a long disconnect: the cache stops watching while the store moves on
    cache._task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cache._task
    r2 = await sqlite_store.update(P + "r/a", cm("r", "a", "new"), r1)
    r3 = await sqlite_store.create(P + "r/b", cm("r", "b"))
    await sqlite_store.delete(P + "r/a")
    r4 = await sqlite_store.create(P + "r/c", cm("r", "c"))
    await sqlite_store.compact(r4)
    cache._task = asyncio.create_task(cache._run())     # reconnect from the old revision

    await cache.wait_until(r4)
    assert [o["metadata"]["name"] for o in cache.list(P)] == ["b", "c"]
    assert sub.closed_reason == "relisted"
    assert [e async for e in sub] == []
    with pytest.raises(CompactedError):
        cache.subscribe(P, r2)
    live = cache.subscribe(P, cache.revision)
    r5 = await sqlite_store.create(P + "r/d", cm("r", "d"))
    assert [(e.type, e.revision) for e in await collect(live, 1)] == [("ADDED", r5)]
    assert r3 < r4


@pytest.mark.etcd
async def test_cache_over_etcd(etcd_server, ns: str) -> None:
    from pybernetes.storage.etcd import EtcdStore
    async with EtcdStore([etcd_server.url]) as store:
        prefix = f"/registry{ns}"
        await store.create(prefix + "x/1", cm("x", "1"))
        cache = WatchCache(store, prefix, decode)
        await cache.start()
        try:
            sub = cache.subscribe(prefix, cache.revision)
            r = await store.create(prefix + "x/2", cm("x", "2"))
            got = await collect(sub, 1)
            assert (got[0].type, got[0].revision) == ("ADDED", r)
            assert [o["metadata"]["name"] for o in cache.list(prefix)] == ["1", "2"]
            assert got[0].obj["metadata"]["resourceVersion"] == str(r)
        finally:
            await cache.stop()


async def test_subscribe_from_future_revision_skips_older(cache: WatchCache,
                                                          sqlite_store: Store) -> None:
    future = cache.revision + 2
    sub = cache.subscribe(P, future)
    revs = [await sqlite_store.create(f"{P}u/{i}", cm("u", str(i))) for i in range(4)]
    got = await collect(sub, 2)
    assert [e.revision for e in got] == [r for r in revs if r > future]


async def test_hub_feeds_several_caches_and_advances_idle_ones(sqlite_store: Store) -> None:
    # the API server's shape: one store watch (WatchHub) driving per-resource caches
    from pybernetes.storage.watch_hub import WatchHub
    pods = WatchCache(sqlite_store, "/registry/pods/", decode)
    cms = WatchCache(sqlite_store, P, decode)
    await sqlite_store.create(P + "a/old", cm("a", "old"))
    hub = WatchHub(sqlite_store, [pods, cms])
    await hub.start()
    try:
        assert [o["metadata"]["name"] for o in cms.list(P)] == ["old"]
        sub = cms.subscribe(P, cms.revision)
        r = await sqlite_store.create(P + "a/new", cm("a", "new"))
        # the idle pods cache still reaches the global revision
        await pods.wait_until(r, timeout=2)
        await cms.wait_until(r, timeout=2)
        assert pods.list("/registry/pods/") == []
        assert [(e.type, e.key) for e in await collect(sub, 1)] == [("ADDED", P + "a/new")]
    finally:
        await hub.stop()
    assert sub.closed_reason == "stopped"


async def test_drain_takes_what_is_ready_and_wait_is_bounded(cache: WatchCache,
                                                             sqlite_store: Store) -> None:
    start = cache.revision
    for i in range(3):
        await sqlite_store.create(P + f"a/d{i}", cm("a", f"d{i}"))
    await cache.wait_until(start + 3)
    sub = cache.subscribe(P, start)          # three events of history as the backlog
    t0 = time.monotonic()
    await sub.wait(5.0)                      # something is ready: returns at once
    assert time.monotonic() - t0 < 4.0
    assert [e.key for e in sub.drain(2)] == [P + "a/d0", P + "a/d1"]
    assert [e.key for e in sub.drain(10)] == [P + "a/d2"] and not sub.pending
    await sub.wait(0.05)                     # nothing comes: the timeout ends the wait
    assert sub.drain(10) == []
    waiter = asyncio.create_task(sub.wait(10.0))
    await sqlite_store.create(P + "a/live", cm("a", "live"))
    await asyncio.wait_for(waiter, 5.0)      # a live event wakes the waiter
    assert [e.type for e in sub.drain(10)] == ["ADDED"]
    sub.close()
    await asyncio.wait_for(sub.wait(10.0), 1.0)   # closed: never waits
