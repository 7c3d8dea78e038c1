"""Crash safety: SIGKILL a writer mid-burst; every acknowledged write survives intact."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pybernetes.storage.etcd import EtcdStore
from pybernetes.storage.sqlite import SQLiteStore

from .crash_writer import value_for

ROOT = Path(__file__).resolve().parents[2]


def run_and_kill(args: list[str], acks_wanted: int, prefix: str) -> list[tuple[int, str]]:
    """Start the writer, read acknowledgements until `acks_wanted`, then SIGKILL it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), CRASH_PREFIX=prefix)
    proc = subprocess.Popen([sys.executable, "-m", "tests.storage.crash_writer", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    acked: list[tuple[int, str]] = []
    deadline = time.monotonic() + 30
    try:
        assert proc.stdout is not None
        while len(acked) < acks_wanted and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            rev, key = line.decode().split()
            acked.append((int(rev), key))
    finally:
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
    # lines already flushed before the kill were acknowledged too
    for line in out.decode().splitlines():
        parts = line.split()
        if len(parts) == 2:
            acked.append((int(parts[0]), parts[1]))
    assert len(acked) >= acks_wanted, err.decode()[-2000:]
    assert proc.returncode == -signal.SIGKILL
    return acked


async def test_sqlite_survives_sigkill(tmp_path: Path) -> None:
    db = str(tmp_path / "state.db")
    acked = run_and_kill(["sqlite", db], 2000, "/crash/")

    # the raw log: revisions contiguous, every row whole and decodable
    con = sqlite3.connect(db)
    rows = con.execute("SELECT id, name, value FROM log ORDER BY id").fetchall()
    con.close()
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1))
    for _, name, value in rows:
        assert json.loads(value)["key"] == name
    assert len(rows) >= len(acked)

    async with SQLiteStore(db) as store:
        for rev, key in acked:
            kv = await store.get(key)
            assert kv is not None, f"acknowledged {key} lost"
            assert (kv.mod_revision, kv.value) == (rev, value_for(key))
        # and the store keeps working where it stopped
        assert await store.create("/after/crash", b"ok") == len(rows) + 1


@pytest.mark.etcd
async def test_etcd_survives_client_sigkill(own_etcd) -> None:
    acked = run_and_kill(["etcd", own_etcd.url], 1000, "/crash/")
    async with EtcdStore([own_etcd.url]) as store:
        for rev, key in acked:
            kv = await store.get(key)
            assert kv is not None, f"acknowledged {key} lost"
            assert (kv.mod_revision, kv.value) == (rev, value_for(key))
        items, _, _ = await store.list("/crash/")
        revs = sorted(kv.mod_revision for kv in items)
        assert len(items) >= len(acked)
        assert revs == list(range(revs[0], revs[0] + len(revs)))   # no half-written txn
        for kv in items:
            assert json.loads(kv.value)["key"] == kv.key
