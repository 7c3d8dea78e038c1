"""Child process for the crash tests: writes forever, printing each acknowledged write.

usage: crash_writer.py sqlite PATH | etcd URL   (key prefix from $CRASH_PREFIX)
Prints "<revision> <key>" only after the store acknowledged the write.
"""
from __future__ import annotations

import asyncio
import json
import os
import sys

from pybernetes.storage.etcd import EtcdStore
from pybernetes.storage.sqlite import SQLiteStore


def value_for(key: str) -> bytes:
    return json.dumps({"key": key, "pad": "x" * 900}).encode()


async def writer(store, prefix: str, worker: int) -> None:
    for i in range(1_000_000):
        key = f"{prefix}{worker:02d}-{i:06d}"
        rev = await store.create(key, value_for(key))
        sys.stdout.write(f"{rev} {key}\n")
        sys.stdout.flush()


async def main() -> None:
    kind, where = sys.argv[1], sys.argv[2]
    store = SQLiteStore(where) if kind == "sqlite" else EtcdStore([where])
    await store.start()
    prefix = os.environ.get("CRASH_PREFIX", "/crash/")
    # many writers in flight so SQLite's group commit batches are killed mid-way
    await asyncio.gather(*(writer(store, prefix, w) for w in range(16)))


if __name__ == "__main__":
    asyncio.run(main())
