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
from ..storage.watch_cache import CacheEvent, Subscription
from . import table
from .negotiation import Target
from .resource_store import ListOptions, ResourceStore, parse_rv

BOOKMARK_INTERVAL = 10.0  # seconds (upstream: about a minute; cheaper resumes here)
DEFAULT_TIMEOUT = 1800.0  # upstream: a random value in [minRequestTimeout, 2x]
WRITE_BATCH = 256  # events per write to one watcher (one TLS record instead of 256)


def _truthy(v: str | None) -> bool:
    return v is not None and v.lower() in ("true", "1")


class _Stream:
    """Encodes events for one watcher in the form it asked for.

    A watch event's line is encoded once per representation (strategy, form, media,
    Table options) and event type, and the bytes are shared by every watcher sending
    it (upstream's cachingObject); what a watcher has ready is written in one go."""

    def __init__(self, resp: web.StreamResponse, rs: ResourceStore, opts: ListOptions,
                 target: Target, include: str):
        self.resp, self.rs, self.opts, self.target, self.include = resp, rs, opts, target, include
        self.representation = (id(rs.s), target.form, target.media, target.table_version,
                               include if target.form == "Table" else "")

    def _form(self, obj: dict) -> Any:
        if self.target.form == "Table":
            return table.table(self.rs.s, [obj], {"resourceVersion": obj["metadata"].get(
                "resourceVersion", "")}, self.include, self.target.table_version)
        if self.target.form.startswith("PartialObjectMetadata"):
            return table.partial_metadata(obj, self.target.table_version)
        return obj

    async def send(self, type_: str, obj: Any) -> None:
        await self.resp.write(_line(type_, obj))

    async def write(self, lines: list[bytes]) -> None:
        if lines:
            await self.resp.write(lines[0] if len(lines) == 1 else b"".join(lines))

    def event_type(self, type_: str, obj: dict, prev_cached: dict | None) -> str | None:
        """The event this watcher sees (selectors turn MODIFIED into ADDED/DELETED), or
        None when the change is outside its selection."""
        if not self.opts.filtered:
            return type_
        now = self.opts.matches(self.rs.s, obj)
        before = prev_cached is not None and self.opts.matches(self.rs.s,
                                                               self.rs.out(prev_cached))
        if type_ == "MODIFIED":
            if now and not before:
                return "ADDED"
            if before and not now:
                return "DELETED"
            return type_ if now else None
        if type_ == "DELETED":
            return type_ if (before or now) else None
        return type_ if now else None

    def encode(self, type_: str, cached: dict, prev_cached: dict | None) -> bytes | None:
        """One event's line for this watcher (not shared: initial events)."""
        obj = self.rs.out(cached)
        type_ = self.event_type(type_, obj, prev_cached)  # type: ignore[assignment]
        return None if type_ is None else _line(type_, self._form(obj))

    def shared(self, ev: CacheEvent) -> bytes | None:
        """A cache event's line for this watcher, encoded once for all who send the same."""
        memo = ev.memo
        if memo is None:  # an old event (a resume from far back): encode it for us alone
            return self.encode(ev.type, ev.obj, ev.prev_obj)
        if self.opts.filtered:
            obj = self.rs.out(ev.obj)
            type_ = self.event_type(ev.type, obj, ev.prev_obj)
            if type_ is None:
                return None
        else:
            obj, type_ = None, ev.type
        key = (self.representation, type_)
        line = memo.get(key)
        if line is None:
            line = memo[key] = _line(type_, self._form(obj if obj is not None
                                                       else self.rs.out(ev.obj)))
        return line

    async def bookmark(self, rev: int, initial_end: bool = False) -> None:
        md: dict[str, Any] = {"resourceVersion": str(rev), "creationTimestamp": None}
        if initial_end:
            md["annotations"] = {"k8s.io/initial-events-end": "true"}
        await self.send("BOOKMARK", {"kind": self.rs.s.kind,
                                     "apiVersion": self.rs.s.api_version(), "metadata": md})


def _line(type_: str, obj: Any) -> bytes:
    return orjson.dumps({"type": type_, "object": obj}) + b"\n"


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

    try:
        for i in range(0, len(snapshot), WRITE_BATCH):
            lines = [stream.encode("ADDED", obj, None) for obj in snapshot[i:i + WRITE_BATCH]]
            await stream.write([b for b in lines if b is not None])
        if initial and send_initial is not None:
            await stream.bookmark(after, initial_end=True)
        await _loop(stream, sub, deadline, bookmarks, cache)
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        sub.close()
    try:
        await resp.write_eof()
    except (ConnectionResetError, RuntimeError):
        pass
    return resp


async def _loop(stream: _Stream, sub: Subscription, deadline: float, bookmarks: bool,
                cache: Any) -> None:
    """Send what the subscription has ready, one write per batch, until the deadline or
    the subscription closes (a subscriber that fell behind: the client resumes from its
    last resourceVersion)."""
    next_bookmark = time.monotonic() + BOOKMARK_INTERVAL
    last_rev = 0
    while True:
        batch = sub.drain(WRITE_BATCH)
        if batch:
            last_rev = batch[-1].revision
            lines = [stream.shared(ev) for ev in batch]
            await stream.write([b for b in lines if b is not None])
            continue
        if sub.closed_reason is not None:
            return
        now = time.monotonic()
        if now >= deadline:
            return
        if bookmarks and now >= next_bookmark:
            await stream.bookmark(max(cache.revision, last_rev))
            next_bookmark = now + BOOKMARK_INTERVAL
            continue
        wait = deadline - now
        if bookmarks:
            wait = min(wait, next_bookmark - now)
        await sub.wait(wait)
