"""SQLite backend: etcd semantics over one append-only log table (the kine design).

Every write appends a row whose id is the new global revision. The latest row of
a name is its current state (a row with deleted=1 is a tombstone). History for
watches and lists at past revisions is simply older rows; compaction deletes
rows that a newer row (at or below the compaction point) supersedes.

Threading: all SQLite work runs in ONE worker thread that owns the connection,
so the event loop never blocks on disk. Writes that queue up while a
transaction commits are committed together in the next one (group commit):
each still gets its own revision and CAS check, but they share one fsync.

Durability: WAL with synchronous=FULL, so a write is on disk (WAL fsynced)
before it is acknowledged. WAL+NORMAL would survive a process kill but can
lose the last commits on power loss; an API server acknowledges writes to
clients, so we pay one fsync per batch instead. Group commit keeps that cheap.

Watches are fed from the worker thread right after each commit, and the
worker also polls the log (every `poll_interval`) so writes by another
process sharing the same file reach our watchers too.
"""
from __future__ import annotations

import asyncio
import os
import queue
import sqlite3
import threading
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

from .store import (CompactedError, ConflictError, Event, FutureRevisionError,
                    KeyExistsError, KeyNotFoundError, KeyValue, Store, StoreError)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    value BLOB,
    old_value BLOB
);
CREATE INDEX IF NOT EXISTS log_name_id ON log (name, id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

_COLS = "id, name, created, deleted, create_revision, prev_revision, value, old_value"
_MAX_BATCH = 500
_WRITE_OPS = frozenset({"create", "update", "delete", "compact"})


def prefix_end(prefix: str) -> str | None:
    """The smallest string greater than every string starting with `prefix` (None: no bound)."""
    p = prefix
    while p:
        last = ord(p[-1])
        if last < 0x10FFFF:
            return p[:-1] + chr(last + 1)
        p = p[:-1]
    return None


@dataclass(slots=True)
class _Job:
    op: str
    args: tuple
    future: asyncio.Future
    result: Any = None
    error: BaseException | None = None


@dataclass(eq=False)
class _Watcher:
    prefix: str
    end: str | None
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)

    def matches(self, key: str) -> bool:
        return key >= self.prefix and (self.end is None or key < self.end)


_CLOSED = object()     # watcher queue: the store closed
_TICK = object()       # worker loop: poll interval elapsed


def _row_event(row: tuple) -> Event:
    rid, name, created, deleted, _cr, _prev, value, old = row
    if deleted:
        return Event("delete", name, None, old, rid)
    return Event("create" if created else "update", name, value, old if not created else None, rid)


def _row_kv(row: tuple) -> KeyValue:
    return KeyValue(row[1], row[6], row[0], row[4])


class SQLiteStore(Store):
    def __init__(self, path: str, *, poll_interval: float = 0.1, synchronous: str = "FULL"):
        self.path = path
        self.poll_interval = poll_interval
        self.synchronous = synchronous
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: set[_Watcher] = set()
        self._seen = 0          # newest revision handed to watchers (worker-thread owned)
        self._closed = False

    # ---- lifecycle -------------------------------------------------------

    async def start(self) -> None:
        if self._thread is not None:
            return
        self._loop = asyncio.get_running_loop()
        if os.path.dirname(self.path):
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
        ready: asyncio.Future = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, args=(ready,), name="sqlite-store",
                                        daemon=True)
        self._thread.start()
        await ready

    async def close(self) -> None:
        if self._thread is None or self._closed:
            return
        self._closed = True
        self._jobs.put(None)
        await asyncio.get_running_loop().run_in_executor(None, self._thread.join)
        for w in list(self._watchers):
            w.queue.put_nowait(_CLOSED)
        self._watchers.clear()

    # ---- Store API ---------------------------------------------------------

    async def create(self, key: str, value: bytes) -> int:
        return await self._submit("create", key, value)

    async def update(self, key: str, value: bytes, expected_rev: int) -> int:
        return await self._submit("update", key, value, expected_rev)

    async def delete(self, key: str, expected_rev: int | None = None) -> tuple[int, KeyValue]:
        return await self._submit("delete", key, expected_rev)

    async def get(self, key: str) -> KeyValue | None:
        return await self._submit("get", key)

    async def list(self, prefix: str, limit: int = 0, start_after: str = "",
                   at_rev: int = 0) -> tuple[list[KeyValue], int, bool]:
        return await self._submit("list", prefix, limit, start_after, at_rev)

    async def count(self, prefix: str) -> int:
        return await self._submit("count", prefix)

    async def current_revision(self) -> int:
        return await self._submit("current_revision")

    def known_revision(self) -> int:
        """The newest revision handed to watchers; the worker advances it before it
        acknowledges a write, so every write this process saw acknowledged is at or
        below it (no I/O: what lets the API server serve consistent reads from its cache)."""
        return self._seen

    async def compact(self, rev: int) -> None:
        await self._submit("compact", rev)

    async def compacted_revision(self) -> int:
        return await self._submit("compacted_revision")

    async def watch(self, prefix: str, after_rev: int) -> AsyncIterator[Event]:
        w = _Watcher(prefix, prefix_end(prefix))
        self._watchers.add(w)   # register first so nothing between history and live is lost
        try:
            history = await self._submit("history", prefix, after_rev)
            last = after_rev
            for ev in history:
                yield ev
                last = ev.revision
            while True:
                item = await w.queue.get()
                if item is _CLOSED:
                    return
                if item.revision > last:
                    last = item.revision
                    yield item
        finally:
            self._watchers.discard(w)

    # ---- event-loop side plumbing -------------------------------------------

    def _submit(self, op: str, *args: Any) -> asyncio.Future:
        if self._thread is None or self._closed:
            raise StoreError("store is not open")
        fut = asyncio.get_running_loop().create_future()
        self._jobs.put(_Job(op, args, fut))
        return fut

    def _finish(self, jobs: list[_Job], events: list[Event]) -> None:
        for job in jobs:
            if job.future.done():
                continue
            if job.error is not None:
                job.future.set_exception(job.error)
            else:
                job.future.set_result(job.result)
        if events:
            self._dispatch(events)

    def _dispatch(self, events: list[Event]) -> None:
        for w in self._watchers:
            for ev in events:
                if w.matches(ev.key):
                    w.queue.put_nowait(ev)

    # ---- worker thread -------------------------------------------------------

    def _run(self, ready: asyncio.Future) -> None:
        loop = self._loop
        assert loop is not None
        try:
            db = self._open()
        except BaseException as e:  # report the failure to start() and stop
            loop.call_soon_threadsafe(ready.set_exception, e)
            return
        self._seen = self._current(db)
        loop.call_soon_threadsafe(ready.set_result, None)
        try:
            self._serve(db, loop)
        finally:
            db.close()

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        db.execute("PRAGMA busy_timeout = 10000")
        db.execute("PRAGMA journal_mode = WAL")
        db.execute(f"PRAGMA synchronous = {self.synchronous}")
        db.executescript(_SCHEMA)
        return db

    def _serve(self, db: sqlite3.Connection, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                first = self._jobs.get(timeout=self.poll_interval)
            except queue.Empty:
                first = _TICK       # nothing queued: just look for other writers' rows
            if first is None:
                return
            jobs = [] if first is _TICK else [first]
            stop = self._drain(jobs)
            try:
                events = self._step(db, jobs)
            except sqlite3.Error as e:   # e.g. disk I/O error: fail this round, keep serving
                events = []
                for job in jobs:
                    if job.error is None and job.result is None:
                        job.error = StoreError(f"sqlite: {e}")
            if jobs or events:
                loop.call_soon_threadsafe(self._finish, jobs, events)
            if stop:
                return

    def _step(self, db: sqlite3.Connection, jobs: list[_Job]) -> list[Event]:
        """Commit the writes as one transaction, collect new events, then serve the reads."""
        writes = [j for j in jobs if j.op in _WRITE_OPS]
        if writes:
            self._write_batch(db, writes)
        events = self._new_events(db)
        for job in jobs:
            if job.op not in _WRITE_OPS:
                self._run_job(db, job, in_batch=False)
        return events

    def _drain(self, jobs: list[_Job]) -> bool:
        """Take whatever else is queued (up to a batch); True if close was requested."""
        while len(jobs) < _MAX_BATCH:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                return False
            if job is None:
                return True
            jobs.append(job)
        return False

    def _write_batch(self, db: sqlite3.Connection, jobs: list[_Job]) -> None:
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            for job in jobs:
                job.error = StoreError(f"sqlite: {e}")
            return
        try:
            for job in jobs:
                self._run_job(db, job, in_batch=True)
            db.execute("COMMIT")
        except sqlite3.Error as e:
            if db.in_transaction:
                db.execute("ROLLBACK")
            for job in jobs:
                job.result, job.error = None, StoreError(f"sqlite: {e}")

    def _run_job(self, db: sqlite3.Connection, job: _Job, in_batch: bool) -> None:
        try:
            job.result = getattr(self, "_op_" + job.op)(db, *job.args)
        except StoreError as e:
            job.error = e
        except sqlite3.Error as e:
            if in_batch:
                raise   # the whole batch rolls back
            if db.in_transaction:
                db.execute("ROLLBACK")
            job.error = StoreError(f"sqlite: {e}")
        except Exception as e:  # a bug must not kill the worker thread
            job.error = e

    def _new_events(self, db: sqlite3.Connection) -> list[Event]:
        """Rows written since the last call (by us or another process), for watchers."""
        cur = self._current(db)
        if cur <= self._seen:
            return []
        rows = []
        # reading the set's size from this thread is safe: a watcher added meanwhile
        # reads its history later in this same thread, which covers these rows
        if self._watchers:
            rows = db.execute(f"SELECT {_COLS} FROM log WHERE id > ? ORDER BY id",
                              (self._seen,)).fetchall()
        self._seen = cur
        return [_row_event(r) for r in rows]

    # ---- operations (worker thread; writes run inside the batch transaction) ----

    @staticmethod
    def _current(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log'").fetchone()
        return row[0] if row else 0

    @staticmethod
    def _compacted(db: sqlite3.Connection) -> int:
        row = db.execute("SELECT value FROM meta WHERE key = 'compact_rev'").fetchone()
        return row[0] if row else 0

    @staticmethod
    def _latest(db: sqlite3.Connection, key: str) -> tuple | None:
        row = db.execute(f"SELECT {_COLS} FROM log WHERE name = ? ORDER BY id DESC LIMIT 1",
                         (key,)).fetchone()
        return None if row is None or row[3] else row

    def _insert(self, db: sqlite3.Connection, key: str, created: int, deleted: int,
                create_rev: int, prev_rev: int, value: bytes | None, old: bytes | None) -> int:
        rev = self._current(db) + 1
        db.execute(f"INSERT INTO log ({_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   (rev, key, created, deleted, create_rev or rev, prev_rev, value, old))
        return rev

    def _op_create(self, db: sqlite3.Connection, key: str, value: bytes) -> int:
        if self._latest(db, key) is not None:
            raise KeyExistsError(key)
        tomb = db.execute("SELECT id FROM log WHERE name = ? ORDER BY id DESC LIMIT 1",
                          (key,)).fetchone()
        return self._insert(db, key, 1, 0, 0, tomb[0] if tomb else 0, value, None)

    def _op_update(self, db: sqlite3.Connection, key: str, value: bytes, expected: int) -> int:
        row = self._latest(db, key)
        if row is None:
            raise KeyNotFoundError(key)
        if row[0] != expected:
            raise ConflictError(key, _row_kv(row))
        return self._insert(db, key, 0, 0, row[4], row[0], value, row[6])

    def _op_delete(self, db: sqlite3.Connection, key: str,
                   expected: int | None) -> tuple[int, KeyValue]:
        row = self._latest(db, key)
        if row is None:
            raise KeyNotFoundError(key)
        if expected is not None and row[0] != expected:
            raise ConflictError(key, _row_kv(row))
        rev = self._insert(db, key, 0, 1, row[4], row[0], None, row[6])
        return rev, _row_kv(row)

    def _op_get(self, db: sqlite3.Connection, key: str) -> KeyValue | None:
        row = self._latest(db, key)
        return None if row is None else _row_kv(row)

    def _check_rev(self, db: sqlite3.Connection, rev: int) -> int:
        """Resolve a read revision (0 = now); raise if compacted or in the future."""
        cur = self._current(db)
        if rev == 0:
            return cur
        if rev > cur:
            raise FutureRevisionError(rev, cur)
        compacted = self._compacted(db)
        if rev < compacted:
            raise CompactedError(rev, compacted)
        return rev

    def _op_list(self, db: sqlite3.Connection, prefix: str, limit: int, start_after: str,
                 at_rev: int) -> tuple[list[KeyValue], int, bool]:
        db.execute("BEGIN")   # one snapshot for revision + rows
        try:
            rev = self._check_rev(db, at_rev)
            where, params = _range_clause(prefix, start_after)
            sql = (f"SELECT {_COLS} FROM log WHERE id IN (SELECT MAX(id) FROM log WHERE {where}"
                   f" AND id <= ? GROUP BY name) AND deleted = 0 ORDER BY name")
            params.append(rev)
            if limit > 0:
                sql += " LIMIT ?"
                params.append(limit + 1)
            rows = db.execute(sql, params).fetchall()
        finally:
            db.execute("COMMIT")
        more = limit > 0 and len(rows) > limit
        if more:
            rows = rows[:limit]
        return [_row_kv(r) for r in rows], rev, more

    def _op_count(self, db: sqlite3.Connection, prefix: str) -> int:
        where, params = _range_clause(prefix, "")
        sql = (f"SELECT COUNT(*) FROM log WHERE id IN (SELECT MAX(id) FROM log WHERE {where}"
               " GROUP BY name) AND deleted = 0")
        return db.execute(sql, params).fetchone()[0]

    def _op_current_revision(self, db: sqlite3.Connection) -> int:
        return self._current(db)

    def _op_compacted_revision(self, db: sqlite3.Connection) -> int:
        return self._compacted(db)

    def _op_history(self, db: sqlite3.Connection, prefix: str, after_rev: int) -> list[Event]:
        compacted = self._compacted(db)
        if after_rev < compacted:
            raise CompactedError(after_rev, compacted)
        where, params = _range_clause(prefix, "")
        rows = db.execute(f"SELECT {_COLS} FROM log WHERE {where} AND id > ? AND id <= ?"
                          " ORDER BY id", (*params, after_rev, self._seen)).fetchall()
        return [_row_event(r) for r in rows]

    def _op_compact(self, db: sqlite3.Connection, rev: int) -> None:
        cur = self._current(db)
        if rev > cur:
            raise FutureRevisionError(rev, cur)
        if rev <= self._compacted(db):
            return
        # Keep the row AT rev: a watch from rev-1 still needs it. Drop rows below rev
        # that a newer row (<= rev) supersedes, and tombstones below rev.
        db.execute("DELETE FROM log WHERE id < ?1 AND (deleted = 1 OR EXISTS ("
                   "SELECT 1 FROM log AS n WHERE n.name = log.name AND n.id > log.id"
                   " AND n.id <= ?1))", (rev,))
        db.execute("INSERT INTO meta (key, value) VALUES ('compact_rev', ?)"
                   " ON CONFLICT (key) DO UPDATE SET value = excluded.value", (rev,))



def _range_clause(prefix: str, start_after: str) -> tuple[str, list]:
    clauses, params = ["name >= ?"], [max(prefix, start_after)]
    if start_after and start_after >= prefix:
        clauses[0] = "name > ?"
    end = prefix_end(prefix)
    if end is not None:
        clauses.append("name < ?")
        params.append(end)
    return " AND ".join(clauses), params

