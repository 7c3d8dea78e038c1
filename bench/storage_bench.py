"""Storage benchmark: creates/s, updates/s, list time, watch-cache fan-out latency.

usage: python bench/storage_bench.py [--etcd URL] [--n 5000] [--out results.json]
SQLite always runs (temp dir); etcd runs when --etcd is given.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from pybernetes.storage.etcd import EtcdStore  # noqa: E402
from pybernetes.storage.sqlite import SQLiteStore  # noqa: E402
from pybernetes.storage.store import Store  # noqa: E402
from pybernetes.storage.watch_cache import WatchCache  # noqa: E402

VALUE = json.dumps({"kind": "ConfigMap", "metadata": {"name": "x", "namespace": "bench"},
                    "data": {"k": "v" * 1000}}).encode()


def decode(value: bytes, rev: int) -> dict:
    obj = json.loads(value)
    obj["metadata"]["resourceVersion"] = str(rev)
    return obj


async def bounded(n: int, concurrency: int, op) -> float:
    """Run op(i) for i < n with at most `concurrency` in flight; ops per second."""
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await op(i)
    t0 = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    return n / (time.perf_counter() - t0)


async def fan_out_p99(store: Store, prefix: str, subscribers: int = 100,
                      writes: int = 50) -> float:
    cache = WatchCache(store, prefix, decode)
    await cache.start()
    subs = [cache.subscribe(prefix, cache.revision) for _ in range(subscribers)]
    lat: list[float] = []
    sent: dict[int, float] = {}

    async def consume(sub) -> None:
        count = 0
        async for ev in sub:
            lat.append(time.perf_counter() - sent[int(ev.obj["metadata"]["name"])])
            count += 1
            if count == writes:
                return
    tasks = [asyncio.create_task(consume(s)) for s in subs]
    for i in range(writes):
        sent[i] = time.perf_counter()
        await store.create(f"{prefix}{i}", json.dumps({"metadata": {"name": str(i)}}).encode())
        await asyncio.sleep(0.005)
    await asyncio.wait_for(asyncio.gather(*tasks), 30)
    await cache.stop()
    lat.sort()
    return lat[int(len(lat) * 0.99) - 1]


async def run(store: Store, n: int) -> dict:
    async with store:
        base = f"/bench/{time.time_ns()}/"
        creates = await bounded(n, 64, lambda i: store.create(f"{base}cm/{i:06d}", VALUE))
        revs = {kv.key: kv.mod_revision for kv in (await store.list(base + "cm/"))[0]}

        async def upd(i: int) -> None:
            key = f"{base}cm/{i:06d}"
            revs[key] = await store.update(key, VALUE, revs[key])
        updates = await bounded(n, 64, upd)
        t0 = time.perf_counter()
        items, _, _ = await store.list(base + "cm/")
        list_s = time.perf_counter() - t0
        p99 = await fan_out_p99(store, base + "fan/")
        return {"creates_per_s": round(creates), "updates_per_s": round(updates),
                f"list_{len(items)}_s": round(list_s, 4), "fanout_100_p99_ms": round(p99 * 1000, 2)}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--etcd", help="etcd client URL, e.g. http://127.0.0.1:2379")
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--out", help="write results JSON here")
    args = ap.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as d:
        results["sqlite"] = await run(SQLiteStore(os.path.join(d, "state.db")), args.n)
    if args.etcd:
        results["etcd"] = await run(EtcdStore([args.etcd]), args.n)
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    asyncio.run(main())
