"""SQLite-only behaviour: group commit, a second process on the same file, compaction rows."""
from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import time
from pathlib import Path

from pybernetes.storage.sqlite import SQLiteStore, prefix_end

ROOT = Path(__file__).resolve().parents[2]

OTHER_WRITER = """
import asyncio, sys
from pybernetes.storage.sqlite import SQLiteStore
async def main():
    async with SQLiteStore(sys.argv[1]) as s:
        for i in range(int(sys.argv[2])):
            await s.create(f"/shared/other/{i:03d}", b"from-other")
asyncio.run(main())
"""


def test_prefix_end() -> None:
    assert prefix_end("/a/") == "/a0"
    assert prefix_end("") is None
    assert prefix_end("a\U0010ffff") == "b"


async def test_group_commit_is_fast_and_contiguous(tmp_path: Path) -> None:
    async with SQLiteStore(str(tmp_path / "s.db")) as store:
        t0 = time.monotonic()
        revs = await asyncio.gather(*(store.create(f"/g/{i:05d}", b"x" * 300)
                                      for i in range(3000)))
        elapsed = time.monotonic() - t0
        assert sorted(revs) == list(range(1, 3001))
        # one fsync per batch, not per write: far above the 1,000 creates/s target
        assert 3000 / elapsed > 1000, f"{3000 / elapsed:.0f} creates/s"
        # a failing CAS inside a batch does not disturb the others
        results = await asyncio.gather(store.create("/g/00001", b"dup"),
                                       store.create("/g/new", b"ok"), return_exceptions=True)
        assert isinstance(results[0], Exception) and results[1] == 3001


async def test_second_process_writes_reach_watchers(tmp_path: Path) -> None:
    db = str(tmp_path / "shared.db")
    async with SQLiteStore(db, poll_interval=0.05) as store:
        start = await store.create("/shared/mine/0", b"mine")
        seen: list = []
        it = store.watch("/shared/", start)

        async def consume() -> None:
            async for ev in it:
                seen.append(ev)
                if len(seen) == 41:
                    return
        task = asyncio.create_task(consume())
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", OTHER_WRITER, db, "40",
                                                    env=env)
        # write concurrently from this process too
        mine = await store.create("/shared/mine/1", b"mine")
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        await asyncio.wait_for(task, 10)
        await it.aclose()
        revs = [e.revision for e in seen]
        assert revs == sorted(revs) and mine in revs
        assert sum(e.key.startswith("/shared/other/") for e in seen) == 40
        # every revision from both writers, none skipped
        assert revs == list(range(start + 1, start + 42))
        assert await store.count("/shared/") == 42


async def test_compaction_removes_superseded_rows(tmp_path: Path) -> None:
    db = str(tmp_path / "c.db")
    async with SQLiteStore(db) as store:
        rev = await store.create("/c/a", b"0")
        for i in range(1, 50):
            rev = await store.update("/c/a", str(i).encode(), rev)
        await store.create("/c/b", b"b")
        d, _ = await store.delete("/c/b")
        await store.compact(d)
        with sqlite3.connect(db) as con:
            rows = con.execute("SELECT id, name, deleted FROM log ORDER BY id").fetchall()
        # only the live key's latest row, and the row at the compaction point itself
        assert rows == [(rev, "/c/a", 0), (d, "/c/b", 1)]
        assert (await store.get("/c/a")).value == b"49"
        assert await store.current_revision() == d
        assert await store.create("/c/new", b"n") == d + 1
