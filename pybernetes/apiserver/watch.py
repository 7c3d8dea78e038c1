"""Watch streaming: one JSON event per line, from the resource's watch cache.

Semantics (as kube-apiserver):
- resourceVersion unset or "0": synthetic ADDED events for what exists, then changes;
- resourceVersion=N: every change after N; too old -> 200 then an ERROR event (410 Expired);
- sendInitialEvents=true: the initial ADDED events, then a BOOKMARK annotated
  `k8s.io/initial-events-end` (needs resourceVersionMatch=NotOlderThan and bookmarks);
- selectors turn MODIFIED into ADDED/DELETED when an object enters/leaves the selection;
- bookmarks (when allowed) carry only kind/apiVersion/resourceVersion;
- the stream ends cleanly at timeoutSeconds.
"""
from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import orjson
from aiohttp import web

from ..machinery import errors
from ..storage.store import CompactedError
from . import table
from .negotiation import Target
from .resource_store import ListOptions, ResourceStore, parse_rv

BOOKMARK_INTERVAL = 10.0  # seconds (upstream: about a minute; cheaper resumes here)
DEFAULT_TIMEOUT = 1800.0  # upstream: a random value in [minRequestTimeout, 2x]
_END = object()


def _truthy(v: str | None) -> bool:
    return v is not None and v.lower() in ("true", "1")


class _Stream:
    """Encodes events for one watcher in the form it asked for."""

    def __init__(self, resp: web.StreamResponse, rs: ResourceStore, opts: ListOptions,
                 target: Target, include: str):
        self.resp, self.rs, self.opts, self.target, self.include = resp, rs, opts, target, include

    def _form(self, obj: dict) -> Any:
        if self.target.form == "Table":
            return table.table(self.rs.s, [obj], {"resourceVersion": obj["metadata"].get(
                "resourceVersion", "")}, self.include, self.target.table_version)
        if self.target.form.startswith("PartialObjectMetadata"):
            return table.partial_metadata(obj, self.target.table_version)
        return obj

    async def send(self, type_: str, obj: Any) -> None:
        await self.resp.write(orjson.dumps({"type": type_, "object": obj}) + b"\n")

    async def event(self, type_: str, cached: dict, prev_cached: dict | None) -> None:
        obj = self.rs.out(cached)
        if self.opts.filtered:
            now = self.opts.matches(self.rs.s, obj)
            before = prev_cached is not None and self.opts.matches(self.rs.s,
                                                                   self.rs.out(prev_cached))
            if type_ == "MODIFIED":
                if now and not before:
                    type_ = "ADDED"
                elif before and not now:
                    type_ = "DELETED"
                elif not now:
                    return
            elif type_ == "DELETED":
                if not (before or now):
                    return
            elif not now:
                return
        await self.send(type_, self._form(obj))

    async def bookmark(self, rev: int, initial_end: bool = False) -> None:
        md: dict[str, Any] = {"resourceVersion": str(rev), "creationTimestamp": None}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        await self.send("BOOKMARK", {"kind": self.rs.s.kind,
                                     "apiVersion": self.rs.s.api_version(), "metadata": md})


def _timeout(request: web.Request) -> float:
    raw = request.query.get("timeoutSeconds")
    if raw is None:
        return DEFAULT_TIMEOUT * (1 + random.random())
    try:
        return max(float(int(raw)), 0.0)
    except ValueError:
        raise errors.bad_request("timeoutSeconds must be an integer")


async def serve_watch(request: web.Request, rs: ResourceStore, namespace: str,
                      opts: ListOptions, target: Target) -> web.StreamResponse:
    q = request.query
    bookmarks = _truthy(q.get("allowWatchBookmarks"))
    send_initial = q.get("sendInitialEvents")
    rv = opts.resource_version
    if send_initial is not None:
        if opts.resource_version_match != "NotOlderThan":
            raise errors.invalid("ListOptions", "", [errors.forbidden(
                "sendInitialEvents", "sendInitialEvents is forbidden for watch unless the "
                "resourceVersionMatch is set to NotOlderThan")], "meta.k8s.io")
        if _truthy(send_initial) and not bookmarks:
            raise errors.invalid("ListOptions", "", [errors.forbidden(
                "allowWatchBookmarks", "allowWatchBookmarks must be true when sendInitialEvents "
                "is set")], "meta.k8s.io")
    initial = _truthy(send_initial) if send_initial is not None else rv in ("", "0")
    deadline = time.monotonic() + _timeout(request)
    cache = rs.cache
    prefix = rs.prefix(namespace)
    start_rev = parse_rv(rv) if rv not in ("", "0") else 0
    if start_rev and not initial:
        await rs._wait_fresh(start_rev)
    elif send_initial is not None and start_rev:
        await rs._wait_fresh(start_rev)

    resp = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                   "Cache-Control": "no-cache, private"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    stream = _Stream(resp, rs, opts, target, q.get("includeObject", "Metadata"))

    if initial:
        after = cache.revision
        snapshot = cache.list(prefix)
    else:
        after, snapshot = start_rev, []
    try:
        sub = cache.subscribe(prefix, after)
    except CompactedError as e:
        await stream.send("ERROR", errors.expired(
            f"too old resource version: {start_rev} ({e.compacted})").status())
        await resp.write_eof()
        return resp

    queue: asyncio.Queue = asyncio.Queue()
    pump = asyncio.create_task(_pump(sub, queue))
    try:
        for obj in snapshot:
            await stream.event("ADDED", obj, None)
        if initial and send_initial is not None:
            await stream.bookmark(after, initial_end=True)
        await _loop(stream, queue, deadline, bookmarks, cache)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        pump.cancel()
        closer = getattr(sub, "close", None) or getattr(sub, "aclose", None)
        if closer is not None:
            res = closer()
            if asyncio.iscoroutine(res):
                try:
                    await res
                except Exception:
                    pass
    try:
        await resp.write_eof()
    except (ConnectionResetError, RuntimeError):
        pass
    return resp


async def _pump(sub: Any, queue: asyncio.Queue) -> None:
    """Move subscription events into our queue, so timeouts never cancel the subscription."""
    try:
        async for ev in sub:
            queue.put_nowait(ev)
        queue.put_nowait(_END)
    except CompactedError as e:
        queue.put_nowait(e)
    except asyncio.CancelledError:
        raise
    except Exception as e:  # a subscriber that fell too far behind is closed by the cache
        queue.put_nowait(e)


async def _loop(stream: _Stream, queue: asyncio.Queue, deadline: float, bookmarks: bool,
                cache: Any) -> None:
    next_bookmark = time.monotonic() + BOOKMARK_INTERVAL
    last_rev = 0
    while True:
        now = time.monotonic()
        if now >= deadline:
            return
        wait = deadline - now
        if bookmarks:
            wait = min(wait, max(next_bookmark - now, 0))
        try:
            item = await asyncio.wait_for(queue.get(), timeout=wait)
        except asyncio.TimeoutError:
            if bookmarks and time.monotonic() >= next_bookmark:
                await stream.bookmark(max(cache.revision, last_rev))
                next_bookmark = time.monotonic() + BOOKMARK_INTERVAL
            continue
        if item is _END:
            return
        if isinstance(item, CompactedError):
            await stream.send("ERROR", errors.expired(
                f"too old resource version: {item.requested} ({item.compacted})").status())
            return
        if isinstance(item, Exception):
            return  # the client resumes from its last resourceVersion
        last_rev = item.revision
        await stream.event(item.type, item.obj, item.prev_obj)
