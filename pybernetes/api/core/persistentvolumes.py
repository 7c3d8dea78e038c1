"""core/v1 PersistentVolume and PersistentVolumeClaim."""
from __future__ import annotations

from typing import Any

from ...machinery import errors
from ...machinery.errors import FieldError
from ...machinery.printing import age, get_path, now_rfc3339
from ..podspec import default_resource_list, quantity_value
from ..strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from .cells import ACCESS_MODE_SHORT, access_modes, immutable, meta, set_default, spec

RECLAIM_POLICIES = ["Delete", "Recycle", "Retain"]
VOLUME_MODES = ["Block", "Filesystem"]
ACCESS_MODES = list(ACCESS_MODE_SHORT)
PV_SOURCES = ("gcePersistentDisk", "awsElasticBlockStore", "hostPath", "glusterfs", "nfs", "rbd",
              "iscsi", "cinder", "cephfs", "fc", "flocker", "flexVolume", "azureFile",
              "vsphereVolume", "quobyte", "azureDisk", "photonPersistentDisk", "portworxVolume",
              "scaleIO", "local", "storageos", "csi")
STORAGE_CLASS_ANNOTATION = "volume.beta.kubernetes.io/storage-class"
PVC_IMMUTABLE = ("spec is immutable after creation except resources.requests and "
                 "volumeAttributesClassName for bound claims")


def storage_class(obj: dict) -> str:
    annotations = meta(obj).get("annotations") or {}
    if STORAGE_CLASS_ANNOTATION in annotations:
        return annotations[STORAGE_CLASS_ANNOTATION]
    return get_path(obj, "spec", "storageClassName", default="") or ""


def _validate_access_modes(modes: Any, path: str) -> list[FieldError]:
    if not modes:
        return [errors.required(path, "")]
    out = [errors.not_supported(path, m, ACCESS_MODES) for m in modes if m not in ACCESS_MODES]
    if "ReadWriteOncePod" in modes and len(modes) > 1:
        out.append(errors.forbidden(path, "may not use ReadWriteOncePod with other access modes"))
    return out


def _validate_volume_mode(s: dict) -> list[FieldError]:
    mode = s.get("volumeMode")
    if mode and mode not in VOLUME_MODES:
        return [errors.not_supported("spec.volumeMode", mode, VOLUME_MODES)]
    return []


def _storage_cell(obj: dict, where: tuple[str, ...]) -> str:
    return str(get_path(obj, *where, "storage", default="") or "")


class PersistentVolumeStrategy(Strategy):
    kind, plural = "PersistentVolume", "persistentvolumes"
    namespaced = False
    short_names = ("pv",)
    subresources = ("status",)
    columns = (
        NAME_COLUMN,
        Column("Capacity", "string", "", "capacity is the description of the persistent "
               "volume's resources and capacity."),
        Column("Access Modes", "string", "", "accessModes contains all ways the volume can be "
               "mounted."),
        Column("Reclaim Policy", "string", "", "persistentVolumeReclaimPolicy defines what "
               "happens to a persistent volume when released from its claim."),
        Column("Status", "string", "", "phase indicates if a volume is available, bound to a "
               "claim, or released by a claim."),
        Column("Claim", "string", "", "claimRef is part of a bi-directional binding between "
               "PersistentVolume and PersistentVolumeClaim."),
        Column("StorageClass", "string", "", "storageClassName is the name of StorageClass to "
               "which this persistent volume belongs."),
        Column("VolumeAttributesClass", "string", "", "Name of VolumeAttributesClass to which "
               "this persistent volume belongs."),
        Column("Reason", "string", "", "reason is a brief CamelCase string that describes any "
               "failure and is meant for machine parsing and tidy display in the CLI."),
        AGE_COLUMN,
        Column("VolumeMode", "string", "", "volumeMode defines if a volume is intended to be "
               "used with a formatted filesystem or to remain in raw block state.", 1),
    )

    def default(self, obj: dict) -> None:
        s = spec(obj)
        set_default(s, "persistentVolumeReclaimPolicy", "Retain")
        set_default(s, "volumeMode", "Filesystem")
        default_resource_list(s.get("capacity"))
        if isinstance(s.get("hostPath"), dict):
            s["hostPath"].setdefault("type", "")

    def initial_status(self, obj: dict) -> dict:
        return {"phase": "Pending", "lastPhaseTransitionTime": now_rfc3339()}

    def validate(self, obj: dict) -> list[FieldError]:
        s = obj.get("spec") or {}
        out = _validate_access_modes(s.get("accessModes"), "spec.accessModes")
        capacity = s.get("capacity") or {}
        if not capacity:
            out.append(errors.required("spec.capacity", ""))
        elif "storage" not in capacity or len(capacity) != 1:
            out.append(errors.not_supported("spec.capacity", sorted(capacity), ["storage"]))
        elif (quantity_value(capacity["storage"]) or 0) <= 0:
            out.append(errors.invalid_value("spec.capacity.storage", capacity["storage"],
                                            "must be greater than zero"))
        sources = [k for k in PV_SOURCES if s.get(k) is not None]
        if not sources:
            out.append(errors.required("spec", "must specify a volume type"))
        for k in sources[1:]:
            out.append(errors.forbidden(f"spec.{k}", "may not specify more than 1 volume type"))
        policy = s.get("persistentVolumeReclaimPolicy", "")
        if policy and policy not in RECLAIM_POLICIES:
            out.append(errors.not_supported("spec.persistentVolumeReclaimPolicy", policy,
                                            RECLAIM_POLICIES))
        if isinstance(s.get("hostPath"), dict) and not s["hostPath"].get("path"):
            out.append(errors.required("spec.hostPath.path", ""))
        return out + _validate_volume_mode(s)

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        out = self.validate(obj)
        out += immutable("spec.volumeMode", get_path(obj, "spec", "volumeMode"),
                         get_path(old, "spec", "volumeMode"))
        return out

    def table_row(self, obj: dict) -> list[Any]:
        s = obj.get("spec") or {}
        claim = s.get("claimRef") or {}
        claim_cell = f"{claim.get('namespace', '')}/{claim.get('name', '')}" if claim else ""
        phase = get_path(obj, "status", "phase", default="")
        if meta(obj).get("deletionTimestamp"):
            phase = "Terminating"
        return [meta(obj).get("name", ""), _storage_cell(obj, ("spec", "capacity")),
                access_modes(s.get("accessModes")), s.get("persistentVolumeReclaimPolicy", ""),
                phase, claim_cell, storage_class(obj),
                s.get("volumeAttributesClassName") or "<unset>",
                get_path(obj, "status", "reason", default=""), age(obj),
                s.get("volumeMode") or "<unset>"]


class PersistentVolumeClaimStrategy(Strategy):
    kind, plural = "PersistentVolumeClaim", "persistentvolumeclaims"
    short_names = ("pvc",)
    subresources = ("status",)
    columns = (
        NAME_COLUMN,
        Column("Status", "string", "", "phase represents the current phase of "
               "PersistentVolumeClaim."),
        Column("Volume", "string", "", "volumeName is the binding reference to the "
               "PersistentVolume backing this claim."),
        Column("Capacity", "string", "", "capacity represents the actual resources of the "
               "underlying volume."),
        Column("Access Modes", "string", "", "accessModes contains the actual access modes the "
               "volume backing the PVC has."),
        Column("StorageClass", "string", "", "storageClassName is the name of the StorageClass "
               "required by the claim."),
        Column("VolumeAttributesClass", "string", "", "volumeAttributesClassName may be used to "
               "set the VolumeAttributesClass used by this claim."),
        AGE_COLUMN,
        Column("VolumeMode", "string", "", "volumeMode defines what type of volume is required "
               "by the claim.", 1),
    )

    def default(self, obj: dict) -> None:
        s = spec(obj)
        set_default(s, "volumeMode", "Filesystem")
        for key in ("requests", "limits"):
            default_resource_list(get_path(s, "resources", key))

    def initial_status(self, obj: dict) -> dict:
        return {"phase": "Pending"}

    def validate(self, obj: dict) -> list[FieldError]:
        s = obj.get("spec") or {}
        out = _validate_access_modes(s.get("accessModes"), "spec.accessModes")
        storage = get_path(s, "resources", "requests", "storage")
        if storage is None:
            out.append(errors.required("spec.resources[storage]", ""))
        elif (quantity_value(storage) or 0) <= 0:
            out.append(errors.invalid_value("spec.resources[storage]", storage,
                                            "must be greater than zero"))
        return out + _validate_volume_mode(s)

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        out = self.validate(obj)
        new_s, old_s = dict(obj.get("spec") or {}), dict(old.get("spec") or {})
        if not old_s.get("volumeName"):
            new_s.pop("volumeName", None)  # binding sets it once
            old_s.pop("volumeName", None)
        for s in (new_s, old_s):
            s.pop("volumeAttributesClassName", None)
            s["resources"] = {k: v for k, v in (s.get("resources") or {}).items()
                              if k != "requests"}
        if new_s != old_s:
            out.append(errors.forbidden("spec", PVC_IMMUTABLE))
        return out

    def table_row(self, obj: dict) -> list[Any]:
        s, status = obj.get("spec") or {}, obj.get("status") or {}
        phase = "Terminating" if meta(obj).get("deletionTimestamp") else status.get("phase", "")
        volume = s.get("volumeName", "")
        capacity = _storage_cell(obj, ("status", "capacity")) if volume else ""
        modes = access_modes(status.get("accessModes")) if volume else ""
        return [meta(obj).get("name", ""), phase, volume, capacity, modes, storage_class(obj),
                status.get("currentVolumeAttributesClassName") or "<unset>", age(obj),
                s.get("volumeMode") or "<unset>"]
