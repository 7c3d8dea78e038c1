"""The shape every controller shares: informers feed a WorkQueue of keys, N workers
run an idempotent `reconcile(key)` that reads the informer caches and writes through
the API. A failed key is retried with the queue's rate limit; a crash at any line
is safe to repeat because the next reconcile starts again from the current state."""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timezone
from typing import Any, Callable

from pybernetes.client.workqueue import WorkQueue, serve
from pybernetes.client.informer import Informer

log = logging.getLogger(__name__)

EXPECTATIONS_TTL = 300.0  # upstream's ExpectationsTimeout: give up waiting for a lost watch event
MAX_RETRIES = 15


def object_key(obj: dict) -> str:
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{ns}/{md.get('name')}" if ns else str(md.get("name"))


def split_key(key: str) -> tuple[str | None, str]:
    ns, _, name = key.rpartition("/")
    return (ns or None), name


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(s: str | None) -> float | None:
    """RFC 3339 timestamp → epoch seconds (None when absent or unreadable)."""
    if not s:
        return None
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def controller_ref(obj: dict) -> dict | None:
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def new_controller_ref(owner: dict) -> dict:
    md = owner["metadata"]
    return {"apiVersion": owner["apiVersion"], "kind": owner["kind"], "name": md["name"],
            "uid": md["uid"], "controller": True, "blockOwnerDeletion": True}


def namespace_index(obj: dict) -> list[str]:
    return [(obj.get("metadata") or {}).get("namespace") or ""]


class SharedInformers:
    """One informer per (resource, namespace) for the whole process, as client-go's
    SharedInformerFactory: two controllers watching pods share one watch and one cache."""

    def __init__(self, client: Any):
        self.client = client
        self._informers: dict[tuple, Any] = {}

    def get(self, res: Any, namespace: str | None = None) -> Any:
        key = (res, namespace)
        if key not in self._informers:
            inf = self._informers[key] = Informer(self.client, res, namespace=namespace)
            inf.add_index("namespace", namespace_index)
        return self._informers[key]

    async def start(self) -> None:
        for inf in self._informers.values():
            await inf.start()

    async def wait_synced(self, timeout: float = 60) -> None:
        for inf in self._informers.values():
            await inf.wait_synced(timeout)

    async def stop(self) -> None:
        for inf in self._informers.values():
            await inf.stop()


class Expectations:
    """client-go's ControllerExpectations: after a controller asks for N creates or
    deletes it waits for the watch to show them before it counts pods again, so a
    slow informer never makes it create twice."""

    def __init__(self, ttl: float = EXPECTATIONS_TTL, clock: Callable[[], float] = time.monotonic):
        self.ttl, self.clock = ttl, clock
        self._exp: dict[str, list] = {}  # key -> [adds, dels, set at]

    def expect(self, key: str, adds: int = 0, dels: int = 0) -> None:
        self._exp[key] = [adds, dels, self.clock()]

    def creation_observed(self, key: str) -> None:
        if key in self._exp:
            self._exp[key][0] -= 1

    def deletion_observed(self, key: str) -> None:
        if key in self._exp:
            self._exp[key][1] -= 1

    def satisfied(self, key: str) -> bool:
        e = self._exp.get(key)
        if e is None:
            return True
        return (e[0] <= 0 and e[1] <= 0) or self.clock() - e[2] > self.ttl

    def forget(self, key: str) -> None:
        self._exp.pop(key, None)


class Controller:
    """Subclasses set `name`, register informer handlers in `setup()` and implement
    `reconcile(key)`; `run()` serves the queue with `workers` tasks until cancelled."""

    name = "controller"
    workers = 2

    def __init__(self, client: Any, informers: SharedInformers, recorder: Any):
        self.client, self.informers, self.recorder = client, informers, recorder
        self.queue = WorkQueue()
        self.setup()

    def setup(self) -> None:
        """Get informers from self.informers and add handlers that enqueue keys."""

    async def reconcile(self, key: str) -> None:
        raise NotImplementedError

    def enqueue(self, obj: dict) -> None:
        self.queue.add(object_key(obj))

    async def run(self) -> None:
        tasks = [asyncio.create_task(self._worker()) for _ in range(self.workers)]
        try:
            await asyncio.gather(*tasks)
        finally:
            self.queue.shutdown()
            for t in tasks:
                t.cancel()

    async def _worker(self) -> None:
        await serve(self.queue, self.reconcile, log, self.name, max_retries=MAX_RETRIES)
