"""Event recording (client-go's EventRecorder): fire-and-forget core/v1 Events about
an object. A repeat of the same event (object, type, reason, message) within ten
minutes bumps the existing Event's count instead of creating another, so a pod that
fails to schedule 100 times makes one Event with count 100 — as `kubectl describe`
shows it. Sending never blocks the caller and a failed send is only logged."""
from __future__ import annotations

import asyncio
import logging
import socket
import time
from datetime import datetime, timezone

from pybernetes.client.api import EVENTS, APIClient
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

AGGREGATE_WINDOW = 600.0  # seconds a repeat is folded into the earlier Event
MAX_IN_FLIGHT = 500       # beyond this, events are dropped (the cluster is busy enough)
MAX_REMEMBERED = 4096


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class EventRecorder:
    def __init__(self, client: APIClient, component: str, host: str = ""):
        self.client, self.component = client, component
        self.host = host or socket.gethostname()
        self._seen: dict[tuple, tuple[str, str, int, float]] = {}  # -> ns, name, count, at
        self._tasks: set[asyncio.Task] = set()
        # one send at a time per aggregation key: a burst of repeats must reach the
        # server as create, then count 2, 3, ... in order, not as racing writes
        self._locks: dict[tuple, tuple[asyncio.Lock, int]] = {}

    def event(self, obj: dict, type_: str, reason: str, message: str) -> None:
        """Record that `reason: message` happened to obj (type_ Normal or Warning)."""
        if len(self._tasks) >= MAX_IN_FLIGHT:
            log.debug("dropping event %s for %s: too many in flight", reason,
                      obj["metadata"].get("name"))
            return
        task = asyncio.get_running_loop().create_task(self._record(obj, type_, reason, message))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def flush(self, timeout: float = 5) -> None:
        """Wait for events in flight (tests, clean shutdown)."""
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def _record(self, obj: dict, type_: str, reason: str, message: str) -> None:
        md = obj["metadata"]
        key = (md.get("namespace"), md.get("uid") or md.get("name"), type_, reason, message)
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                await self._send(key, obj, type_, reason, message)
        except Exception as e:  # noqa: BLE001 - events are best effort; never crash the caller
            log.debug("event %s for %s not recorded: %s", reason, md.get("name"), e)
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def _send(self, key: tuple, obj: dict, type_: str, reason: str, message: str) -> None:
        seen = self._seen.get(key)
        if seen and time.monotonic() - seen[3] < AGGREGATE_WINDOW:
            if await self._bump(key, seen):
                return
        await self._create(key, obj, type_, reason, message)

    async def _bump(self, key: tuple, seen: tuple[str, str, int, float]) -> bool:
        ns, name, count, _ = seen
        self._seen[key] = (ns, name, count + 1, time.monotonic())
        try:
            await self.client.patch(EVENTS, name, {"count": count + 1, "lastTimestamp": _now()},
                                    namespace=ns)
            return True
        except StatusError as e:
            if e.code == 404:  # expired or deleted: create a new one
                return False
            raise

    async def _create(self, key: tuple, obj: dict, type_: str, reason: str,
                      message: str) -> None:
        md = obj["metadata"]
        ns = md.get("namespace") or "default"
        now = _now()
        name = f"{md['name']}.{time.time_ns():x}"
        ev = {"apiVersion": "v1", "kind": "Event",
              "metadata": {"name": name, "namespace": ns},
              "involvedObject": {k: v for k, v in {
                  "apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                  "name": md["name"], "namespace": md.get("namespace"),
                  "uid": md.get("uid"),
                  "resourceVersion": md.get("resourceVersion")}.items() if v},
              "reason": reason, "message": message, "type": type_, "count": 1,
              "firstTimestamp": now, "lastTimestamp": now,
              "source": {"component": self.component, "host": self.host},
              "reportingComponent": self.component, "reportingInstance": self.host}
        if len(self._seen) >= MAX_REMEMBERED:
            self._seen.pop(next(iter(self._seen)))
        self._seen[key] = (ns, name, 1, time.monotonic())
        await self.client.create(EVENTS, ev)
