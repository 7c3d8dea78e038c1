"""pvc-protection (upstream's controller of the same name): a PersistentVolumeClaim
being deleted keeps its `kubernetes.io/pvc-protection` finalizer — and so stays
Terminating — while a scheduled pod still refers to it; once none does, the
finalizer comes off and the API server finishes the delete. Claims that miss the
finalizer (made before the admission plugin was on) get it.

"Uses" is upstream's rule: a pod bound to a node with a persistentVolumeClaim volume
naming the claim, whatever its phase, until the pod object is gone; for a generic
ephemeral volume (claim `<pod>-<volume>` owned by the pod) only until the pod is shut
down (deleted with grace 0), which breaks a pod-finalizer ↔ claim-finalizer cycle.
Before letting a claim go the controller lists the namespace's pods from the API
server: an informer that has not seen a new pod yet must not free its claim."""
from __future__ import annotations

import logging

from pybernetes.admission.storage_object_in_use_protection import PVC_PROTECTION_FINALIZER
from pybernetes.client.api import PODS, PVCS
from pybernetes.controllers.base import Controller, object_key, split_key

log = logging.getLogger(__name__)

POD_PVC_INDEX = "pvc"


def ephemeral_claim_name(pod: dict, volume: dict) -> str:
    return f"{pod['metadata']['name']}-{volume.get('name')}"


def claim_keys(pod: dict) -> list[str]:
    """namespace/claim for every claim the pod's volumes name (the index function)."""
    ns = (pod.get("metadata") or {}).get("namespace") or ""
    out = []
    for v in (pod.get("spec") or {}).get("volumes") or []:
        if not isinstance(v, dict):
            continue
        if isinstance(v.get("persistentVolumeClaim"), dict):
            out.append(f"{ns}/{v['persistentVolumeClaim'].get('claimName')}")
        elif v.get("ephemeral") is not None:
            out.append(f"{ns}/{ephemeral_claim_name(pod, v)}")
    return out


def pod_is_shut_down(pod: dict) -> bool:
    """Deleted with a zero grace period: the kubelet is done with it (or it was forced)."""
    md = pod["metadata"]
    return bool(md.get("deletionTimestamp")) and md.get("deletionGracePeriodSeconds") == 0


def pod_is_terminated(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def owned_by(pvc: dict, pod: dict) -> bool:
    return any(r.get("controller") and r.get("uid") == pod["metadata"].get("uid")
               for r in pvc["metadata"].get("ownerReferences") or [])


def pod_uses_claim(pod: dict, pvc: dict) -> bool:
    if not (pod.get("spec") or {}).get("nodeName"):
        return False  # the kubelet won't start a pod whose claim is being deleted
    name = pvc["metadata"]["name"]
    for v in pod["spec"].get("volumes") or []:
        ref = v.get("persistentVolumeClaim")
        if isinstance(ref, dict) and ref.get("claimName") == name:
            return True
        if v.get("ephemeral") is not None and not pod_is_shut_down(pod) and \
                ephemeral_claim_name(pod, v) == name and owned_by(pvc, pod):
            return True
    return False


def is_deletion_candidate(obj: dict, finalizer: str) -> bool:
    md = obj["metadata"]
    return bool(md.get("deletionTimestamp")) and finalizer in (md.get("finalizers") or [])


def needs_finalizer(obj: dict, finalizer: str) -> bool:
    md = obj["metadata"]
    return not md.get("deletionTimestamp") and finalizer not in (md.get("finalizers") or [])


def with_finalizer(obj: dict, finalizer: str, present: bool) -> dict:
    md = obj["metadata"]
    rest = [f for f in md.get("finalizers") or [] if f != finalizer]
    return {**obj, "metadata": {**md, "finalizers": rest + [finalizer] if present else rest}}


class PVCProtectionController(Controller):
    name = "pvc-protection"

    def setup(self) -> None:
        self.pvcs = self.informers.get(PVCS)
        self.pods = self.informers.get(PODS)
        self.pods.add_index(POD_PVC_INDEX, claim_keys)
        self.pvcs.add_handler(on_add=self._claim_event,
                              on_update=lambda old, new: self._claim_event(new))
        self.pods.add_handler(on_add=lambda p: self._pod_event(None, p),
                              on_update=self._pod_event,
                              on_delete=lambda p: self._pod_claims(p, deleted=True))

    def _claim_event(self, pvc: dict) -> None:
        if needs_finalizer(pvc, PVC_PROTECTION_FINALIZER) or \
                is_deletion_candidate(pvc, PVC_PROTECTION_FINALIZER):
            self.enqueue(pvc)

    def _pod_event(self, old: dict | None, new: dict) -> None:
        self._pod_claims(new, deleted=False)
        if old is not None and old["metadata"].get("uid") != new["metadata"].get("uid"):
            self._pod_claims(old, deleted=True)  # an update hid a delete + re-create

    def _pod_claims(self, pod: dict, deleted: bool) -> None:
        # a running scheduled pod can't free a claim: only look when it may have
        if not deleted and not pod_is_terminated(pod) and (pod.get("spec") or {}).get("nodeName"):
            return
        for key in claim_keys(pod):
            self.queue.add(key)

    async def reconcile(self, key: str) -> None:
        pvc = self.pvcs.get_by_key(key)
        if pvc is None:
            return
        if is_deletion_candidate(pvc, PVC_PROTECTION_FINALIZER):
            if await self._in_use(pvc):
                log.debug("keeping PVC %s: a pod uses it", key)
                return
            await self.client.update(PVCS, with_finalizer(pvc, PVC_PROTECTION_FINALIZER, False))
            log.info("removed protection finalizer from PVC %s", key)
        elif needs_finalizer(pvc, PVC_PROTECTION_FINALIZER):
            await self.client.update(PVCS, with_finalizer(pvc, PVC_PROTECTION_FINALIZER, True))
            log.info("added protection finalizer to PVC %s", key)

    async def _in_use(self, pvc: dict) -> bool:
        """The cache first (cheap, and enough to keep the claim); the API server's
        list before letting it go."""
        key = object_key(pvc)
        if any(pod_uses_claim(p, pvc) for p in self.pods.by_index(POD_PVC_INDEX, key)):
            return True
        ns, _ = split_key(key)
        pods, _ = await self.client.list_all(PODS, ns)
        return any(pod_uses_claim(p, pvc) for p in pods)
