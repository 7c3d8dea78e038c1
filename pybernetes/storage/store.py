"""The storage contract: etcd v3 semantics, nothing more.

Only the API server touches a Store. Values are opaque bytes (the API server
stores JSON). Every successful write advances one global, monotonic revision;
an object's `resourceVersion` is the revision of its last write (`mod_revision`).

Both backends (sqlite.py, etcd.py) pass tests/storage/test_contract.py.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import AsyncIterator, Literal

EventType = Literal["create", "update", "delete"]


@dataclass(frozen=True, slots=True)
class KeyValue:
    key: str
    value: bytes
    mod_revision: int
    create_revision: int


@dataclass(frozen=True, slots=True)
class Event:
    """One change. For `delete`, `value` is None and `prev_value` holds the last value."""

    type: EventType
    key: str
    value: bytes | None
    prev_value: bytes | None
    revision: int


class StoreError(Exception):
    pass


class KeyExistsError(StoreError):
    """create() on a key that exists."""

    def __init__(self, key: str):
        super().__init__(f"key exists: {key}")
        self.key = key


class KeyNotFoundError(StoreError):
    """update()/delete() on a key that does not exist."""

    def __init__(self, key: str):
        super().__init__(f"key not found: {key}")
        self.key = key


class ConflictError(StoreError):
    """Compare-and-swap failed: the key's mod revision is not the expected one.

    `current` is the key's present value so callers can retry (or None if gone).
    """

    def __init__(self, key: str, current: KeyValue | None):
        super().__init__(f"revision conflict on {key}")
        self.key = key
        self.current = current


class CompactedError(StoreError):
    """The requested revision is older than the compaction point (maps to 410 Gone)."""

    def __init__(self, requested: int, compacted: int):
        super().__init__(f"required revision {requested} has been compacted (compacted to {compacted})")
        self.requested = requested
        self.compacted = compacted


class FutureRevisionError(StoreError):
    """The requested revision is newer than the store's current revision."""

    def __init__(self, requested: int, current: int):
        super().__init__(f"required revision {requested} is a future revision (current {current})")
        self.requested = requested
        self.current = current


class Store(abc.ABC):
    """etcd-like key/value store with revisions, CAS and watch."""

    @abc.abstractmethod
    async def create(self, key: str, value: bytes) -> int:
        """Create `key`; return the new revision. Raises KeyExistsError."""

    @abc.abstractmethod
    async def update(self, key: str, value: bytes, expected_rev: int) -> int:
        """Replace `key` if its mod revision is `expected_rev`; return the new revision.

        Raises KeyNotFoundError if absent, ConflictError if the revision differs.
        """

    @abc.abstractmethod
    async def delete(self, key: str, expected_rev: int | None = None) -> tuple[int, KeyValue]:
        """Delete `key` (if its mod revision is `expected_rev`, when given).

        Returns (new revision, the deleted KeyValue). Raises KeyNotFoundError / ConflictError.
        """

    @abc.abstractmethod
    async def get(self, key: str) -> KeyValue | None:
        """The key's current value, or None."""

    @abc.abstractmethod
    async def list(self, prefix: str, limit: int = 0, start_after: str = "",
                   at_rev: int = 0) -> tuple[list[KeyValue], int, bool]:
        """Keys under `prefix` in key order, after `start_after`, at revision `at_rev`
        (0 = current). Returns (items, revision the list reflects, more_remaining).

        Raises CompactedError if at_rev is compacted, FutureRevisionError if ahead.
        """

    @abc.abstractmethod
    async def count(self, prefix: str) -> int:
        """How many keys exist under `prefix` now."""

    @abc.abstractmethod
    def watch(self, prefix: str, after_rev: int) -> AsyncIterator[Event]:
        """Every change under `prefix` with revision > `after_rev`, in revision order,
        then live changes until the iterator is closed.

        Raises CompactedError (on first iteration) if after_rev < compacted revision.
        Why `after_rev` (exclusive) rather than etcd's inclusive start revision: it is
        exactly a Kubernetes watch from a resourceVersion.
        """

    @abc.abstractmethod
    async def current_revision(self) -> int:
        """The newest revision (0 for an empty store)."""

    def known_revision(self) -> int | None:
        """A revision at least as new as every write acknowledged to this process, known
        without I/O; None when only current_revision() can tell (etcd: other API servers
        write too)."""
        return None

    @abc.abstractmethod
    async def compact(self, rev: int) -> None:
        """Forget history at or before `rev` (current values are kept)."""

    @abc.abstractmethod
    async def compacted_revision(self) -> int:
        """The revision of the last compaction (0 if none)."""

    async def start(self) -> None:
        """Open connections / files; called once before use."""

    async def close(self) -> None:
        """Release everything; pending watches end."""

    async def __aenter__(self) -> "Store":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def open_store(kind: str, *, data_dir: str = "", etcd_endpoints: list[str] | None = None) -> Store:
    """The backend a `--storage` flag names."""
    if kind == "sqlite":
        from .sqlite import SQLiteStore
        import os
        return SQLiteStore(os.path.join(data_dir, "db", "state.db"))
    if kind == "etcd":
        from .etcd import EtcdStore
        return EtcdStore(etcd_endpoints or ["http://127.0.0.1:2379"])
    raise ValueError(f"unknown storage backend {kind!r} (choose sqlite or etcd)")
