"""pv-protection (upstream's controller of the same name): a PersistentVolume being
deleted keeps its `kubernetes.io/pv-protection` finalizer — and so stays Terminating —
while it is Bound to a claim; once it is not, the finalizer comes off and the API
server finishes the delete. Volumes missing the finalizer get it."""
from __future__ import annotations

import logging

from pybernetes.admission.storage_object_in_use_protection import PV_PROTECTION_FINALIZER
from pybernetes.client.api import PVS
from pybernetes.controllers.base import Controller
from pybernetes.controllers.pvc_protection import (is_deletion_candidate, needs_finalizer,
                                                   with_finalizer)

log = logging.getLogger(__name__)


def volume_in_use(pv: dict) -> bool:
    return (pv.get("status") or {}).get("phase") == "Bound"


class PVProtectionController(Controller):
    name = "pv-protection"

    def setup(self) -> None:
        self.pvs = self.informers.get(PVS)
        self.pvs.add_handler(on_add=self._volume_event,
                             on_update=lambda old, new: self._volume_event(new))

    def _volume_event(self, pv: dict) -> None:
        if needs_finalizer(pv, PV_PROTECTION_FINALIZER) or \
                is_deletion_candidate(pv, PV_PROTECTION_FINALIZER):
            self.enqueue(pv)

    async def reconcile(self, key: str) -> None:
        pv = self.pvs.get_by_key(key)
        if pv is None:
            return
        if is_deletion_candidate(pv, PV_PROTECTION_FINALIZER):
            if volume_in_use(pv):
                log.debug("keeping PV %s: it is bound", key)
                return
            await self.client.update(PVS, with_finalizer(pv, PV_PROTECTION_FINALIZER, False))
            log.info("removed protection finalizer from PV %s", key)
        elif needs_finalizer(pv, PV_PROTECTION_FINALIZER):
            await self.client.update(PVS, with_finalizer(pv, PV_PROTECTION_FINALIZER, True))
            log.info("added protection finalizer to PV %s", key)
