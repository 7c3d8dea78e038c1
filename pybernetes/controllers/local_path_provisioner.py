"""The local-path provisioner (k3s ships rancher's local-path-provisioner; this is
the same idea in the controller manager): for claims of a class whose provisioner is
`rancher.io/local-path`, once the scheduler has chosen a node (annotation
volume.kubernetes.io/selected-node), it creates a volume on that node, pre-bound to
the claim, which the binder then completes:

    name        pvc-<claim uid>
    hostPath    <storage dir>/pvc-<claim uid>_<namespace>_<claim name>, DirectoryOrCreate
                (StorageClass parameter or claim annotation volumeType=local: a `local`
                volume at the same path)
    nodeAffinity kubernetes.io/hostname In [<that node's hostname>]
    capacity    the claim's request; access modes from the claim; reclaim policy from
                the class

Where the directory comes from: upstream runs a helper pod on the node; here the
kubelet of that node creates a missing directory (mode 0777, as the helper's
`mkdir -m 0777`) when it mounts a volume provisioned by rancher.io/local-path
(kubelet/pod_volumes.py). Nothing is created on a node no pod uses it on.

Deleting: a Released volume with reclaim policy Delete has its directory removed and
its object deleted. The directory is removed here when it is on this machine (the
`pybernetes server` case: controller manager and kubelet share one host, like a k3s
server); a volume on another machine keeps its data directory (it is only a
directory under the storage dir, named after the claim) and its object is deleted.
"""
from __future__ import annotations

import logging
import os
import shutil
from typing import Any

from pybernetes.client.api import NODES, PVCS, PVS
from pybernetes.client.events import EventRecorder
from pybernetes.controllers.base import Controller, object_key
from pybernetes.controllers.persistentvolume import STORAGECLASSES, claim_ref
from pybernetes.machinery import volume_binding as vb
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

PROVISIONER = "rancher.io/local-path"
HOSTNAME_LABEL = "kubernetes.io/hostname"
ANN_NODE = "local.path.provisioner/selected-node"  # which node the data lives on
VOLUME_TYPE = "volumeType"


def default_storage_dir() -> str:
    """k3s keeps it under its data dir (/var/lib/rancher/k3s/storage); we under ours."""
    if os.geteuid() == 0:
        return "/var/lib/pybernetes/storage"
    return os.path.join(os.path.expanduser("~"), ".local", "share", "pybernetes", "storage")


def volume_path(storage_dir: str, pvc: dict) -> str:
    md = pvc["metadata"]
    return os.path.join(storage_dir, f"pvc-{md['uid']}_{md['namespace']}_{md['name']}")


def provisioned_volume(pvc: dict, sc: dict, node: dict | None, node_name: str,
                       storage_dir: str) -> dict:
    """The PersistentVolume for a claim on a node (pre-bound to the claim)."""
    md, spec = pvc["metadata"], pvc.get("spec") or {}
    hostname = ((node or {}).get("metadata") or {}).get("labels", {}).get(HOSTNAME_LABEL) \
        or node_name
    path = volume_path(storage_dir, pvc)
    kind = (vb.annotations(pvc).get(VOLUME_TYPE) or (sc.get("parameters") or {})
            .get(VOLUME_TYPE) or "hostPath").lower()
    source = {"local": {"path": path}} if kind == "local" else \
        {"hostPath": {"path": path, "type": "DirectoryOrCreate"}}
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": f"pvc-{md['uid']}",
                     "annotations": {vb.ANN_PROVISIONED_BY: PROVISIONER, ANN_NODE: node_name}},
        "spec": {
            **source,
            "accessModes": list(spec.get("accessModes") or ["ReadWriteOnce"]),
            "capacity": {"storage": ((spec.get("resources") or {}).get("requests") or {})
                         .get("storage", "0")},
            "persistentVolumeReclaimPolicy": sc.get("reclaimPolicy") or "Delete",
            "storageClassName": sc["metadata"]["name"],
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                         "namespace": md["namespace"], "name": md["name"],
                         "uid": md["uid"], "resourceVersion": md.get("resourceVersion")},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": HOSTNAME_LABEL, "operator": "In", "values": [hostname]}]}]}},
        }}


def volume_dir(pv: dict) -> str:
    spec = pv.get("spec") or {}
    return ((spec.get("hostPath") or spec.get("local") or {}).get("path")) or ""


def remove_data(pv: dict, storage_dir: str) -> bool:
    """Remove the volume's directory if it is here and is one we made (its name starts
    with the volume's name, under the storage dir); True if removed."""
    path = os.path.realpath(volume_dir(pv)) if volume_dir(pv) else ""
    base = os.path.realpath(storage_dir)
    if not path or os.path.dirname(path) != base or \
            not os.path.basename(path).startswith(pv["metadata"]["name"] + "_"):
        return False
    if not os.path.isdir(path):
        return False
    shutil.rmtree(path)
    return True


class LocalPathProvisioner(Controller):
    name = "local-path-provisioner"
    workers = 2
    storage_dir = ""  # set by the controller manager (--default-local-storage-path)

    def __init__(self, client: Any, informers: Any, recorder: Any):
        super().__init__(client, informers, recorder)
        if isinstance(recorder, EventRecorder):
            self.recorder = EventRecorder(client, PROVISIONER)

    def setup(self) -> None:
        self.pvcs = self.informers.get(PVCS)
        self.pvs = self.informers.get(PVS)
        self.classes = self.informers.get(STORAGECLASSES)
        self.nodes = self.informers.get(NODES)
        self.pvcs.add_handler(on_add=self._claim, on_update=lambda o, n: self._claim(n))
        self.pvs.add_handler(on_add=self._volume, on_update=lambda o, n: self._volume(n))

    def _claim(self, pvc: dict) -> None:
        self.queue.add("pvc:" + object_key(pvc))

    def _volume(self, pv: dict) -> None:
        if (pv.get("status") or {}).get("phase") == "Released":
            self.queue.add("pv:" + pv["metadata"]["name"])

    async def reconcile(self, key: str) -> None:
        kind, _, rest = key.partition(":")
        if kind == "pvc":
            pvc = self.pvcs.get_by_key(rest)
            if pvc is not None:
                await self.provision(pvc)
        else:
            pv = self.pvs.get_by_key(rest)
            if pv is not None:
                await self.delete(pv)

    def _wanted(self, pvc: dict) -> tuple[dict, str] | None:
        """(class, node) when this claim is ours to provision now."""
        if (pvc.get("spec") or {}).get("volumeName") or pvc["metadata"].get("deletionTimestamp"):
            return None
        ann = vb.annotations(pvc)
        if PROVISIONER not in (ann.get(vb.ANN_STORAGE_PROVISIONER),
                               ann.get(vb.ANN_BETA_STORAGE_PROVISIONER)):
            return None
        sc = self.classes.get(None, vb.claim_class(pvc))
        if sc is None or sc.get("provisioner") != PROVISIONER:
            return None
        node = ann.get(vb.ANN_SELECTED_NODE, "")
        if not node:
            self.recorder.event(claim_ref(pvc), "Warning", "ProvisioningFailed",
                                "failed to provision volume with StorageClass "
                                f'"{sc["metadata"]["name"]}": configuration error, no node '
                                "was specified")
            return None
        return sc, node

    async def provision(self, pvc: dict) -> None:
        wanted = self._wanted(pvc)
        if wanted is None:
            return
        sc, node_name = wanted
        pv = provisioned_volume(pvc, sc, self.nodes.get(None, node_name), node_name,
                                self.storage_dir or default_storage_dir())
        name = pv["metadata"]["name"]
        if self.pvs.get_by_key(name) is not None:
            return
        self.recorder.event(claim_ref(pvc), "Normal", "Provisioning",
                            "External provisioner is provisioning volume for claim "
                            f'"{object_key(pvc)}"')
        try:
            await self.client.create(PVS, pv)
        except StatusError as e:
            if e.code != 409:
                self.recorder.event(claim_ref(pvc), "Warning", "ProvisioningFailed",
                                    "failed to provision volume with StorageClass "
                                    f'"{sc["metadata"]["name"]}": {e}')
                raise
            return
        log.info("provisioned %s for %s on %s", name, object_key(pvc), node_name)
        self.recorder.event(claim_ref(pvc), "Normal", "ProvisioningSucceeded",
                            f"Successfully provisioned volume {name}")

    async def delete(self, pv: dict) -> None:
        spec = pv.get("spec") or {}
        if vb.annotations(pv).get(vb.ANN_PROVISIONED_BY) != PROVISIONER or \
                (pv.get("status") or {}).get("phase") != "Released" or \
                spec.get("persistentVolumeReclaimPolicy") != "Delete":
            return
        if remove_data(pv, self.storage_dir or default_storage_dir()):
            log.info("removed the data of %s at %s", pv["metadata"]["name"], volume_dir(pv))
        try:
            await self.client.delete(PVS, pv["metadata"]["name"],
                                     preconditions={"uid": pv["metadata"].get("uid")})
        except StatusError as e:
            if e.code not in (404, 409):
                raise
        log.info("deleted volume %s", pv["metadata"]["name"])
