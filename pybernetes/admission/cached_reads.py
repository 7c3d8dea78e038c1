"""What admission plugins read about a namespace (its LimitRanges, its ResourceQuotas)
comes from the API server's watch cache, as upstream's plugins read informer caches:
no storage round trip on every pod create.

A cache may trail the newest write by a moment. So that a user who creates a
LimitRange and then a pod always sees the range applied, a namespace where this
process admitted a write of the resource recently is read only once the cache has
caught up with every acknowledged write; everywhere else the cache is read as it is.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .chain import Attributes

if TYPE_CHECKING:
    from ..apiserver.state import APIState

FRESH_WINDOW = 10.0  # seconds after a write during which reads wait for the cache
_PRUNE_AT = 1024


class NamespaceLister:
    """Lists one core namespaced resource (e.g. "limitranges") for admission."""

    def __init__(self, plural: str):
        self.plural = plural
        self._written: dict[str, float] = {}  # namespace -> when a write was admitted

    def note(self, attrs: Attributes) -> None:
        """Call for every admitted request; remembers writes of this resource."""
        s = attrs.strategy
        if s.group == "" and s.plural == self.plural and attrs.namespace and not attrs.dry_run:
            now = time.monotonic()
            if len(self._written) >= _PRUNE_AT:
                self._written = {ns: t for ns, t in self._written.items()
                                 if now - t < FRESH_WINDOW}
            self._written[attrs.namespace] = now

    async def list(self, api: "APIState", namespace: str) -> list[dict]:
        """The namespace's objects (shared with the cache: read them, never mutate)."""
        from ..apiserver.resource_store import ListOptions
        rs = api.resource("", "v1", self.plural)
        if rs is None or not namespace:
            return []
        written = self._written.get(namespace)
        recent = written is not None and time.monotonic() - written < FRESH_WINDOW
        if not recent:  # whatever the cache holds (a LIST at resourceVersion "0", without
            # the list's bookkeeping: this runs a few times for every pod created)
            return [rs.out(o) for o in rs.cache.list(rs.prefix(namespace))]
        # resourceVersion "": once the cache has caught up
        items, _ = await rs.list(namespace, ListOptions(resource_version=""))
        return items
