"""storage.k8s.io/v1: storageclasses, csidrivers, csinodes, volumeattachments."""
from __future__ import annotations

from typing import Any

from ..machinery import errors, validation
from ..machinery.errors import FieldError
from ..machinery.printing import age, get_path
from .apps import GoValue, immutable, name_of, set_default, spec_of
from .strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy

DEFAULT_CLASS_ANNOTATIONS = ("storageclass.kubernetes.io/is-default-class",
                             "storageclass.beta.kubernetes.io/is-default-class")


def is_default_class(obj: dict) -> bool:
    ann = obj.get("metadata", {}).get("annotations") or {}
    return any(ann.get(k) == "true" for k in DEFAULT_CLASS_ANNOTATIONS)


def _qualified(value: str, path: str) -> list[FieldError]:
    return [errors.invalid_value(path, value, m) for m in validation.is_qualified_name(value.lower())]


class StorageClassStrategy(Strategy):
    group, version = "storage.k8s.io", "v1"
    kind, plural = "StorageClass", "storageclasses"
    namespaced = False
    short_names = ("sc",)
    columns = (NAME_COLUMN,
               Column("Provisioner", "string", "", "provisioner indicates the type of the "
                      "provisioner."),
               Column("ReclaimPolicy", "string", "", "reclaimPolicy controls the reclaimPolicy for "
                      "dynamically provisioned PersistentVolumes of this storage class. Defaults to "
                      "Delete."),
               Column("VolumeBindingMode", "string", "", "volumeBindingMode indicates how "
                      "PersistentVolumeClaims should be provisioned and bound.  When unset, "
                      "VolumeBindingImmediate is used. This field is only honored by servers that "
                      "enable the VolumeScheduling feature."),
               Column("AllowVolumeExpansion", "string", "", "allowVolumeExpansion shows whether "
                      "the storage class allow volume expand."),
               AGE_COLUMN)

    def default(self, obj: dict) -> None:
        set_default(obj, "reclaimPolicy", "Delete")
        set_default(obj, "volumeBindingMode", "Immediate")

    def validate(self, obj: dict) -> list[FieldError]:
        out: list[FieldError] = []
        prov = obj.get("provisioner", "")
        if not prov:
            out.append(errors.required("provisioner", ""))
        else:
            out += _qualified(prov, "provisioner")
        rp = obj.get("reclaimPolicy")
        if rp not in ("Delete", "Retain"):
            out.append(errors.not_supported("reclaimPolicy", rp, ["Delete", "Retain"]))
        mode = obj.get("volumeBindingMode")
        if mode not in ("Immediate", "WaitForFirstConsumer"):
            out.append(errors.not_supported("volumeBindingMode", mode,
                                            ["Immediate", "WaitForFirstConsumer"]))
        params = obj.get("parameters") or {}
        if len(params) > 512:
            out.append(errors.invalid_value("parameters", GoValue("map[string]string{...}"),
                                            "must have at most 512 parameters"))
        return out

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        out = self.validate(obj)
        for key in ("parameters", "provisioner", "reclaimPolicy"):
            if (obj.get(key) or None) != (old.get(key) or None):
                out.append(errors.forbidden(key, f"updates to {key} are forbidden."))
        if obj.get("volumeBindingMode") != old.get("volumeBindingMode"):
            out.append(immutable("volumeBindingMode", obj.get("volumeBindingMode")))
        return out

    def table_row(self, obj: dict) -> list[Any]:
        name = name_of(obj) + (" (default)" if is_default_class(obj) else "")
        return [name, obj.get("provisioner", ""), obj.get("reclaimPolicy") or "Delete",
                obj.get("volumeBindingMode") or "Immediate",
                bool(obj.get("allowVolumeExpansion")), age(obj)]


class CSIDriverStrategy(Strategy):
    group, version = "storage.k8s.io", "v1"
    kind, plural = "CSIDriver", "csidrivers"
    namespaced = False
    columns = (NAME_COLUMN,
               Column("AttachRequired", "boolean", "", "attachRequired indicates this CSI volume "
                      "driver requires an attach operation"),
               Column("PodInfoOnMount", "boolean", "", "podInfoOnMount indicates this CSI volume "
                      "driver requires additional pod information during mount operations"),
               Column("StorageCapacity", "boolean", "", "storageCapacity indicates that the CSI "
                      "volume driver wants pod scheduling to consider the storage capacity"),
               Column("TokenRequests", "string", "", "tokenRequests indicates the CSI driver needs "
                      "pods' service account tokens it is mounting volume for to do necessary "
                      "authentication."),
               Column("RequiresRepublish", "boolean", "", "requiresRepublish indicates the CSI "
                      "driver wants `NodePublishVolume` being periodically called"),
               Column("Modes", "string", "", "volumeLifecycleModes defines what kind of volumes "
                      "this CSI volume driver supports."),
               AGE_COLUMN)

    def default(self, obj: dict) -> None:
        spec = spec_of(obj)
        set_default(spec, "attachRequired", True)
        set_default(spec, "podInfoOnMount", False)
        set_default(spec, "storageCapacity", False)
        set_default(spec, "fsGroupPolicy", "ReadWriteOnceWithFSType")
        set_default(spec, "volumeLifecycleModes", ["Persistent"])
        set_default(spec, "requiresRepublish", False)
        set_default(spec, "seLinuxMount", False)

    def validate(self, obj: dict) -> list[FieldError]:
        spec = obj.get("spec") or {}
        out: list[FieldError] = []
        for i, mode in enumerate(spec.get("volumeLifecycleModes") or []):
            if mode not in ("Persistent", "Ephemeral"):
                out.append(errors.not_supported(f"spec.volumeLifecycleModes[{i}]", mode,
                                                ["Ephemeral", "Persistent"]))
        policy = spec.get("fsGroupPolicy")
        if policy not in ("ReadWriteOnceWithFSType", "File", "None"):
            out.append(errors.not_supported("spec.fsGroupPolicy", policy,
                                            ["File", "None", "ReadWriteOnceWithFSType"]))
        return out

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        out = self.validate(obj)
        for key in ("attachRequired",):
            new_v, old_v = get_path(obj, "spec", key), get_path(old, "spec", key)
            if new_v != old_v:
                out.append(immutable(f"spec.{key}", new_v))
        return out

    def table_row(self, obj: dict) -> list[Any]:
        spec = obj.get("spec") or {}
        tokens = spec.get("tokenRequests")
        token_txt = ",".join(t.get("audience", "") for t in tokens) if tokens else "<unset>"
        modes = ",".join(spec.get("volumeLifecycleModes") or [])
        return [name_of(obj), spec.get("attachRequired", True), spec.get("podInfoOnMount", False),
                spec.get("storageCapacity", False), token_txt,
                spec.get("requiresRepublish", False), modes, age(obj)]


class CSINodeStrategy(Strategy):
    group, version = "storage.k8s.io", "v1"
    kind, plural = "CSINode", "csinodes"
    namespaced = False
    columns = (NAME_COLUMN,
               Column("Drivers", "integer", "", "Drivers indicates the number of CSI drivers "
                      "registered on the node"),
               AGE_COLUMN)

    def validate(self, obj: dict) -> list[FieldError]:
        out: list[FieldError] = []
        seen: set[str] = set()
        for i, d in enumerate(get_path(obj, "spec", "drivers", default=[]) or []):
            name = d.get("name", "")
            if not name:
                out.append(errors.required(f"spec.drivers[{i}].name", ""))
            elif name in seen:
                out.append(errors.duplicate(f"spec.drivers[{i}].name", name))
            seen.add(name)
            if not d.get("nodeID"):
                out.append(errors.required(f"spec.drivers[{i}].nodeID", ""))
        return out

    def table_row(self, obj: dict) -> list[Any]:
        return [name_of(obj), len(get_path(obj, "spec", "drivers", default=[]) or []), age(obj)]


class VolumeAttachmentStrategy(Strategy):
    group, version = "storage.k8s.io", "v1"
    kind, plural = "VolumeAttachment", "volumeattachments"
    namespaced = False
    subresources = ("status",)
    columns = (NAME_COLUMN,
               Column("Attacher", "string", "", "Attacher indicates the name of the volume driver "
                      "that MUST handle this request. This is the name returned by GetPluginName()."),
               Column("PV", "string", "", "Name of the persistent volume to attach."),
               Column("Node", "string", "", "The node that the volume should be attached to."),
               Column("Attached", "boolean", "", "Indicates the volume is successfully attached. "
                      "This field must only be set by the entity completing the attach operation, "
                      "i.e. the external-attacher."),
               AGE_COLUMN)

    def validate(self, obj: dict) -> list[FieldError]:
        spec = obj.get("spec") or {}
        out: list[FieldError] = []
        if not spec.get("attacher"):
            out.append(errors.required("spec.attacher", ""))
        if not spec.get("nodeName"):
            out.append(errors.required("spec.nodeName", ""))
        source = spec.get("source") or {}
        count = sum(1 for k in ("persistentVolumeName", "inlineVolumeSpec") if source.get(k))
        if count != 1:
            out.append(errors.FieldError("FieldValueRequired", "spec.source",
                                         "must specify exactly one of persistentVolumeName and "
                                         "inlineVolumeSpec"))
        return out

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        out = self.validate(obj)
        if obj.get("spec") != old.get("spec"):
            out.append(immutable("spec", GoValue("storage.VolumeAttachmentSpec{...}")))
        return out

    def table_row(self, obj: dict) -> list[Any]:
        spec = obj.get("spec") or {}
        return [name_of(obj), spec.get("attacher", ""),
                get_path(spec, "source", "persistentVolumeName", default="") or "",
                spec.get("nodeName", ""), bool(get_path(obj, "status", "attached")), age(obj)]


STRATEGIES = [CSIDriverStrategy(), CSINodeStrategy(), StorageClassStrategy(),
              VolumeAttachmentStrategy()]
