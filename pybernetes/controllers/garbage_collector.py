"""Garbage collector: ownerReferences made real.

- A dependent whose owners are all gone is deleted (in the background).
- An owner deleted with propagationPolicy=Foreground carries the
  "foregroundDeletion" finalizer: its dependents are deleted, and once none that
  blocks owner deletion is left the finalizer is removed and the owner goes.
- An owner deleted with propagationPolicy=Orphan carries the "orphan" finalizer:
  its dependents lose their reference to it, then the finalizer is removed.

Absence is never trusted from a cache alone: before deleting a dependent the owner
is looked up live, as upstream's attemptToDelete does."""
from __future__ import annotations

import copy
import logging
from typing import Any

from pybernetes.client.api import Resource
from pybernetes.controllers.base import Controller, split_key
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
# What the collector watches: the kinds that own or are owned in practice.
MONITORED = (("v1", "pods"), ("apps/v1", "replicasets"), ("apps/v1", "deployments"),
             ("apps/v1", "statefulsets"), ("apps/v1", "daemonsets"),
             ("apps/v1", "controllerrevisions"), ("batch/v1", "jobs"), ("batch/v1", "cronjobs"),
             ("v1", "services"), ("v1", "configmaps"), ("v1", "secrets"),
             ("v1", "persistentvolumeclaims"), ("v1", "serviceaccounts"), ("v1", "endpoints"),
             ("discovery.k8s.io/v1", "endpointslices"))


def owner_uids(obj: dict) -> list[str]:
    return [r.get("uid", "") for r in (obj.get("metadata") or {}).get("ownerReferences") or []]


def own_uid(obj: dict) -> list[str]:
    return [(obj.get("metadata") or {}).get("uid", "")]


class GarbageCollector(Controller):
    """Keys are "<monitored index>|<ns/name>" of the object to look at."""

    name = "garbage-collector"
    workers = 4

    def setup(self) -> None:
        self.monitored: list[tuple[Any, Any]] = []
        for api_version, plural in MONITORED:
            try:
                res = Resource.of(api_version, plural)
            except Exception:  # noqa: BLE001 - a group this server does not serve
                continue
            inf = self.informers.get(res)
            inf.add_index("owner-uid", owner_uids)
            inf.add_index("uid", own_uid)
            i = len(self.monitored)
            self.monitored.append((res, inf))
            inf.add_handler(on_add=lambda o, i=i: self._changed(i, o),
                            on_update=lambda old, new, i=i: self._changed(i, new),
                            on_delete=lambda o, i=i: self._deleted(o))

    # ----- events -----
    def _key(self, i: int, obj: dict) -> str:
        md = obj.get("metadata") or {}
        ns = md.get("namespace")
        return f"{i}|{ns}/{md.get('name')}" if ns else f"{i}|{md.get('name')}"

    def _changed(self, i: int, obj: dict) -> None:
        md = obj.get("metadata") or {}
        fins = md.get("finalizers") or []
        if md.get("ownerReferences") or (md.get("deletionTimestamp") and
                                         (FOREGROUND in fins or ORPHAN in fins)):
            self.queue.add(self._key(i, obj))

    def _deleted(self, obj: dict) -> None:
        """Its dependents may be orphans now; its owners may be waiting for it."""
        uid = obj["metadata"].get("uid", "")
        for i, (_, inf) in enumerate(self.monitored):
            for dep in inf.by_index("owner-uid", uid):
                self.queue.add(self._key(i, dep))
            for owner_uid in owner_uids(obj):
                for owner in inf.by_index("uid", owner_uid):
                    self.queue.add(self._key(i, owner))

    # ----- reconcile -----
    async def reconcile(self, key: str) -> None:
        idx, _, rest = key.partition("|")
        res, inf = self.monitored[int(idx)]
        ns, name = split_key(rest)
        obj = inf.get(ns, name)
        if obj is None:
            return
        md = obj["metadata"]
        fins = md.get("finalizers") or []
        if md.get("deletionTimestamp") and ORPHAN in fins:
            await self._orphan_dependents(res, obj)
            return
        if md.get("deletionTimestamp") and FOREGROUND in fins:
            await self._delete_dependents(res, obj)
            return
        if md.get("ownerReferences") and not md.get("deletionTimestamp"):
            await self._check_owners(res, obj)

    def _dependents(self, uid: str) -> list[tuple[Any, dict]]:
        return [(res, dep) for res, inf in self.monitored for dep in inf.by_index("owner-uid", uid)]

    async def _orphan_dependents(self, res: Any, owner: dict) -> None:
        uid = owner["metadata"]["uid"]
        for dep_res, dep in self._dependents(uid):
            refs = [r for r in dep["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            await self._patch_meta(dep_res, dep, {"ownerReferences": refs or None})
        await self._drop_finalizer(res, owner, ORPHAN)

    async def _delete_dependents(self, res: Any, owner: dict) -> None:
        uid = owner["metadata"]["uid"]
        blocking = 0
        for dep_res, dep in self._dependents(uid):
            ref = next(r for r in dep["metadata"]["ownerReferences"] if r.get("uid") == uid)
            if ref.get("blockOwnerDeletion"):
                blocking += 1
            if not dep["metadata"].get("deletionTimestamp"):
                await self._delete(dep_res, dep, "Foreground" if ref.get("blockOwnerDeletion")
                                   else "Background")
        if blocking == 0:
            await self._drop_finalizer(res, owner, FOREGROUND)

    async def _check_owners(self, res: Any, obj: dict) -> None:
        refs = obj["metadata"]["ownerReferences"]
        alive = [r for r in refs if await self._owner_exists(obj, r)]
        if not alive:
            log.info("deleting %s %s: its owners are gone", res.plural,
                     obj["metadata"].get("name"))
            await self._delete(res, obj, "Background")
        elif len(alive) < len(refs):
            await self._patch_meta(res, obj, {"ownerReferences": alive})

    async def _owner_exists(self, obj: dict, ref: dict) -> bool:
        for _, inf in self.monitored:
            if inf.by_index("uid", ref.get("uid", "")):
                return True
        try:
            owner_res = Resource.of(ref.get("apiVersion", ""), ref.get("kind", ""))
        except Exception:  # noqa: BLE001 - a kind we cannot resolve: leave the dependent be
            return True
        ns = obj["metadata"].get("namespace") if owner_res.namespaced else None
        try:
            owner = await self.client.get(owner_res, ref.get("name", ""), namespace=ns)
        except StatusError as e:
            if e.code == 404:
                return False
            raise
        return owner["metadata"].get("uid") == ref.get("uid")

    async def _delete(self, res: Any, obj: dict, policy: str) -> None:
        md = obj["metadata"]
        try:
            await self.client.delete(res, md["name"], namespace=md.get("namespace"),
                                     propagation_policy=policy, preconditions={"uid": md["uid"]})
        except StatusError as e:
            if e.code not in (404, 409):
                raise

    async def _drop_finalizer(self, res: Any, obj: dict, finalizer: str) -> None:
        fins = [f for f in obj["metadata"].get("finalizers") or [] if f != finalizer]
        await self._patch_meta(res, obj, {"finalizers": fins or None})

    async def _patch_meta(self, res: Any, obj: dict, meta: dict) -> None:
        md = obj["metadata"]
        body = {"metadata": {**copy.deepcopy(meta), "resourceVersion": md["resourceVersion"]}}
        try:
            await self.client.patch(res, md["name"], body, namespace=md.get("namespace"))
        except StatusError as e:
            if e.code == 409:
                raise  # changed under us: retry from the fresh cache
            if e.code != 404:
                raise
