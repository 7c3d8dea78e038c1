"""The proxy's sync loop: changes coalesce, syncs are spaced by min_sync_period, a
failed sync is retried and keeps the time of the change it was for."""
from __future__ import annotations

import asyncio
import time

from pybernetes.proxy.model import service_ports
from pybernetes.proxy.watcher import ServiceWatcher


class Recorder:
    def __init__(self, fail_first: int = 0):
        self.calls: list[float] = []
        self.fail_first = fail_first

    async def __call__(self, ports) -> None:
        self.calls.append(time.monotonic())
        if len(self.calls) <= self.fail_first:
            raise OSError("nft: boom")


async def run_loop(w: ServiceWatcher, until) -> None:
    task = asyncio.create_task(w._loop())
    try:
        for _ in range(200):  # bounded: at most ~10 s
            if until():
                return
            await asyncio.sleep(0.05)
        raise AssertionError("the loop did not get there")
    finally:
        task.cancel()


async def test_changes_coalesce_and_syncs_are_spaced():
    rec = Recorder()
    w = ServiceWatcher(client=None, sync=rec, min_sync_period=0.3)  # type: ignore[arg-type]
    for _ in range(20):
        w._changed()
    await run_loop(w, lambda: w.syncs == 1)
    assert len(rec.calls) == 1 and w.changed_at is None
    w._changed()
    w._changed()
    await run_loop(w, lambda: w.syncs == 2)
    assert len(rec.calls) == 2
    assert rec.calls[1] - rec.calls[0] >= 0.3  # the loop waited (a lower bound only)
    assert w.last_latency_seconds > 0


async def test_unchanged_update_is_not_a_change():
    w = ServiceWatcher(client=None, sync=Recorder())  # type: ignore[arg-type]
    obj = {"metadata": {"resourceVersion": "1"}, "spec": {"a": 1}}
    w._updated(obj, {**obj, "metadata": {"resourceVersion": "2"}})
    assert w.changed_at is None
    w._updated(obj, {**obj, "spec": {"a": 2}})
    assert w.changed_at is not None


async def test_a_failed_sync_is_retried():
    rec = Recorder(fail_first=1)
    w = ServiceWatcher(client=None, sync=rec, min_sync_period=0)  # type: ignore[arg-type]
    w._changed()
    await run_loop(w, lambda: w.syncs == 1)
    assert len(rec.calls) == 2


def test_desired_reuses_unchanged_services_and_sees_changed_slices():
    from tests.unit.proxy.test_model import ep, eps, svc
    w = ServiceWatcher(client=None, sync=Recorder())  # type: ignore[arg-type]
    web, db = svc("web"), svc("db", clusterIP="10.43.0.21")
    for i, o in enumerate((web, db)):
        o["metadata"].update(uid=f"u{i}", resourceVersion=str(10 + i))
    port = [{"name": "", "port": 8080, "protocol": "TCP"}]
    sl = eps("web", port, [ep("10.42.0.5", ready=True)])
    sl["metadata"]["resourceVersion"] = "20"
    w.services.items = {"default/web": web, "default/db": db}
    w.slices.items = {"default/web-abc": sl}
    first = w.desired()
    assert first == service_ports([web, db], [sl])
    again = w.desired()
    assert [id(p) for p in again] == [id(p) for p in first]  # built once
    sl2 = eps("web", port, [ep("10.42.0.6", ready=True)])
    sl2["metadata"]["resourceVersion"] = "21"
    w.slices.items = {"default/web-abc": sl2}
    assert [e.ip for p in w.desired() if p.name == "web" for e in p.endpoints] == ["10.42.0.6"]
