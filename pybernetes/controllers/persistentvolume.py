"""The PersistentVolume binder (upstream's persistentvolume-binder in
kube-controller-manager): keeps claims and volumes bound to each other.

- A Pending claim gets the smallest Available volume that fits (class, access
  modes, capacity, volume mode, selector) or the one pre-bound to it (pv.spec.claimRef
  or pvc.spec.volumeName). Binding writes pv.spec.claimRef, pv.status Bound,
  pvc.spec.volumeName and pvc.status (Bound, capacity, access modes) in that order,
  so a crash anywhere is finished by the next sync.
- A claim of a WaitForFirstConsumer class waits (event WaitForFirstConsumer) until
  the scheduler names a node (annotation volume.kubernetes.io/selected-node) or
  pre-binds a volume; then a claim without a volume is handed to its class's
  provisioner (annotation volume.kubernetes.io/storage-provisioner, event
  ExternalProvisioning), which creates a volume pre-bound to it.
- A volume whose claim is gone is Released; reclaim policy Retain keeps it so,
  Delete is carried out by the volume's provisioner (local_path_provisioner.py) —
  volumes no provisioner made can't be deleted here (event VolumeFailedDelete, as
  upstream without a deleter plugin).

One worker, as upstream: two syncs in parallel could give one volume to two claims
(the API's compare-and-swap would catch it, but only after wasted writes)."""
from __future__ import annotations

import logging
from typing import Any

from pybernetes.client.api import PVCS, PVS, Resource
from pybernetes.client.events import EventRecorder
from pybernetes.controllers.base import Controller, now_rfc3339, object_key
from pybernetes.machinery import volume_binding as vb
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

STORAGECLASSES = Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", False)
COMPONENT = "persistentvolume-controller"  # upstream's event source
WAITING_MESSAGE = "waiting for first consumer to be created before binding"
NO_CLASS_MESSAGE = "no persistent volumes available for this claim and no storage class is set"


def external_provisioning_message(provisioner: str) -> str:
    return (f"Waiting for a volume to be created either by the external provisioner "
            f"'{provisioner}' or manually by the system administrator. If volume creation "
            f"is delayed, please verify that the provisioner is running and correctly "
            f"registered.")


def claim_ref(obj: dict) -> dict:
    return {**obj, "apiVersion": "v1", "kind": "PersistentVolumeClaim"}


def volume_ref(obj: dict) -> dict:
    return {**obj, "apiVersion": "v1", "kind": "PersistentVolume"}


def _rv(obj: dict | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("resourceVersion") or 0)
    except ValueError:
        return 0


def _newer(a: dict | None, b: dict | None) -> dict | None:
    """The later of two copies of one object (our own write may be ahead of the watch)."""
    if a is None or b is None:
        return a if b is None else (b if a is None else a)
    if a["metadata"].get("uid") != b["metadata"].get("uid"):
        return a  # the informer's copy is a new object of the same name
    return a if _rv(a) >= _rv(b) else b


class PersistentVolumeBinder(Controller):
    name = "persistentvolume-binder"
    workers = 1

    def __init__(self, client: Any, informers: Any, recorder: Any):
        super().__init__(client, informers, recorder)
        if isinstance(recorder, EventRecorder):
            self.recorder = EventRecorder(client, COMPONENT)
        self._written: dict[str, dict] = {}  # key -> the copy our last write returned

    def setup(self) -> None:
        self.pvcs = self.informers.get(PVCS)
        self.pvs = self.informers.get(PVS)
        self.classes = self.informers.get(STORAGECLASSES)
        self.pvcs.add_handler(on_add=self._claim_event,
                              on_update=lambda o, n: self._claim_event(n),
                              on_delete=self._claim_deleted)
        self.pvs.add_handler(on_add=self._volume_event,
                             on_update=lambda o, n: self._volume_event(n),
                             on_delete=self._volume_deleted)
        self.classes.add_handler(on_add=self._class_event,
                                 on_update=lambda o, n: self._class_event(n))

    # ----- events only enqueue keys -----
    def _claim_event(self, pvc: dict) -> None:
        self.queue.add("pvc:" + object_key(pvc))

    def _claim_deleted(self, pvc: dict) -> None:
        self._written.pop("pvc:" + object_key(pvc), None)
        name = (pvc.get("spec") or {}).get("volumeName")
        if name:
            self.queue.add("pv:" + name)
        for pv in self.pvs.list():
            if vb.is_bound_to(pv, pvc):
                self.queue.add("pv:" + pv["metadata"]["name"])

    def _volume_event(self, pv: dict) -> None:
        self.queue.add("pv:" + pv["metadata"]["name"])
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if ref.get("name"):
            self.queue.add(f"pvc:{ref.get('namespace')}/{ref['name']}")
        elif (pv.get("status") or {}).get("phase") == "Available":
            self._pending_claims()  # a new volume may fit a waiting claim

    def _volume_deleted(self, pv: dict) -> None:
        self._written.pop("pv:" + pv["metadata"]["name"], None)
        ref = (pv.get("spec") or {}).get("claimRef") or {}
        if ref.get("name"):
            self.queue.add(f"pvc:{ref.get('namespace')}/{ref['name']}")

    def _class_event(self, sc: dict) -> None:
        self._pending_claims()

    def _pending_claims(self) -> None:
        for pvc in self.pvcs.list():
            if (pvc.get("status") or {}).get("phase") == "Pending":
                self.queue.add("pvc:" + object_key(pvc))

    # ----- reads: the informer's copy or our newer write -----
    def _claim(self, key: str) -> dict | None:
        return _newer(self.pvcs.get_by_key(key), self._written.get("pvc:" + key))

    def _volume(self, name: str) -> dict | None:
        return _newer(self.pvs.get_by_key(name), self._written.get("pv:" + name))

    def _volumes(self) -> list[dict]:
        return [v for pv in self.pvs.list() if (v := self._volume(pv["metadata"]["name"]))]

    def _class_map(self) -> dict[str, dict]:
        return {sc["metadata"]["name"]: sc for sc in self.classes.list()}

    async def _write(self, res: Resource, obj: dict, subresource: str | None = None) -> dict:
        out = await self.client.update(res, obj, subresource)
        prefix = "pvc:" if res is PVCS else "pv:"
        self._written[prefix + object_key(out)] = out
        return out

    async def reconcile(self, key: str) -> None:
        kind, _, rest = key.partition(":")
        if kind == "pvc":
            pvc = self._claim(rest)
            if pvc is not None:
                await self.sync_claim(pvc)
        elif kind == "pv":
            pv = self._volume(rest)
            if pv is not None:
                await self.sync_volume(pv)

    # ----- claims -----
    async def sync_claim(self, pvc: dict) -> None:
        if pvc["metadata"].get("deletionTimestamp"):
            return
        if vb.ANN_BIND_COMPLETED in vb.annotations(pvc):
            await self._sync_bound_claim(pvc)
        elif (pvc.get("spec") or {}).get("volumeName"):
            await self._sync_prebound_claim(pvc)
        else:
            await self._sync_unbound_claim(pvc)

    async def _sync_unbound_claim(self, pvc: dict) -> None:
        classes = self._class_map()
        delay = vb.delay_binding(pvc, classes)
        pv = vb.find_matching_volume(pvc, self._volumes(), delay=delay)
        if pv is not None:
            await self.bind(pv, pvc)
            return
        cls = vb.claim_class(pvc)
        if not cls:
            self.recorder.event(claim_ref(pvc), "Normal", "FailedBinding", NO_CLASS_MESSAGE)
            return
        if delay and vb.ANN_SELECTED_NODE not in vb.annotations(pvc):
            self.recorder.event(claim_ref(pvc), "Normal", "WaitForFirstConsumer",
                                WAITING_MESSAGE)
            return
        await self._provision(pvc, classes.get(cls), cls)

    async def _provision(self, pvc: dict, sc: dict | None, cls: str) -> None:
        """Hand the claim to its class's provisioner (all provisioners are external here)."""
        if sc is None:
            self.recorder.event(claim_ref(pvc), "Warning", "ProvisioningFailed",
                                f'storageclass.storage.k8s.io "{cls}" not found')
            return
        provisioner = sc.get("provisioner") or ""
        if provisioner == vb.NO_PROVISIONER:
            return  # only a volume an administrator makes can satisfy it
        ann = vb.annotations(pvc)
        if ann.get(vb.ANN_STORAGE_PROVISIONER) != provisioner or \
                ann.get(vb.ANN_BETA_STORAGE_PROVISIONER) != provisioner:
            new = {**pvc, "metadata": {**pvc["metadata"], "annotations": {
                **ann, vb.ANN_STORAGE_PROVISIONER: provisioner,
                vb.ANN_BETA_STORAGE_PROVISIONER: provisioner}}}
            await self._write(PVCS, new)
        self.recorder.event(claim_ref(pvc), "Normal", "ExternalProvisioning",
                            external_provisioning_message(provisioner))

    async def _sync_prebound_claim(self, pvc: dict) -> None:
        """The user asked for one volume by name: bind if it is free or reserved for us."""
        pv = self._volume(pvc["spec"]["volumeName"])
        if pv is None:
            return  # may appear later; the claim stays Pending
        ref = (pv.get("spec") or {}).get("claimRef")
        if ref is None or vb.is_bound_to(pv, pvc):
            if ref is None and not vb.volume_fits(pvc, pv):
                self.recorder.event(claim_ref(pvc), "Warning", "VolumeMismatch",
                                    "Cannot bind to requested volume "
                                    f'"{pv["metadata"]["name"]}": requested PV is too small'
                                    if vb.capacity(pv) < vb.requested(pvc) else
                                    "Cannot bind to requested volume "
                                    f'"{pv["metadata"]["name"]}": it does not fit the claim')
                return
            await self.bind(pv, pvc)

    async def _sync_bound_claim(self, pvc: dict) -> None:
        name = (pvc.get("spec") or {}).get("volumeName") or ""
        pv = self._volume(name) if name else None
        if pv is None:
            msg = ("Bound claim has lost reference to PersistentVolume. Data on the volume is "
                   "lost!" if not name else
                   "Bound claim has lost its PersistentVolume. Data on the volume is lost!")
            await self._claim_phase(pvc, "Lost", "ClaimLost", msg)
            return
        ref = (pv.get("spec") or {}).get("claimRef")
        if ref is None or vb.is_bound_to(pv, pvc):
            await self.bind(pv, pvc)  # finishes or repairs the binding (idempotent)
        elif (pvc.get("status") or {}).get("phase") != "Lost":
            await self._claim_phase(pvc, "Lost", "ClaimMisbound",
                                    "Two claims are bound to the same volume, this one is "
                                    "bound incorrectly")

    async def _claim_phase(self, pvc: dict, phase: str, reason: str, msg: str) -> None:
        if (pvc.get("status") or {}).get("phase") == phase:
            return
        await self._write(PVCS, {**pvc, "status": {**(pvc.get("status") or {}),
                                                   "phase": phase}}, "status")
        self.recorder.event(claim_ref(pvc), "Warning", reason, msg)

    # ----- binding, in upstream's order -----
    async def bind(self, pv: dict, pvc: dict) -> None:
        pv = await self._bind_volume(pv, pvc)
        pvc = await self._bind_claim(pv, pvc)
        log.info("bound claim %s to volume %s", object_key(pvc), pv["metadata"]["name"])

    async def _bind_volume(self, pv: dict, pvc: dict) -> dict:
        md, spec = pvc["metadata"], pv.get("spec") or {}
        ref = spec.get("claimRef") or {}
        want = {"kind": "PersistentVolumeClaim", "namespace": md["namespace"],
                "name": md["name"], "uid": md.get("uid"), "apiVersion": "v1",
                "resourceVersion": md.get("resourceVersion")}
        if ref.get("uid") != md.get("uid") or ref.get("name") != md["name"]:
            ann = dict(vb.annotations(pv))
            if not vb.is_bound_to(pv, pvc):  # the user did not reserve it: we chose it
                ann[vb.ANN_BOUND_BY_CONTROLLER] = "yes"
            pv = await self._write(PVS, {**pv, "metadata": {**pv["metadata"], "annotations": ann},
                                         "spec": {**spec, "claimRef": {**ref, **want}}})
        return await self._volume_phase(pv, "Bound")

    async def _volume_phase(self, pv: dict, phase: str, message: str = "") -> dict:
        status = pv.get("status") or {}
        if status.get("phase") == phase:
            return pv
        new_status = {"phase": phase}
        if message:
            new_status["message"] = message
        new_status["lastPhaseTransitionTime"] = now_rfc3339()
        return await self._write(PVS, {**pv, "status": new_status}, "status")

    async def _bind_claim(self, pv: dict, pvc: dict) -> dict:
        spec, ann = dict(pvc.get("spec") or {}), dict(vb.annotations(pvc))
        name = pv["metadata"]["name"]
        if spec.get("volumeName") != name or vb.ANN_BIND_COMPLETED not in ann:
            if spec.get("volumeName") != name:
                spec["volumeName"] = name
                ann[vb.ANN_BOUND_BY_CONTROLLER] = "yes"
            ann[vb.ANN_BIND_COMPLETED] = "yes"
            pvc = await self._write(PVCS, {**pvc, "spec": spec,
                                           "metadata": {**pvc["metadata"], "annotations": ann}})
        pv_spec = pv.get("spec") or {}
        status = pvc.get("status") or {}
        want = {**status, "phase": "Bound", "accessModes": pv_spec.get("accessModes") or [],
                "capacity": pv_spec.get("capacity") or {}}
        if status != want:
            pvc = await self._write(PVCS, {**pvc, "status": want}, "status")
        return pvc

    # ----- volumes -----
    async def sync_volume(self, pv: dict) -> None:
        spec = pv.get("spec") or {}
        ref = spec.get("claimRef")
        if ref is None or not ref.get("uid"):
            if (pv.get("status") or {}).get("phase") != "Available" and \
                    not pv["metadata"].get("deletionTimestamp"):
                await self._volume_phase(pv, "Available")
            return
        pvc = await self._claim_of(ref)
        if pvc is None or pvc["metadata"].get("uid") != ref.get("uid"):
            await self._release(pv)
            return
        volume_name = (pvc.get("spec") or {}).get("volumeName") or ""
        if not volume_name:
            self.queue.add("pvc:" + object_key(pvc))  # the claim's sync finishes the binding
        elif volume_name == pv["metadata"]["name"]:
            await self._volume_phase(pv, "Bound")
        elif vb.ANN_BOUND_BY_CONTROLLER in vb.annotations(pv):
            # we reserved it for a claim that went elsewhere: free it again
            new_spec = {k: v for k, v in spec.items() if k != "claimRef"}
            await self._write(PVS, {**pv, "spec": new_spec})

    async def _claim_of(self, ref: dict) -> dict | None:
        """The claim named by a claimRef; asks the API server before believing it is
        gone (the informer may not have seen a claim created a moment ago)."""
        key = f"{ref.get('namespace')}/{ref.get('name')}"
        pvc = self._claim(key)
        if pvc is not None and pvc["metadata"].get("uid") == ref.get("uid"):
            return pvc
        try:
            return await self.client.get(PVCS, ref.get("name", ""), ref.get("namespace"))
        except StatusError as e:
            if e.code == 404:
                return None
            raise

    async def _release(self, pv: dict) -> None:
        """The claim is gone: Released, then what the reclaim policy says."""
        pv = await self._volume_phase(pv, "Released")
        policy = (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy") or "Retain"
        if policy == "Retain":
            return
        if vb.ANN_PROVISIONED_BY in vb.annotations(pv):
            return  # its provisioner deletes the volume and then the object
        if policy == "Delete":
            self.recorder.event(volume_ref(pv), "Warning", "VolumeFailedDelete",
                                'error getting deleter volume plugin for volume '
                                f'"{pv["metadata"]["name"]}": no deletable volume plugin '
                                "matched")
        else:
            self.recorder.event(volume_ref(pv), "Warning", "VolumeFailedRecycle",
                                "No recycler plugin found for the volume!")
