"""StorageObjectInUseProtection (upstream's plugin of the same name): every new
PersistentVolumeClaim gets the `kubernetes.io/pvc-protection` finalizer and every new
PersistentVolume `kubernetes.io/pv-protection`, so deleting one only marks it
Terminating; the pvc-protection / pv-protection controllers take the finalizer off
once no pod uses the claim / no claim is bound to the volume."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .chain import Attributes, Plugin

if TYPE_CHECKING:
    from ..apiserver.state import APIState

PVC_PROTECTION_FINALIZER = "kubernetes.io/pvc-protection"
PV_PROTECTION_FINALIZER = "kubernetes.io/pv-protection"

_FINALIZERS = {"persistentvolumeclaims": PVC_PROTECTION_FINALIZER,
               "persistentvolumes": PV_PROTECTION_FINALIZER}


class StorageObjectInUseProtection(Plugin):
    name = "StorageObjectInUseProtection"

    async def admit(self, attrs: Attributes, api: "APIState") -> None:
        s = attrs.strategy
        finalizer = _FINALIZERS.get(s.plural) if s.group == "" else None
        if finalizer is None or attrs.operation != "CREATE" or attrs.subresource or \
                not isinstance(attrs.obj, dict):
            return
        md = attrs.obj.get("metadata")
        if not isinstance(md, dict):
            return  # validation reports the missing metadata
        finalizers = md.get("finalizers")
        if finalizers is None:
            md["finalizers"] = [finalizer]
        elif isinstance(finalizers, list) and finalizer not in finalizers:
            finalizers.append(finalizer)
