"""What DefaultStorageClass and DefaultIngressClass share: every object of a class
resource, and the one of them a new object defaults to."""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from ..apiserver.state import APIState


def newest_default(classes: list[dict], is_default: Callable[[dict], bool]) -> dict | None:
    """The newest default class (upstream picks the most recently created one, then the
    name), so that adding a new default takes over."""
    defaults = [c for c in classes if is_default(c)]
    if not defaults:
        return None
    return max(defaults, key=lambda c: (c["metadata"].get("creationTimestamp") or "",
                                        c["metadata"].get("name", "")))


async def list_classes(api: "APIState", group: str, version: str, plural: str) -> list[dict]:
    """All objects of this cluster-scoped resource; none if it is not served."""
    from ..apiserver.resource_store import ListOptions
    rs = api.resource(group, version, plural)
    if rs is None:
        return []
    items, _ = await rs.list("", ListOptions(resource_version=""))
    return items
