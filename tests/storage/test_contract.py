"""The storage contract (pybernetes/storage/store.py), run against SQLite and a real etcd."""
from __future__ import annotations

import asyncio

import pytest

from pybernetes.storage.store import (CompactedError, ConflictError, Event, FutureRevisionError,
                                      KeyExistsError, KeyNotFoundError, Store)


async def take(store: Store, prefix: str, after_rev: int, n: int,
               timeout: float = 5.0) -> list[Event]:
    """The first n events of a watch, or fail after `timeout`."""
    out: list[Event] = []
    it = store.watch(prefix, after_rev)

    async def collect() -> None:
        async for ev in it:
            out.append(ev)
            if len(out) >= n:
                return
    try:
        await asyncio.wait_for(collect(), timeout)
    finally:
        await it.aclose()
    return out


async def test_create_get_update_delete(store: Store, ns: str) -> None:
    key = ns + "a"
    assert await store.get(key) is None
    r1 = await store.create(key, b"one")
    kv = await store.get(key)
    assert (kv.key, kv.value, kv.mod_revision, kv.create_revision) == (key, b"one", r1, r1)
    assert await store.current_revision() == r1

    with pytest.raises(KeyExistsError):
        await store.create(key, b"again")
    r2 = await store.update(key, b"two", r1)
    assert r2 > r1
    kv = await store.get(key)
    assert (kv.value, kv.mod_revision, kv.create_revision) == (b"two", r2, r1)

    with pytest.raises(ConflictError) as err:
        await store.update(key, b"stale", r1)
    assert err.value.current.value == b"two" and err.value.current.mod_revision == r2
    with pytest.raises(ConflictError):
        await store.delete(key, expected_rev=r1)

    r3, deleted = await store.delete(key, expected_rev=r2)
    assert r3 > r2 and deleted.value == b"two" and deleted.mod_revision == r2
    assert await store.get(key) is None
    with pytest.raises(KeyNotFoundError):
        await store.update(key, b"x", r3)
    with pytest.raises(KeyNotFoundError):
        await store.delete(key)

    # re-create after delete starts a new life: create_revision is the new revision
    r4 = await store.create(key, b"reborn")
    kv = await store.get(key)
    assert kv.create_revision == r4 == kv.mod_revision
    r5, _ = await store.delete(key)          # unconditional delete
    assert r5 > r4


async def test_count_and_prefix_isolation(store: Store, ns: str) -> None:
    for name in ("a/1", "a/2", "ab/1", "b/1"):
        await store.create(ns + name, name.encode())
    assert await store.count(ns + "a/") == 2
    assert await store.count(ns) == 4
    items, _, more = await store.list(ns + "a/")
    assert [kv.key for kv in items] == [ns + "a/1", ns + "a/2"] and not more
    await store.delete(ns + "a/1")
    assert await store.count(ns + "a/") == 1


async def test_cas_under_concurrent_writers(store: Store, ns: str) -> None:
    key, writers, rounds = ns + "counter", 8, 15
    await store.create(key, b"0")

    async def writer() -> int:
        wins = 0
        for _ in range(rounds):
            while True:
                kv = await store.get(key)
                try:
                    await store.update(key, str(int(kv.value) + 1).encode(), kv.mod_revision)
                    wins += 1
                    break
                except ConflictError as e:
                    # someone else won this round; retry from their value
                    assert e.current is not None and e.current.mod_revision != kv.mod_revision
        return wins
    wins = await asyncio.wait_for(asyncio.gather(*(writer() for _ in range(writers))), 60)
    assert sum(wins) == writers * rounds
    assert int((await store.get(key)).value) == writers * rounds


async def test_exactly_one_wins_each_round(store: Store, ns: str) -> None:
    key = ns + "race"
    rev = await store.create(key, b"start")
    for rnd in range(10):
        results = await asyncio.gather(*(store.update(key, f"{rnd}-{i}".encode(), rev)
                                         for i in range(6)), return_exceptions=True)
        won = [r for r in results if isinstance(r, int)]
        lost = [r for r in results if isinstance(r, ConflictError)]
        assert len(won) == 1 and len(lost) == 5
        rev = won[0]
        assert all(e.current.mod_revision == rev for e in lost)
    # creates race the same way
    results = await asyncio.gather(*(store.create(ns + "new", b"x") for _ in range(6)),
                                   return_exceptions=True)
    assert sum(isinstance(r, int) for r in results) == 1
    assert sum(isinstance(r, KeyExistsError) for r in results) == 5


async def test_watch_from_past_revision_with_prev_value(store: Store, ns: str) -> None:
    start = await store.current_revision()
    k = ns + "w/a"
    r1 = await store.create(k, b"v1")
    r2 = await store.update(k, b"v2", r1)
    await store.create(ns + "other", b"not watched")
    r3, _ = await store.delete(k)
    events = await take(store, ns + "w/", start, 3)
    assert [(e.type, e.key, e.value, e.prev_value, e.revision) for e in events] == [
        ("create", k, b"v1", None, r1),
        ("update", k, b"v2", b"v1", r2),
        ("delete", k, None, b"v2", r3),
    ]
    # after_rev is exclusive: from r1 we get r2 first
    events = await take(store, ns + "w/", r1, 2)
    assert [e.revision for e in events] == [r2, r3]


async def test_watch_history_then_live_in_order(store: Store, ns: str) -> None:
    start = await store.current_revision()
    await store.create(ns + "k0", b"0")
    got: list[Event] = []
    it = store.watch(ns, start)

    async def consume() -> None:
        async for ev in it:
            got.append(ev)
            if len(got) == 41:
                return
    task = asyncio.create_task(consume())
    await asyncio.sleep(0.05)
    # concurrent writers while the watch switches from history to live
    await asyncio.gather(*(store.create(f"{ns}k{i}", str(i).encode()) for i in range(1, 41)))
    await asyncio.wait_for(task, 10)
    await it.aclose()
    revs = [e.revision for e in got]
    assert revs == sorted(revs) and len(set(revs)) == 41
    assert {e.key for e in got} == {f"{ns}k{i}" for i in range(41)}


async def test_list_pagination_at_fixed_revision(store: Store, ns: str) -> None:
    for i in range(10):
        await store.create(f"{ns}p/{i:02d}", f"v{i}".encode())
    _, rev, _ = await store.list(ns + "p/", limit=1)
    # writes after the snapshot must not show up in later pages
    await store.create(ns + "p/05a", b"late")
    await store.delete(ns + "p/08")
    await store.update(ns + "p/09", b"changed", (await store.get(ns + "p/09")).mod_revision)

    pages, after = [], ""
    for _ in range(10):
        items, page_rev, more = await store.list(ns + "p/", limit=3, start_after=after,
                                                 at_rev=rev)
        assert page_rev == rev
        pages.append([kv.key[len(ns):] for kv in items])
        if not more:
            break
        after = items[-1].key
    assert pages == [["p/00", "p/01", "p/02"], ["p/03", "p/04", "p/05"],
                     ["p/06", "p/07", "p/08"], ["p/09"]]
    items, _, _ = await store.list(ns + "p/", start_after=ns + "p/08", at_rev=rev)
    assert [(kv.key[len(ns):], kv.value) for kv in items] == [("p/09", b"v9")]
    # current view reflects the later writes
    items, now, more = await store.list(ns + "p/")
    assert now > rev and not more
    assert [kv.key[len(ns):] for kv in items] == sorted(
        [f"p/{i:02d}" for i in range(10) if i != 8] + ["p/05a"])


async def test_list_at_past_revision(store: Store, ns: str) -> None:
    k = ns + "h/x"
    r1 = await store.create(k, b"first")
    r2 = await store.update(k, b"second", r1)
    r3, _ = await store.delete(k)
    r4 = await store.create(ns + "h/y", b"y")
    seen = {}
    for rev in (r1, r2, r3, r4):
        items, got_rev, _ = await store.list(ns + "h/", at_rev=rev)
        assert got_rev == rev
        seen[rev] = [(kv.key[len(ns):], kv.value, kv.mod_revision) for kv in items]
    assert seen == {r1: [("h/x", b"first", r1)], r2: [("h/x", b"second", r2)],
                    r3: [], r4: [("h/y", b"y", r4)]}
    with pytest.raises(FutureRevisionError):
        await store.list(ns + "h/", at_rev=r4 + 1000)


async def test_compaction(private_store: Store, ns: str) -> None:
    store = private_store
    k, keep = ns + "c/a", ns + "c/keep"
    rk = await store.create(keep, b"kept since before")
    r1 = await store.create(k, b"1")
    r2 = await store.update(k, b"2", r1)
    gone = ns + "c/gone"
    rg = await store.create(gone, b"g")
    await store.delete(gone)
    r3 = await store.update(k, b"3", r2)
    await store.compact(r3)
    assert await store.compacted_revision() == r3

    with pytest.raises(CompactedError) as err:
        await store.list(ns + "c/", at_rev=r1)
    assert err.value.compacted == r3
    with pytest.raises(CompactedError):
        await take(store, ns + "c/", r1, 1)
    # current values survive, including a key last written long before compaction
    items, _, _ = await store.list(ns + "c/", at_rev=r3)
    assert [(kv.key, kv.value, kv.mod_revision) for kv in items] == [
        (k, b"3", r3), (keep, b"kept since before", rk)]
    assert (await store.get(keep)).create_revision == rk
    assert await store.get(gone) is None and rg < r3
    # history after the compaction point is intact
    r4 = await store.update(k, b"4", r3)
    events = await take(store, ns + "c/", r3, 1)
    assert (events[0].revision, events[0].prev_value) == (r4, b"3")
    await store.compact(r2)     # older than the current compaction: no-op
    assert await store.compacted_revision() == r3


async def test_large_values_and_big_lists(store: Store, ns: str) -> None:
    # ~6 MiB in one list: more than gRPC's default 4 MiB message limit
    value = b"v" * (600 * 1024)
    revs = await asyncio.gather(*(store.create(f"{ns}big/{i}", value) for i in range(10)))
    items, rev, more = await store.list(ns + "big/")
    assert len(items) == 10 and not more and rev >= max(revs)
    assert all(kv.value == value for kv in items)


async def test_close_ends_pending_watches(store: Store, ns: str) -> None:
    it = store.watch(ns, await store.current_revision())
    got: list[Event] = []

    async def consume() -> None:
        async for ev in it:
            got.append(ev)
    task = asyncio.create_task(consume())
    await store.create(ns + "x", b"1")
    for _ in range(100):                     # bounded wait for the live event
        if got:
            break
        await asyncio.sleep(0.02)
    await store.close()
    await asyncio.wait_for(task, 5)          # ends, rather than hanging forever
    assert [e.key for e in got] == [ns + "x"]


async def test_watch_just_below_compaction_is_refused(private_store: Store, ns: str) -> None:
    r1 = await private_store.create(ns + "a", b"1")
    r2 = await private_store.update(ns + "a", b"2", r1)
    await private_store.compact(r2)
    with pytest.raises(CompactedError):
        await take(private_store, ns, r2 - 1, 1)
    r3 = await private_store.update(ns + "a", b"3", r2)
    assert [e.revision for e in await take(private_store, ns, r2, 1)] == [r3]
