"""A pod's volumes on the host, for the real kubelet: each volume becomes a host path
the runtime bind-mounts (container_config.VolumePath). The volume kinds themselves
live in volumes/ (local.py: emptyDir, hostPath, PV paths; projection.py +
atomic_writer.py: configMap, secret, downwardAPI, projected); this module only walks
a pod's volumes, places them under <root>/pods/<uid>/volumes/<plugin>/<name> as
upstream does, and removes them again."""
from __future__ import annotations

import base64
import os
import shutil
from typing import Awaitable, Callable

from pybernetes.kubelet.container_config import VolumePath
from pybernetes.kubelet.env import ObjectLookup, PodContext
from pybernetes.kubelet.volumes import local, mounts
from pybernetes.kubelet.volumes.atomic_writer import AtomicWriter, PayloadError
from pybernetes.kubelet.volumes.errors import VolumeError
from pybernetes.kubelet.volumes.projection import TokenProvider, volume_payload

PLUGIN_DIRS = {"emptyDir": "kubernetes.io~empty-dir", "configMap": "kubernetes.io~configmap",
               "secret": "kubernetes.io~secret", "downwardAPI": "kubernetes.io~downward-api",
               "projected": "kubernetes.io~projected"}
LOCAL_PATH_PROVISIONER = "rancher.io/local-path"
ClaimLookup = Callable[[str, str], Awaitable[tuple[dict | None, dict | None]]]


def pod_dir(pods_root: str, uid: str) -> str:
    return os.path.join(pods_root, uid)


async def setup_volumes(pod: dict, pods_root: str, lookup: ObjectLookup, ctx: PodContext, *,
                        tokens: TokenProvider | None, claims: ClaimLookup | None,
                        node_memory: int, use_tmpfs: bool) -> dict[str, VolumePath]:
    """Set up (or refresh: configMap/secret contents are rewritten atomically when they
    changed) every volume of the pod. Raises VolumeError for the first that fails."""
    md, spec = pod["metadata"], pod.get("spec") or {}
    base = os.path.join(pod_dir(pods_root, md["uid"]), "volumes")
    fs_group = (spec.get("securityContext") or {}).get("fsGroup")
    out: dict[str, VolumePath] = {}
    for vol in spec.get("volumes") or []:
        name = vol.get("name", "")
        if vol.get("hostPath") is not None:
            path = vol["hostPath"].get("path", "")
            local.check_host_path(name, path, vol["hostPath"].get("type"))
            out[name] = VolumePath(path)
        elif vol.get("emptyDir") is not None:
            path = os.path.join(base, PLUGIN_DIRS["emptyDir"], name)
            local.setup_empty_dir(name, path, vol["emptyDir"], node_memory, use_tmpfs)
            out[name] = VolumePath(path)
        elif vol.get("persistentVolumeClaim") is not None:
            out[name] = await _claim(name, vol["persistentVolumeClaim"], md, claims)
        else:
            out[name] = await _projected(name, vol, pod, base, lookup, ctx, tokens, fs_group)
    return out


async def _claim(name: str, src: dict, md: dict, claims: ClaimLookup | None) -> VolumePath:
    claim = src.get("claimName", "")
    ns = md.get("namespace") or "default"
    if claims is None:
        raise VolumeError(name, "persistentVolumeClaim volumes are not available here")
    pvc, pv = await claims(ns, claim)
    path, type_, readonly = local.pv_path(name, pvc, pv, claim, ns)
    if _local_path_provisioned(pv) and not os.path.lexists(path):
        # the local-path provisioner runs off-node: its volume's directory is made here,
        # world-writable like its helper pod's `mkdir -m 0777`, for non-root pods
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o777)
    local.check_host_path(name, path, type_ or "DirectoryOrCreate")
    return VolumePath(path, readonly=readonly or bool(src.get("readOnly")))


def _local_path_provisioned(pv: dict | None) -> bool:
    ann = ((pv or {}).get("metadata") or {}).get("annotations") or {}
    return ann.get("pv.kubernetes.io/provisioned-by") == LOCAL_PATH_PROVISIONER


async def _projected(name: str, vol: dict, pod: dict, base: str, lookup: ObjectLookup,
                     ctx: PodContext, tokens: TokenProvider | None,
                     fs_group: int | None) -> VolumePath:
    payload = await volume_payload(vol, pod, lookup, ctx, tokens)
    if payload is None:
        kinds = [k for k in vol if k != "name"]
        raise VolumeError(name, f"volume type {kinds[0] if kinds else '?'} is not supported "
                                "on this node")
    kind = next(k for k in PLUGIN_DIRS if vol.get(k) is not None)
    path = os.path.join(base, PLUGIN_DIRS[kind], name)
    try:
        AtomicWriter(path, fs_group).write(payload.files)
    except (PayloadError, OSError) as e:
        raise VolumeError(name, str(e)) from None
    # configMap, secret, downwardAPI and projected volumes are always read-only
    return VolumePath(path, readonly=True)


def teardown_volumes(pods_root: str, uid: str) -> None:
    """Unmount what we mounted under the pod's dir (memory emptyDirs) and remove it."""
    d = pod_dir(pods_root, uid)
    if not os.path.isdir(d):
        return
    if mounts.unmount_all_under(d) and mounts.mounts_under(d):
        raise OSError(f"{d}: mounts remain after unmounting; not removing it")
    shutil.rmtree(d, ignore_errors=True)


def docker_config(secret: dict) -> dict | None:
    """The docker config JSON of an imagePullSecret ({"auths": {...}}), or None."""
    import json
    data = secret.get("data") or {}
    try:
        if ".dockerconfigjson" in data:
            return json.loads(base64.b64decode(data[".dockerconfigjson"]))
        if ".dockercfg" in data:
            return {"auths": json.loads(base64.b64decode(data[".dockercfg"]))}
    except ValueError:
        return None
    return None
