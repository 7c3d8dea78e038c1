"""Namespace controller: a deleted namespace is emptied, then finalized.

The API server keeps a deleted namespace Terminating while spec.finalizers holds
"kubernetes"; this controller deletes every namespaced object in it, reports what
remains in status conditions, and once nothing is left removes the finalizer
through namespaces/{name}/finalize, which lets the namespace go."""
from __future__ import annotations

import copy
import logging
from typing import Any

from pybernetes.client.api import NAMESPACES, Resource
from pybernetes.controllers.base import Controller, now_rfc3339
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

FINALIZER = "kubernetes"
RECHECK_SECONDS = 2.0  # while pods finish their grace period


def namespaced_resources() -> list[Any]:
    """Every namespaced resource that can be listed and deleted (one version each)."""
    from pybernetes.api.registry import registry
    seen, out = set(), []
    reg = registry()
    for s in reg.strategies:
        if not s.namespaced or (s.group, s.plural) in seen:
            continue
        if "list" not in s.verbs or "delete" not in s.verbs:
            continue
        preferred = reg.groups().get(s.group, [s.version])[0]
        strat = reg.get(s.group, preferred, s.plural) or s
        seen.add((s.group, s.plural))
        out.append(Resource(strat.group, strat.version, strat.plural, strat.kind, True))
    return out


def content_conditions(remaining: dict[str, int], finalizers: dict[str, int]) -> list[dict]:
    """Status conditions as upstream words them while content is still going."""
    now = now_rfc3339()

    def cond(type_: str, bad: bool, reason: str, message: str) -> dict:
        return {"type": type_, "status": "True" if bad else "False", "lastTransitionTime": now,
                "reason": reason, "message": message}
    left = ", ".join(f"{r} has {n} resource instances" for r, n in sorted(remaining.items()))
    fins = ", ".join(f"{f} in {n} resource instances" for f, n in sorted(finalizers.items()))
    return [
        cond("NamespaceDeletionDiscoveryFailure", False, "ResourcesDiscovered",
             "All resources successfully discovered"),
        cond("NamespaceDeletionGroupVersionParsingFailure", False, "ParsedGroupVersions",
             "All legacy kube types successfully parsed"),
        cond("NamespaceDeletionContentFailure", False, "ContentDeleted",
             "All content successfully deleted, may be waiting on finalization"),
        cond("NamespaceContentRemaining", bool(remaining),
             "SomeResourcesRemain" if remaining else "ContentRemoved",
             f"Some resources are remaining: {left}" if remaining
             else "All content successfully removed"),
        cond("NamespaceFinalizersRemaining", bool(finalizers),
             "SomeFinalizersRemain" if finalizers else "ContentHasNoFinalizers",
             f"Some content in the namespace has finalizers remaining: {fins}" if finalizers
             else "All content-preserving finalizers finished"),
    ]


class NamespaceController(Controller):
    name = "namespace"
    workers = 2

    def setup(self) -> None:
        self.ns_informer = self.informers.get(NAMESPACES)
        self.ns_informer.add_handler(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n))
        self._resources: list[Any] | None = None

    async def reconcile(self, key: str) -> None:
        ns = self.ns_informer.get(None, key)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        if FINALIZER not in ((ns.get("spec") or {}).get("finalizers") or []):
            return
        remaining, finalizers = await self._delete_content(key)
        await self._write_conditions(ns, content_conditions(remaining, finalizers))
        if remaining:
            self.queue.add_after(key, RECHECK_SECONDS)
            return
        await self._finalize(ns)

    async def _delete_content(self, namespace: str) -> tuple[dict[str, int], dict[str, int]]:
        """Delete what is there; return what is still there by resource and by finalizer."""
        if self._resources is None:
            self._resources = namespaced_resources()
        remaining: dict[str, int] = {}
        finalizers: dict[str, int] = {}
        for res in self._resources:
            try:
                items = (await self.client.list(res, namespace=namespace)).get("items") or []
            except StatusError as e:
                if e.code in (404, 405, 403):
                    continue
                raise
            for obj in items:
                md = obj.get("metadata") or {}
                for f in md.get("finalizers") or []:
                    finalizers[f] = finalizers.get(f, 0) + 1
                if not md.get("deletionTimestamp"):
                    await self._delete(res, md.get("name", ""), namespace)
            if items:
                label = f"{res.plural}.{res.group}" if res.group else res.plural
                remaining[label] = len(items)
        return remaining, finalizers

    async def _delete(self, res: Any, name: str, namespace: str) -> None:
        try:
            await self.client.delete(res, name, namespace=namespace,
                                     propagation_policy="Background")
        except StatusError as e:
            if e.code not in (404, 405, 409):
                raise

    async def _write_conditions(self, ns: dict, conditions: dict | list) -> None:
        old = {c["type"]: (c["status"], c.get("message")) for c in
               (ns.get("status") or {}).get("conditions") or []}
        new = {c["type"]: (c["status"], c.get("message")) for c in conditions}
        if old == new:
            return
        obj = copy.deepcopy(ns)
        obj.setdefault("status", {})["conditions"] = conditions
        try:
            await self.client.update(NAMESPACES, obj, subresource="status")
        except StatusError as e:
            if e.code not in (404, 409):
                raise

    async def _finalize(self, ns: dict) -> None:
        obj = copy.deepcopy(ns)
        fins = [f for f in (obj.get("spec") or {}).get("finalizers") or [] if f != FINALIZER]
        obj.setdefault("spec", {})["finalizers"] = fins
        try:
            await self.client.update(NAMESPACES, obj, subresource="finalize")
        except StatusError as e:
            if e.code != 404:
                raise
        log.info("namespace %s: content deleted, finalized", ns["metadata"]["name"])
