"""Reading CRI-format container logs, as the kubelet serves them to `kubectl logs`.

A CRI log line is `<RFC3339Nano timestamp> <stdout|stderr> <tag> <content>\\n`, tag `F`
for a full line and `P` for a piece of a longer one (no newline of its own). Options
are upstream's PodLogOptions: tailLines, sinceTime/sinceSeconds, timestamps,
limitBytes (applied by the writer), follow (tail the file until the container stops,
reopening it when rotated).
"""
from __future__ import annotations

import asyncio
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import AsyncIterator, Awaitable, Callable

POLL_SECONDS = 0.2
_STAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$")


@dataclass
class Entry:
    timestamp: bytes   # as written (RFC 3339 with nanoseconds)
    time_ns: int
    stream: str        # "stdout" | "stderr"
    content: bytes     # with its newline for a full line


@dataclass
class LogOptions:
    follow: bool = False
    tail_lines: int | None = None
    since_ns: int | None = None
    timestamps: bool = False
    limit_bytes: int | None = None
    from_end: bool = False   # start at the end of the file (attach)


def parse_time_ns(stamp: bytes | str) -> int | None:
    """Nanoseconds since the epoch of an RFC 3339 time (any fraction length), or None."""
    raw = stamp.encode() if isinstance(stamp, str) else stamp
    m = _STAMP.match(raw.strip())
    if not m:
        return None
    zone = m.group(3).decode()
    try:
        base = datetime.fromisoformat(m.group(1).decode() + ("+00:00" if zone == "Z" else zone))
    except ValueError:
        return None
    frac = (m.group(2) or b"0").decode().ljust(9, "0")
    return int(base.timestamp()) * 1_000_000_000 + int(frac)


def parse_line(line: bytes) -> Entry | None:
    """One CRI log line (without its trailing newline); None when malformed."""
    parts = line.split(b" ", 3)
    if len(parts) < 3:
        return None
    stamp, stream, tag = parts[0], parts[1], parts[2]
    content = parts[3] if len(parts) == 4 else b""
    t = parse_time_ns(stamp)
    if t is None or stream not in (b"stdout", b"stderr"):
        return None
    partial = tag.split(b":")[0] == b"P"
    return Entry(stamp, t, stream.decode(), content if partial else content + b"\n")


def render(entry: Entry, timestamps: bool) -> bytes:
    if not timestamps:
        return entry.content
    stamp = entry.timestamp
    if stamp.endswith(b"+00:00"):   # conmon writes the offset; upstream prints UTC as Z
        stamp = stamp[:-6] + b"Z"
    return stamp + b" " + entry.content


def _parse_lines(data: bytes) -> tuple[list[Entry], bytes]:
    """Entries of the complete lines in `data`, and the incomplete rest."""
    *lines, rest = data.split(b"\n")
    entries = [e for e in map(parse_line, lines) if e is not None]
    return entries, rest


def _tail(entries: list[Entry], n: int) -> list[Entry]:
    """The entries making up the last `n` lines (a P piece belongs to the next F line)."""
    if n <= 0:
        return []
    full = 0
    for i in range(len(entries) - 1, -1, -1):
        if entries[i].content.endswith(b"\n"):
            full += 1
            if full > n:
                return entries[i + 1:]
    return entries


async def follow_entries(path: str, opts: LogOptions,
                         running: Callable[[], Awaitable[bool]]) -> AsyncIterator[Entry]:
    """The log's entries per `opts`; with follow, then new ones as they are written,
    until `running()` says the container stopped (and the rest is read)."""
    f = open(path, "rb")
    try:
        if opts.from_end:
            f.seek(0, os.SEEK_END)
            entries, rest = [], b""
        else:
            entries, rest = _parse_lines(f.read())
        if opts.tail_lines is not None and opts.tail_lines >= 0:
            entries = _tail(entries, opts.tail_lines)
        for e in entries:
            if opts.since_ns is None or e.time_ns >= opts.since_ns:
                yield e
        if not opts.follow:
            return
        async for e in _tail_file(path, f, rest, running):
            if opts.since_ns is None or e.time_ns >= opts.since_ns:
                yield e
    finally:
        f.close()


async def _tail_file(path: str, f, rest: bytes,
                     running: Callable[[], Awaitable[bool]]) -> AsyncIterator[Entry]:
    """Entries appended to `f` from here on; files reopened after a rotation are closed
    here (the caller closes `f`)."""
    opened = []
    try:
        stopping = False
        while True:
            chunk = f.read(65536)
            if chunk:
                entries, rest = _parse_lines(rest + chunk)
                for e in entries:
                    yield e
                continue
            if stopping:
                return
            reopened = _reopen_if_rotated(path, f)
            if reopened is not None:
                opened.append(reopened)
                f, rest = reopened, b""
                continue
            if not await running():
                stopping = True  # one more read: what was written just before the exit
                continue
            await asyncio.sleep(POLL_SECONDS)
    finally:
        for g in opened:
            g.close()


def _reopen_if_rotated(path: str, f):
    """A new file object when `path` was rotated (renamed and recreated) or truncated."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None  # between rename and recreate: wait for it
    if st.st_ino != os.fstat(f.fileno()).st_ino:
        return open(path, "rb")
    if st.st_size < f.tell():
        f.seek(0)
    return None


def since_ns_from(since_seconds: str | None, since_time: str | None) -> int | None:
    """sinceSeconds wins over sinceTime (the API allows only one; we are lenient)."""
    if since_seconds:
        return time.time_ns() - int(since_seconds) * 1_000_000_000
    if since_time:
        return parse_time_ns(since_time)
    return None


def now_stamp() -> str:
    ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{frac:09d}Z"
