"""etcd v3 backend.

Talks gRPC to a real etcd through the stubs generated in `aetcd.rpc`. We use the
stubs directly rather than aetcd's `Client` helpers because those helpers do not
expose what the contract needs: Range with `revision`/`limit`/`count_only`
(get_range/get_prefix take neither), and a watch whose compaction answer
(`compact_revision`) we can map to CompactedError per stream.

Every write is one Txn so the CAS check and the write are atomic on the server.
"""
from __future__ import annotations

import asyncio
from typing import AsyncIterator
from urllib.parse import urlparse

from aetcd import rpc
from grpc import aio as grpc_aio
from aetcd.rpc import kv_pb2, rpc_pb2

from .store import (CompactedError, ConflictError, Event, FutureRevisionError,
                    KeyExistsError, KeyNotFoundError, KeyValue, Store, StoreError)

_CMP = rpc_pb2.Compare
_TIMEOUT = 10.0
_COMPACTED_MSG = "required revision has been compacted"
_FUTURE_MSG = "required revision is a future revision"


# Lists of many objects exceed gRPC's 4 MiB default; etcd itself bounds each value.
_CHANNEL_OPTS = [("grpc.max_receive_message_length", 512 * 1024 * 1024),
                 ("grpc.max_send_message_length", 64 * 1024 * 1024),
                 ("grpc.keepalive_time_ms", 30_000),
                 ("grpc.keepalive_timeout_ms", 10_000)]


def _grpc_target(endpoints: list[str]) -> str:
    """One gRPC target for all endpoints; several IP endpoints use gRPC's own failover."""
    hosts = []
    for ep in endpoints:
        u = urlparse(ep if "://" in ep else "http://" + ep)
        if u.scheme not in ("http", ""):
            raise StoreError(f"unsupported etcd endpoint {ep!r} (only http:// is supported)")
        hosts.append((u.hostname or "127.0.0.1", u.port or 2379))
    if len(hosts) > 1 and all(h.replace(".", "").isdigit() for h, _ in hosts):
        return "ipv4:" + ",".join(f"{h}:{p}" for h, p in hosts)
    return f"{hosts[0][0]}:{hosts[0][1]}"


def _prefix_end(prefix: bytes) -> bytes:
    """etcd's range_end for 'every key starting with prefix' (b'\\0' = to the end)."""
    for i in range(len(prefix) - 1, -1, -1):
        if prefix[i] < 0xFF:
            return prefix[:i] + bytes([prefix[i] + 1])
    return b"\0"


def _kv(kv: kv_pb2.KeyValue) -> KeyValue:
    return KeyValue(kv.key.decode(), bytes(kv.value), kv.mod_revision, kv.create_revision)


def _cmp(key: bytes, target: str, result: str, value: int) -> rpc_pb2.Compare:
    c = _CMP(key=key, target=getattr(_CMP, target), result=getattr(_CMP, result))
    setattr(c, {"MOD": "mod_revision", "CREATE": "create_revision", "VERSION": "version"}[target],
            value)
    return c


class EtcdStore(Store):
    def __init__(self, endpoints: list[str], *, timeout: float = _TIMEOUT):
        self.endpoints = endpoints
        self.timeout = timeout
        self._channel: rpc.Channel | None = None
        self._kv: rpc.KVStub | None = None
        self._watch_stub: rpc.WatchStub | None = None
        self._compacted = 0     # highest compaction we have seen (ours or reported)

    async def start(self) -> None:
        if self._channel is not None:
            return
        self._channel = rpc.insecure_channel(_grpc_target(self.endpoints), options=_CHANNEL_OPTS)
        self._kv = rpc.KVStub(self._channel)
        self._watch_stub = rpc.WatchStub(self._channel)
        await self.current_revision()   # fail fast if etcd is unreachable

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    # ---- helpers ---------------------------------------------------------------

    async def _call(self, method: str, request: object) -> object:
        if self._kv is None:
            raise StoreError("store is not open")
        try:
            return await getattr(self._kv, method)(request, timeout=self.timeout)
        except rpc.AioRpcError as e:
            await self._raise_mapped(e)
            raise  # unreachable

    async def _raise_mapped(self, e: rpc.AioRpcError, requested: int = 0) -> None:
        details = e.details() or ""
        if _COMPACTED_MSG in details:
            raise CompactedError(requested, await self.compacted_revision()) from e
        if _FUTURE_MSG in details:
            raise FutureRevisionError(requested, await self.current_revision()) from e
        raise StoreError(f"etcd: {e.code().name}: {details}") from e

    async def _txn(self, compare: list, success: list, failure: list) -> rpc_pb2.TxnResponse:
        return await self._call("Txn", rpc_pb2.TxnRequest(compare=compare, success=success,
                                                          failure=failure))

    @staticmethod
    def _range_op(key: bytes) -> rpc_pb2.RequestOp:
        return rpc_pb2.RequestOp(request_range=rpc_pb2.RangeRequest(key=key))

    @staticmethod
    def _failed_current(resp: rpc_pb2.TxnResponse) -> KeyValue | None:
        kvs = resp.responses[0].response_range.kvs
        return _kv(kvs[0]) if kvs else None

    # ---- Store API -------------------------------------------------------------

    async def create(self, key: str, value: bytes) -> int:
        k = key.encode()
        put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=value))
        resp = await self._txn([_cmp(k, "CREATE", "EQUAL", 0)], [put], [])
        if not resp.succeeded:
            raise KeyExistsError(key)
        return resp.header.revision

    async def update(self, key: str, value: bytes, expected_rev: int) -> int:
        k = key.encode()
        put = rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=k, value=value))
        resp = await self._txn([_cmp(k, "VERSION", "GREATER", 0),
                                _cmp(k, "MOD", "EQUAL", expected_rev)],
                               [put], [self._range_op(k)])
        if resp.succeeded:
            return resp.header.revision
        current = self._failed_current(resp)
        if current is None:
            raise KeyNotFoundError(key)
        raise ConflictError(key, current)

    async def delete(self, key: str, expected_rev: int | None = None) -> tuple[int, KeyValue]:
        k = key.encode()
        compare = [_cmp(k, "VERSION", "GREATER", 0)]
        if expected_rev is not None:
            compare.append(_cmp(k, "MOD", "EQUAL", expected_rev))
        op = rpc_pb2.RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=k,
                                                                                prev_kv=True))
        resp = await self._txn(compare, [op], [self._range_op(k)])
        if resp.succeeded:
            prev = resp.responses[0].response_delete_range.prev_kvs
            return resp.header.revision, _kv(prev[0])
        current = self._failed_current(resp)
        if current is None:
            raise KeyNotFoundError(key)
        raise ConflictError(key, current)

    async def get(self, key: str) -> KeyValue | None:
        resp = await self._call("Range", rpc_pb2.RangeRequest(key=key.encode()))
        return _kv(resp.kvs[0]) if resp.kvs else None

    async def list(self, prefix: str, limit: int = 0, start_after: str = "",
                   at_rev: int = 0) -> tuple[list[KeyValue], int, bool]:
        p = prefix.encode()
        start = p
        if start_after and start_after.encode() >= p:
            start = start_after.encode() + b"\0"    # first key strictly after start_after
        req = rpc_pb2.RangeRequest(key=start, range_end=_prefix_end(p), limit=max(limit, 0),
                                   revision=at_rev)
        try:
            resp = await self._kv.Range(req, timeout=self.timeout)  # type: ignore[union-attr]
        except rpc.AioRpcError as e:
            await self._raise_mapped(e, at_rev)
            raise
        rev = at_rev or resp.header.revision
        return [_kv(kv) for kv in resp.kvs], rev, bool(resp.more)

    async def count(self, prefix: str) -> int:
        p = prefix.encode()
        resp = await self._call("Range", rpc_pb2.RangeRequest(key=p, range_end=_prefix_end(p),
                                                              count_only=True))
        return resp.count

    async def current_revision(self) -> int:
        resp = await self._call("Range", rpc_pb2.RangeRequest(key=b"\0", count_only=True))
        # A fresh etcd already reports revision 1; revisions are only compared, never counted.
        return resp.header.revision

    async def compact(self, rev: int) -> None:
        try:
            await self._kv.Compact(rpc_pb2.CompactionRequest(revision=rev, physical=True),  # type: ignore[union-attr]
                                   timeout=self.timeout)
        except rpc.AioRpcError as e:
            if _COMPACTED_MSG in (e.details() or ""):
                return      # already compacted at or past rev: nothing to do
            await self._raise_mapped(e, rev)
        self._compacted = max(self._compacted, rev)

    async def compacted_revision(self) -> int:
        """Ask etcd: a watch from revision 1 is refused with the compaction point."""
        if self._watch_stub is None:
            raise StoreError("store is not open")
        call = self._watch_stub.Watch(timeout=self.timeout)
        try:
            await call.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
                key=b"\0", start_revision=1)))
            resp = await call.read()
            self._compacted = max(self._compacted, resp.compact_revision)
        finally:
            call.cancel()
        return self._compacted

    async def watch(self, prefix: str, after_rev: int) -> AsyncIterator[Event]:
        if self._watch_stub is None:
            raise StoreError("store is not open")
        if after_rev < self._compacted:
            # etcd accepts after_rev == compacted-1 (its start revision is inclusive);
            # the contract, like SQLite, refuses anything below the compaction point
            raise CompactedError(after_rev, self._compacted)
        p = prefix.encode()
        call = self._watch_stub.Watch()
        try:
            await call.write(rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
                key=p, range_end=_prefix_end(p), start_revision=after_rev + 1, prev_kv=True)))
            async for ev in self._watch_events(call, after_rev):
                yield ev
        finally:
            call.cancel()

    async def _watch_events(self, call: object, after_rev: int) -> AsyncIterator[Event]:
        while True:
            try:
                resp = await call.read()  # type: ignore[attr-defined]
            except asyncio.CancelledError:
                # grpc raises CancelledError when the channel is closed under the call;
                # only a real cancellation of our task should propagate
                task = asyncio.current_task()
                if task is not None and task.cancelling() == 0:
                    return
                raise
            except rpc.AioRpcError as e:
                if e.code() == rpc.StatusCode.CANCELLED:
                    return
                raise StoreError(f"etcd watch: {e.code().name}: {e.details()}") from e
            if resp is grpc_aio.EOF:
                return
            if resp.compact_revision:
                self._compacted = max(self._compacted, resp.compact_revision)
                raise CompactedError(after_rev, resp.compact_revision)
            if resp.canceled:
                raise StoreError(f"etcd watch canceled: {resp.cancel_reason}")
            for e in resp.events:
                yield _event(e)


def _event(e: kv_pb2.Event) -> Event:
    kv, prev = e.kv, (bytes(e.prev_kv.value) if e.HasField("prev_kv") else None)
    key = kv.key.decode()
    if e.type == kv_pb2.Event.DELETE:
        return Event("delete", key, None, prev, kv.mod_revision)
    if kv.create_revision == kv.mod_revision:
        return Event("create", key, bytes(kv.value), None, kv.mod_revision)
    return Event("update", key, bytes(kv.value), prev, kv.mod_revision)
