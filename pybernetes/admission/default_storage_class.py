"""DefaultStorageClass (upstream's plugin of the same name): a PersistentVolumeClaim
created without a storage class gets the cluster's default one — the StorageClass
annotated storageclass.kubernetes.io/is-default-class=true, the newest if several
are. An explicit `storageClassName: ""` means "no class" and is kept."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..api.storage import is_default_class
from .chain import Attributes, Plugin
from .default_class import list_classes, newest_default

if TYPE_CHECKING:
    from ..apiserver.state import APIState

BETA_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"


def default_class(classes: list[dict]) -> dict | None:
    return newest_default(classes, is_default_class)


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
        sc = default_class(await list_classes(api, "storage.k8s.io", "v1", "storageclasses"))
        if sc is not None:
            spec["storageClassName"] = sc["metadata"]["name"]

