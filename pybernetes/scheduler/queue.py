"""The scheduling queue (upstream's PriorityQueue): an active heap ordered by priority
then arrival, a backoff heap for pods that failed recently (1 s doubling to 10 s per
attempt), and an unschedulable set that waits for a cluster event (a node added or
changed, a pod deleted) that might let them fit."""
from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from dataclasses import dataclass
from typing import Callable

INITIAL_BACKOFF = 1.0
MAX_BACKOFF = 10.0
MAX_IN_UNSCHEDULABLE = 300.0  # upstream's podMaxInUnschedulablePodsDuration


@dataclass
class QueuedPod:
    pod: dict
    key: str
    priority: int
    added: float
    attempts: int = 0
    failed_at: float = 0.0
    popped_cycle: int = -1


class SchedulingQueue:
    def __init__(self, clock: Callable[[], float] = time.monotonic,
                 initial_backoff: float = INITIAL_BACKOFF, max_backoff: float = MAX_BACKOFF):
        self.clock = clock
        self.initial_backoff, self.max_backoff = initial_backoff, max_backoff
        self.pods: dict[str, QueuedPod] = {}
        self.active: list[tuple[int, float, int, str]] = []
        self.in_active: set[str] = set()
        self.backoff: list[tuple[float, int, str]] = []
        self.in_backoff: set[str] = set()
        self.unschedulable: set[str] = set()
        self.in_flight: set[str] = set()
        self.move_cycle = 0
        self._seq = itertools.count()
        self._wake = asyncio.Event()
        self._closed = False
        self._stale_check = 0.0

    def __len__(self) -> int:
        return len(self.in_active) + len(self.in_backoff) + len(self.unschedulable)

    # ----- informer side -----
    def add(self, pod: dict, key: str) -> None:
        """A new pending pod, or a pending pod whose spec changed: try it now."""
        qp = self.pods.get(key)
        if qp is None:
            qp = self.pods[key] = QueuedPod(pod, key, _priority(pod), self.clock())
        else:
            qp.pod, qp.priority = pod, _priority(pod)
        if key in self.in_flight:
            qp.popped_cycle = -1  # changed while being tried: a failure retries after backoff
            return
        self.unschedulable.discard(key)
        self._activate(qp)

    def update(self, pod: dict, key: str, relevant: bool) -> None:
        """A pending pod changed; only a change that may matter (spec, labels) moves it."""
        qp = self.pods.get(key)
        if qp is None or relevant:
            self.add(pod, key)
        else:
            qp.pod = pod

    def delete(self, key: str) -> None:
        self.pods.pop(key, None)
        self.unschedulable.discard(key)
        self.in_active.discard(key)
        self.in_backoff.discard(key)  # stale heap entries are skipped when popped

    def move_all(self, wants: Callable[[dict], bool] | None = None) -> None:
        """A cluster event that may make unschedulable pods fit: retry them (through
        backoff when they failed too recently)."""
        self.move_cycle += 1
        for key in list(self.unschedulable):
            qp = self.pods[key]
            if wants is not None and not wants(qp.pod):
                continue
            self.unschedulable.discard(key)
            self._backoff_or_activate(qp)

    # ----- scheduler side -----
    async def pop(self) -> QueuedPod | None:
        """The most important pod ready to schedule; None once shut down."""
        while True:
            self.flush()
            while self.active:
                _, _, _, key = heapq.heappop(self.active)
                if key in self.in_active:
                    self.in_active.discard(key)
                    qp = self.pods[key]
                    qp.attempts += 1
                    qp.popped_cycle = self.move_cycle
                    self.in_flight.add(key)
                    return qp
            if self._closed:
                return None
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=self._next_wakeup())
            except asyncio.TimeoutError:
                pass

    def done(self, key: str) -> None:
        self.in_flight.discard(key)

    def scheduled(self, key: str) -> None:
        self.in_flight.discard(key)
        self.pods.pop(key, None)

    def failed(self, key: str, unschedulable: bool = True) -> None:
        """The attempt failed. Unschedulable pods wait for an event, unless one came
        while they were being tried; errors retry after backoff."""
        self.in_flight.discard(key)
        qp = self.pods.get(key)
        if qp is None:
            return
        qp.failed_at = self.clock()
        if unschedulable and qp.popped_cycle >= self.move_cycle:
            self.unschedulable.add(key)
        else:
            self._to_backoff(qp)

    def backoff_for(self, qp: QueuedPod) -> float:
        return min(self.initial_backoff * 2 ** max(qp.attempts - 1, 0), self.max_backoff)

    def flush(self) -> None:
        """Backed-off pods whose time has come, and pods unschedulable for too long."""
        now = self.clock()
        while self.backoff and self.backoff[0][0] <= now:
            _, _, key = heapq.heappop(self.backoff)
            if key in self.in_backoff:
                self.in_backoff.discard(key)
                self._activate(self.pods[key])
        if now - self._stale_check < 1.0:  # scanning the set on every pop would be quadratic
            return
        self._stale_check = now
        for key in [k for k in self.unschedulable
                    if now - self.pods[k].failed_at > MAX_IN_UNSCHEDULABLE]:
            self.unschedulable.discard(key)
            self._backoff_or_activate(self.pods[key])

    def shutdown(self) -> None:
        self._closed = True
        self._wake.set()

    # ----- internals -----
    def _activate(self, qp: QueuedPod) -> None:
        self.in_backoff.discard(qp.key)
        if qp.key not in self.in_active:
            self.in_active.add(qp.key)
            heapq.heappush(self.active, (-qp.priority, qp.added, next(self._seq), qp.key))
            self._wake.set()

    def _to_backoff(self, qp: QueuedPod) -> None:
        self.in_backoff.add(qp.key)
        heapq.heappush(self.backoff, (qp.failed_at + self.backoff_for(qp), next(self._seq), qp.key))
        self._wake.set()

    def _backoff_or_activate(self, qp: QueuedPod) -> None:
        if qp.attempts and self.clock() < qp.failed_at + self.backoff_for(qp):
            self._to_backoff(qp)
        else:
            self._activate(qp)

    def _next_wakeup(self) -> float:
        if self.backoff:
            return max(0.01, self.backoff[0][0] - self.clock())
        return 1.0


def _priority(pod: dict) -> int:
    return int((pod.get("spec") or {}).get("priority") or 0)
