"""ResourceQuota: refuse writes that would take a namespace past its quotas, and charge
the quotas for what is let in (upstream's plugin of the same name).

The charge is written to the quota's status.used right here, with a compare-and-swap
on the quota (ResourceStore.guaranteed_update), so two API servers - or two requests
in one - can never both take the last slot. The resourcequota controller later
recalculates usage from the real objects, which gives back what deleted or finished
objects held (and anything charged for a write that failed after admission).
"""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from ..machinery import errors
from ..machinery.quota import (Evaluator, ResourceList, add, equals, evaluator_for, is_zero,
                               less_than_or_equal, mask, negative_names, parse_list,
                               pretty_print, subtract_non_negative)
from .cached_reads import NamespaceLister
from .chain import Attributes, Plugin

if TYPE_CHECKING:
    from ..apiserver.resource_store import ResourceStore
    from ..apiserver.state import APIState


class _QuotaGone(Exception):
    """The quota was deleted between reading and charging it: nothing to charge."""


class ResourceQuota(Plugin):
    name = "ResourceQuota"

    def __init__(self) -> None:
        # one charge at a time per namespace in this process (upstream batches a
        # namespace's requests through one worker); the CAS covers other processes
        self._locks: dict[str, asyncio.Lock] = {}
        self.quotas = NamespaceLister("resourcequotas")

    async def validate(self, attrs: Attributes, api: "APIState") -> None:
        self.quotas.note(attrs)
        ev = _evaluator(attrs)
        if ev is None:
            return
        rs = api.resource("", "v1", "resourcequotas")
        if rs is None:
            return
        quotas = await self.quotas.list(api, attrs.namespace)
        if not quotas:
            return
        lock = self._locks.setdefault(attrs.namespace, asyncio.Lock())
        async with lock:
            await self._check_and_charge(attrs, ev, rs, quotas)

    async def _check_and_charge(self, attrs: Attributes, ev: Evaluator, rs: "ResourceStore",
                                quotas: list[dict]) -> None:
        obj = attrs.obj
        assert obj is not None
        matched = [q for q in quotas if _pertinent(attrs, ev, q, obj)]
        delta = ev.usage(obj)
        negative = negative_names(delta)
        if negative:
            raise _forbidden(attrs, "quota usage is negative for resource(s): "
                             + ",".join(negative))
        if attrs.operation == "UPDATE" and attrs.old is not None and \
                (attrs.old.get("metadata") or {}).get("resourceVersion"):
            delta = subtract_non_negative(delta, ev.usage(attrs.old))
        if is_zero(delta) or not matched:
            return
        for q in matched:  # refuse before charging anything
            _fit(attrs, q, delta)
        if attrs.dry_run:
            return
        from ..apiserver.resource_store import Context
        ctx = Context(user=attrs.user)
        for q in matched:
            md = q.get("metadata") or {}

            async def charge(current: dict | None) -> dict | None:
                if current is None:
                    raise _QuotaGone()
                used = _fit(attrs, current, delta)
                if used is None:
                    return None
                current.setdefault("status", {})["used"] = used
                return current

            try:
                await rs.guaranteed_update(attrs.namespace, md.get("name", ""), charge, ctx)
            except _QuotaGone:
                continue


def _evaluator(attrs: Attributes) -> Evaluator | None:
    """The evaluator for this write, or None when quota has nothing to say about it."""
    s = attrs.strategy
    if not s.namespaced or not attrs.namespace or attrs.obj is None:
        return None
    if attrs.operation not in ("CREATE", "UPDATE"):
        return None
    if attrs.subresource and not (s.group == "" and s.plural == "pods"
                                  and attrs.subresource == "resize"):
        return None
    ev = evaluator_for(s.group, s.plural)
    if ev is None or not ev.handles(attrs.operation, attrs.subresource, attrs.obj, attrs.old):
        return None
    return ev


def _pertinent(attrs: Attributes, ev: Evaluator, quota: dict, obj: dict) -> bool:
    """Does this quota limit the object? Refuses objects the quota can't account for."""
    if not ev.matches(quota, obj):
        return False
    status = quota.get("status") or {}
    restricted = ev.matching_resources(parse_list(status.get("hard")))
    name = (quota.get("metadata") or {}).get("name", "")
    why = ev.constraints(restricted, obj)
    if why:
        raise _forbidden(attrs, f"failed quota: {name}: {why}")
    used = status.get("used") or {}
    if any(r not in used for r in restricted):
        raise _forbidden(attrs, f"status unknown for quota: {name}, resources: "
                         + ",".join(sorted(restricted)))
    return True


def _fit(attrs: Attributes, quota: dict, delta: ResourceList) -> dict | None:
    """The quota's status.used with `delta` added (None when that changes nothing), or a
    403 naming what would go over. `quota` is left as it is (it may be the cache's)."""
    status = quota.get("status") or {}
    hard, used = parse_list(status.get("hard")), parse_list(status.get("used"))
    requested = mask(delta, hard)
    new_used = add(used, requested)
    ok, exceeded = less_than_or_equal(mask(new_used, requested), hard)
    if not ok:
        name = (quota.get("metadata") or {}).get("name", "")
        raise _forbidden(attrs, f"exceeded quota: {name}, "
                         f"requested: {pretty_print(mask(requested, exceeded))}, "
                         f"used: {pretty_print(mask(used, exceeded))}, "
                         f"limited: {pretty_print(mask(hard, exceeded))}")
    if equals(mask(new_used, requested), mask(used, requested)):
        return None
    raw = dict(status.get("used") or {})
    for k in requested:
        raw[k] = str(new_used[k])
    return raw


def _forbidden(attrs: Attributes, why: str) -> errors.StatusError:
    return errors.forbidden_message(attrs.strategy.plural, attrs.name or "Unknown", why,
                                    attrs.strategy.group)
