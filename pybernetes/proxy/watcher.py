"""The proxy's view of the API: informers on Services and EndpointSlices, and one sync
loop (kube-proxy's BoundedFrequencyRunner): any change marks the state dirty; a sync
runs at once when the last one started at least `min_sync_period` ago, otherwise when
that much time has passed; never two at a time; and every `sync_period` a full sync
runs anyway so rules someone else flushed come back."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable

from pybernetes.client.api import ENDPOINTSLICES, SERVICES, APIClient
from pybernetes.client.informer import Informer
from pybernetes.proxy.model import SERVICE_NAME_LABEL, ServicePort, service_ports

log = logging.getLogger(__name__)

# Objects another proxy is named for, and slices of headless Services, are not ours
# (the same selector kube-proxy puts on both informers).
LABEL_SELECTOR = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless"
RETRY = (0.5, 30.0)  # a failed sync is retried after this delay, doubling up to the cap

SyncFunc = Callable[[list[ServicePort]], Awaitable[None]]


class ServiceWatcher:
    """Calls `sync(service_ports)` with the whole desired state after changes."""

    def __init__(self, client: APIClient, sync: SyncFunc, min_sync_period: float = 1.0,
                 sync_period: float = 30.0):
        self.sync, self.min_sync_period, self.sync_period = sync, min_sync_period, sync_period
        self.services = Informer(client, SERVICES, label_selector=LABEL_SELECTOR)
        self.slices = Informer(client, ENDPOINTSLICES, label_selector=LABEL_SELECTOR)
        self._dirty = asyncio.Event()
        self._last_start = float("-inf")       # monotonic time the last sync began
        self._memo: dict[tuple, list[ServicePort]] = {}
        self.changed_at: float | None = None   # monotonic time of the oldest unsynced change
        self.syncs = 0
        self.last_sync_seconds = 0.0           # how long the last sync call took
        self.last_latency_seconds = 0.0        # oldest unsynced change → rules applied
        self.synced = asyncio.Event()          # set after each successful sync
        for inf in (self.services, self.slices):
            inf.add_handler(on_add=self._changed, on_update=self._updated,
                            on_delete=self._changed)

    def _changed(self, *_: object) -> None:
        if self.changed_at is None:
            self.changed_at = time.monotonic()
        self._dirty.set()

    def _updated(self, old: dict, new: dict) -> None:
        # status-only churn on a Service that does not touch load balancer IPs, or a
        # resync with nothing new, needs no sync
        if old.get("spec") == new.get("spec") and old.get("status") == new.get("status") and \
                old.get("endpoints") == new.get("endpoints") and \
                old.get("ports") == new.get("ports"):
            return
        self._changed()

    def desired(self) -> list[ServicePort]:
        """Every ServicePort; a Service whose object and slices kept their
        resourceVersions since the last call reuses what was built then."""
        slices: dict[tuple[str, str], list[dict]] = {}
        for sl in self.slices.list():
            md = sl["metadata"]
            name = (md.get("labels") or {}).get(SERVICE_NAME_LABEL, "")
            slices.setdefault((md.get("namespace") or "", name), []).append(sl)
        memo: dict[tuple, list[ServicePort]] = {}
        out: list[ServicePort] = []
        for svc in self.services.list():
            md = svc["metadata"]
            mine = slices.get((md.get("namespace") or "", md.get("name") or ""), [])
            key = (md.get("uid"), md.get("resourceVersion"),
                   tuple(sorted(sl["metadata"].get("resourceVersion") or "" for sl in mine)))
            ports = self._memo.get(key) if key[1] else None
            if ports is None:
                ports = service_ports([svc], mine)
            memo[key] = ports
            out.extend(ports)
        self._memo = memo
        out.sort(key=lambda p: (p.namespace, p.name, p.port_name, p.protocol))
        return out

    async def run(self) -> None:
        await self.services.start()
        await self.slices.start()
        try:
            await self.services.wait_synced(timeout=None)  # type: ignore[arg-type]
            await self.slices.wait_synced(timeout=None)    # type: ignore[arg-type]
            log.info("proxy: %d services, %d endpoint slices; first sync",
                     len(self.services.items), len(self.slices.items))
            self._dirty.set()
            await self._loop()
        finally:
            await self.services.stop()
            await self.slices.stop()

    async def _loop(self) -> None:
        retry = RETRY[0]
        while True:
            try:
                await asyncio.wait_for(self._dirty.wait(), self.sync_period)
            except asyncio.TimeoutError:
                pass  # periodic full sync
            wait = self._last_start + self.min_sync_period - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # changes in the meantime join this sync
            self._dirty.clear()
            changed_at, self.changed_at = self.changed_at, None
            self._last_start = time.monotonic()
            if await self._sync_once(changed_at):
                retry = RETRY[0]
                continue
            # keep the oldest change time and try again later
            self.changed_at = changed_at if self.changed_at is None else min(
                self.changed_at, changed_at or self.changed_at)
            await asyncio.sleep(retry)
            retry = min(retry * 2, RETRY[1])
            self._dirty.set()

    async def _sync_once(self, changed_at: float | None) -> bool:
        began = time.monotonic()
        try:
            await self.sync(self.desired())
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - log, keep the old rules, retry
            log.error("proxy: sync failed: %s", e, exc_info=not isinstance(e, OSError))
            return False
        done = time.monotonic()
        self.syncs += 1
        self.last_sync_seconds = done - began
        self.last_latency_seconds = done - changed_at if changed_at is not None else 0.0
        self.synced.set()
        log.debug("proxy: sync %d took %.3fs", self.syncs, self.last_sync_seconds)
        return True
