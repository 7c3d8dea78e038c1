"""DefaultStorageClass (upstream's plugin of the same name): a PersistentVolumeClaim
created without a storage class gets the cluster's default one — the StorageClass
annotated storageclass.kubernetes.io/is-default-class=true, the newest if several
are. An explicit `storageClassName: ""` means "no class" and is kept."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..api.storage import is_default_class
from .chain import Attributes, Plugin

if TYPE_CHECKING:
    from ..apiserver.state import APIState

BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


def default_class(classes: list[dict]) -> dict | None:
    """The newest default class (upstream picks the most recently created one, then
    the name, so that adding a new default takes over)."""
    defaults = [sc for sc in classes if is_default_class(sc)]
    if not defaults:
        return None
    return max(defaults, key=lambda sc: (sc["metadata"].get("creationTimestamp") or "",
                                         sc["metadata"].get("name", "")))


class DefaultStorageClass(Plugin):
    name = "DefaultStorageClass"

    async def admit(self, attrs: Attributes, api: "APIState") -> None:
        s = attrs.strategy
        if attrs.operation != "CREATE" or s.group != "" or \
                s.plural != "persistentvolumeclaims" or attrs.subresource or attrs.obj is None:
            return
        spec = attrs.obj.get("spec")
        annotations = (attrs.obj.get("metadata") or {}).get("annotations") or {}
        if not isinstance(spec, dict) or "storageClassName" in spec and \
                spec["storageClassName"] is not None or BETA_CLASS_ANNOTATION in annotations:
            return
        sc = default_class(await _storage_classes(api))
        if sc is not None:
            spec["storageClassName"] = sc["metadata"]["name"]


async def _storage_classes(api: "APIState") -> list[dict]:
    from ..apiserver.resource_store import ListOptions
    rs = api.resource("storage.k8s.io", "v1", "storageclasses")
    if rs is None:
        return []
    items, _ = await rs.list("", ListOptions(resource_version=""))
    return items
