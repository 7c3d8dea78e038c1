"""Volumes that are host directories: emptyDir (disk, or tmpfs with medium Memory),
hostPath (with upstream's type checks and messages) and persistentVolumeClaim bound
to a hostPath or local PersistentVolume."""
from __future__ import annotations

import os
import stat

from pybernetes.kubelet.volumes import mounts
from pybernetes.kubelet.volumes.errors import VolumeError
from pybernetes.machinery.quantity import QuantityError, parse_quantity


def quantity_bytes(q: object) -> int:
    try:
        return int(parse_quantity(q)) if q not in (None, "") else 0
    except QuantityError:
        return 0


def setup_empty_dir(name: str, path: str, source: dict, node_memory: int,
                    use_tmpfs: bool) -> None:
    """A world-writable directory; medium Memory is a tmpfs of sizeLimit (else the
    node's memory) where mounting is possible."""
    medium = source.get("medium") or ""
    if medium not in ("", "Memory"):
        raise VolumeError(name, f"unsupported medium: {medium}")
    os.makedirs(path, exist_ok=True)
    if medium == "Memory" and use_tmpfs and not mounts.is_mount_point(path):
        size = quantity_bytes(source.get("sizeLimit")) or node_memory
        mounts.mount_tmpfs(path, size)
    os.chmod(path, 0o777)


_KIND_CHECKS = {
    "Directory": (stat.S_ISDIR, "is not a directory"),
    "File": (stat.S_ISREG, "is not a file"),
    "Socket": (stat.S_ISSOCK, "is not a socket file"),
    "CharDevice": (stat.S_ISCHR, "is not a character device"),
    "BlockDevice": (stat.S_ISBLK, "is not a block device"),
}


HOST_PATH_TYPES = ("DirectoryOrCreate", "Directory", "FileOrCreate", "File", "Socket",
                   "CharDevice", "BlockDevice")


def check_host_path(name: str, path: str, type_: str | None) -> None:
    """upstream's hostPath type checker: *OrCreate types create what is missing (a
    directory tree 0755, or an empty file 0644 whose parent must exist)."""
    type_ = type_ or ""
    if type_ == "":
        return
    if type_ not in HOST_PATH_TYPES:
        raise VolumeError(name, f"{type_} is an invalid volume type")
    base = type_.removesuffix("OrCreate")
    if type_.endswith("OrCreate") and not os.path.lexists(path):
        try:
            if base == "Directory":
                os.makedirs(path, mode=0o755, exist_ok=True)
            else:
                fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                os.close(fd)
        except OSError as e:   # worded like Go's *PathError
            op = "mkdir" if base == "Directory" else "open"
            raise VolumeError(name, f"{op} {path}: {(e.strerror or '').lower()}") from None
        return
    check, words = _KIND_CHECKS[base]
    try:
        ok = check(os.stat(path).st_mode)
    except OSError:
        ok = False
    if not ok:
        raise VolumeError(name, f"hostPath type check failed: {path} {words}")


def pv_path(name: str, pvc: dict | None, pv: dict | None, claim: str, namespace: str
            ) -> tuple[str, str | None, bool]:
    """(host path, hostPath type, read-only) of the PV bound to a claim."""
    if pvc is None:
        raise VolumeError(name, f'persistentvolumeclaim "{claim}" not found')
    volume_name = (pvc.get("spec") or {}).get("volumeName") or ""
    phase = (pvc.get("status") or {}).get("phase") or ""
    if phase != "Bound" or not volume_name:
        raise VolumeError(name, f"PVC {namespace}/{claim} has non-bound phase ({phase!r}) or "
                                f"empty pvc.Spec.VolumeName ({volume_name!r})")
    if pv is None:
        raise VolumeError(name, f'persistentvolume "{volume_name}" not found')
    ref = (pv.get("spec") or {}).get("claimRef") or {}
    uid = (pvc.get("metadata") or {}).get("uid")
    if ref.get("uid") and uid and ref["uid"] != uid:
        raise VolumeError(name, f"found PV object {volume_name!r} but it has a ClaimRef that "
                                f"is bound to a different PVC {ref.get('namespace')}/"
                                f"{ref.get('name')}")
    spec = pv.get("spec") or {}
    modes = spec.get("accessModes") or []
    readonly = modes == ["ReadOnlyMany"]
    if spec.get("hostPath"):
        return spec["hostPath"].get("path", ""), spec["hostPath"].get("type"), readonly
    if spec.get("local"):
        return spec["local"].get("path", ""), None, readonly
    raise VolumeError(name, f"persistentvolume {volume_name!r}: only hostPath and local "
                            "volumes are supported on this node")
