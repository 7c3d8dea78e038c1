"""Restart back-off for crashed containers (and failed image pulls), as upstream's
kubelet keeps it: a per-key delay that starts at 10 s, doubles on every restart up to
5 min, and is forgotten once the key has been quiet for twice the maximum (10 min),
so a container that ran that long restarts at once again.

The first restart of a container is immediate; the next waits 10 s counted from the
moment the container *finished*, and so on. While waiting, the container's state is
`waiting` with reason CrashLoopBackOff and `message(...)` as its message.

Tests shorten every delay with `scale` (e.g. `RestartBackoff(scale=0.01)`: 0.1 s
doubling to 3 s); the kubelet's `--container-backoff-scale` flag feeds it."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

INITIAL, MAXIMUM = 10.0, 300.0   # upstream: 10 s doubling to MaxContainerBackOff (5 min)


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String() for whole-ish seconds: 10s, 1m20s, 5m0s, 1.5s."""
    if seconds < 60:
        s = round(seconds, 3)
        return f"{int(s)}s" if s == int(s) else f"{s:g}s"
    whole = int(round(seconds))
    h, rest = divmod(whole, 3600)
    m, s = divmod(rest, 60)
    return (f"{h}h" if h else "") + f"{m}m{s}s"


def pod_ref(pod: dict) -> str:
    """upstream's format.Pod: name_namespace(uid)."""
    md = pod.get("metadata") or {}
    return f"{md.get('name', '')}_{md.get('namespace', '')}({md.get('uid', '')})"


def container_key(pod: dict, container_name: str, spec_hash: str = "") -> str:
    """Stable key per container *definition*: a changed spec starts a fresh back-off."""
    md = pod.get("metadata") or {}
    return f"{md.get('name')}_{md.get('namespace')}_{md.get('uid')}_{container_name}_{spec_hash}"


@dataclass
class _Entry:
    delay: float
    updated: float


class RestartBackoff:
    """Back-off per key. `clock` returns wall-clock seconds (container finish times
    come from the runtime as time.time() values)."""

    def __init__(self, initial: float = INITIAL, maximum: float = MAXIMUM, scale: float = 1.0,
                 clock: Callable[[], float] = time.time):
        self.initial, self.maximum = initial * scale, maximum * scale
        self.clock = clock
        self._entries: dict[str, _Entry] = {}

    def _live(self, key: str, now: float) -> _Entry | None:
        e = self._entries.get(key)
        if e is not None and now - e.updated > 2 * self.maximum:
            del self._entries[key]   # quiet for long enough: start over
            return None
        return e

    def delay(self, key: str) -> float:
        """The current delay for key (0 when none is recorded)."""
        e = self._live(key, self.clock())
        return e.delay if e else 0.0

    def remaining(self, key: str, finished_at: float) -> float:
        """Seconds still to wait before restarting a container that finished at
        `finished_at`; 0 means it may restart now."""
        now = self.clock()
        e = self._live(key, now)
        if e is None:
            return 0.0
        return max(0.0, e.delay - (now - finished_at))

    def next(self, key: str) -> float:
        """Record a restart: the delay the *following* restart will wait."""
        now = self.clock()
        e = self._live(key, now)
        delay = self.initial if e is None else min(e.delay * 2, self.maximum)
        self._entries[key] = _Entry(delay, now)
        return delay

    def check(self, key: str, finished_at: float) -> float:
        """upstream's doBackOff: 0 → restart now (the restart is recorded);
        otherwise the seconds left, and nothing is recorded."""
        left = self.remaining(key, finished_at)
        if left > 0:
            return left
        self.next(key)
        return 0.0

    def reset(self, key: str) -> None:
        self._entries.pop(key, None)

    def gc(self) -> None:
        """Drop keys quiet for more than twice the maximum (bounded memory)."""
        now = self.clock()
        for key in [k for k, e in self._entries.items() if now - e.updated > 2 * self.maximum]:
            del self._entries[key]

    def __len__(self) -> int:
        return len(self._entries)

    def message(self, key: str, container_name: str, pod: dict) -> str:
        """The CrashLoopBackOff waiting message, worded as upstream."""
        return (f"back-off {go_duration(self.delay(key))} restarting failed "
                f"container={container_name} pod={pod_ref(pod)}")


def backoff_event(container_name: str, pod: dict) -> str:
    """The BackOff event's message (reason "BackOff", type Warning)."""
    return f"Back-off restarting failed container {container_name} in pod {pod_ref(pod)}"


def image_backoff_message(image: str) -> str:
    """The ImagePullBackOff waiting message."""
    return f'Back-off pulling image "{image}"'
