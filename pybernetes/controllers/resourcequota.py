"""The ResourceQuota controller (upstream's resourcequota controller): keeps each
quota's status.hard equal to spec.hard and recalculates status.used from the objects
really stored, so what deleted or finished objects held is given back.

Admission charges a quota as objects come in; this controller is the other half. It
syncs a quota when it is created or its spec changes, when an object it may count is
deleted or changes what it uses (a pod finishing, a service changing type), and every
quota on a full resync (--resource-quota-sync-period, 5 minutes by default).
Usage is counted from live LISTs, so a sync never works from a cache older than the
charges admission has already made.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from pybernetes.client.api import Resource
from pybernetes.controllers.base import Controller, split_key
from pybernetes.machinery import quota as q
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

DEFAULT_RESYNC = 300.0


def _resource(group: str, plural: str) -> Any:
    """The client Resource of a served (group, plural) in its preferred version."""
    from pybernetes.api.registry import registry
    reg = registry()
    for version in reg.groups().get(group, []):
        s = reg.get(group, version, plural)
        if s is not None and not s.virtual and s.namespaced:
            return Resource(s.group, s.version, s.plural, s.kind, s.namespaced)
    return None


class ResourceQuotaController(Controller):
    name = "resourcequota"
    workers = 2
    resync_period = DEFAULT_RESYNC  # set from --resource-quota-sync-period

    def setup(self) -> None:
        self.quota_res = Resource.of("v1", "resourcequotas")
        self.quotas = self.informers.get(self.quota_res)
        self.quotas.add_handler(on_add=self.enqueue, on_update=self._quota_updated)
        # the kinds whose deletes and usage changes give quota back
        for plural in ("pods", "services", "persistentvolumeclaims", "configmaps", "secrets",
                       "replicationcontrollers"):
            ev = q.evaluator_for("", plural)
            assert ev is not None
            inf = self.informers.get(Resource.of("v1", plural))
            inf.add_handler(on_update=self._usage_watcher(ev), on_delete=self._namespace_dirty)

    def _quota_updated(self, old: dict, new: dict) -> None:
        # admission's own charges change only status.used: nothing to recalculate then
        spec, status = new.get("spec") or {}, new.get("status") or {}
        if (old.get("spec") or {}).get("hard") != spec.get("hard") or \
                status.get("hard") != spec.get("hard") or "used" not in status:
            self.enqueue(new)

    def _usage_watcher(self, ev: q.Evaluator) -> Any:
        def changed(old: dict, new: dict) -> None:
            if not q.equals(ev.usage(old), ev.usage(new)):
                self._namespace_dirty(new)
        return changed

    def _namespace_dirty(self, obj: dict) -> None:
        ns = (obj.get("metadata") or {}).get("namespace")
        if ns:
            for quota in self.quotas.by_index("namespace", ns):
                self.enqueue(quota)

    async def run(self) -> None:
        resync = asyncio.create_task(self._resync_forever())
        try:
            await super().run()
        finally:
            resync.cancel()

    async def _resync_forever(self) -> None:
        while True:
            await asyncio.sleep(self.resync_period)
            for quota in self.quotas.list():
                self.enqueue(quota)

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        try:
            quota = await self.client.get(self.quota_res, name, ns)
        except StatusError as e:
            if e.code == 404:
                return
            raise
        status = await self.recalculate(quota)
        old = quota.get("status") or {}
        if old.get("hard") == status["hard"] and q.equals(q.parse_list(old.get("used")),
                                                          q.parse_list(status["used"])):
            return
        quota["status"] = status
        # the read's resourceVersion rides along: a charge made since then is a 409, and
        # the key is retried against the newer quota
        await self.client.update(self.quota_res, quota, subresource="status")
        log.info("quota %s: used %s", key, q.pretty_print(q.parse_list(status["used"])))

    async def recalculate(self, quota: dict) -> dict:
        ns = quota["metadata"]["namespace"]
        hard = dict((quota.get("spec") or {}).get("hard") or {})
        names = list(q.parse_list(hard))
        used = q.parse_list((quota.get("status") or {}).get("used"))
        for ev in q.evaluators_for_names(names):
            res = _resource(ev.group, ev.plural)
            if res is None:
                continue  # not served here: leave its usage unknown
            items = (await self.client.list(res, ns)).get("items") or []
            used.update(q.calculate_usage(quota, ev, items))
        return {"hard": hard, "used": q.render_list(q.mask(used, names))}
