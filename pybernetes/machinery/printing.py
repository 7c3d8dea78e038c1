"""Helpers for server-side printing (Table cells), worded like kubectl's printers."""
from __future__ import annotations

import datetime as _dt
import time
from typing import Any


def parse_time(ts: str) -> _dt.datetime | None:
    """An RFC3339 timestamp as stored in metadata (e.g. 2026-11-22T08:31:25Z)."""
    if not ts:
        return None
    try:
        return _dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    except ValueError:
        return None


_last_stamp: tuple[int, str] = (0, "")


def now_rfc3339() -> str:
    """The current UTC time to the second, as metadata timestamps are (memoised per
    second: every write takes one)."""
    global _last_stamp
    second = int(time.time())
    if _last_stamp[0] != second:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        _last_stamp = (second, stamp)
    return _last_stamp[1]


def human_duration(seconds: float) -> str:
    """apimachinery's duration.HumanDuration: 45s, 5m10s, 3h, 2d5h, 3y45d."""
    s = int(seconds)
    if s < 0:
        return "<invalid>"
    if s < 60 * 2:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rem = s % 60
        return f"{minutes}m{rem}s" if rem else f"{minutes}m"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rem = (s % 3600) // 60
        return f"{hours}h{rem}m" if rem else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rem = hours % 24
        return f"{hours // 24}d{rem}h" if rem else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        days = hours // 24 - (hours // 24 // 365) * 365
        return f"{hours // 24 // 365}y{days}d" if days else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def since(ts: str | None) -> str:
    """kubectl's translateTimestampSince: "<unknown>" for a missing time."""
    t = parse_time(ts or "")
    if t is None:
        return "<unknown>"
    delta = (_dt.datetime.now(_dt.timezone.utc) - t).total_seconds()
    return human_duration(max(delta, 0))


def age(obj: dict) -> str:
    return since(obj.get("metadata", {}).get("creationTimestamp"))


def get_path(obj: Any, *path: str, default: Any = None) -> Any:
    """obj[path[0]][path[1]]... or `default` when any step is missing."""
    for p in path:
        if not isinstance(obj, dict) or p not in obj:
            return default
        obj = obj[p]
    return obj


def join_or_none(items: list[str]) -> str:
    """kubectl prints "<none>" for empty lists."""
    return ",".join(items) if items else "<none>"
