"""One pod's volumes on the host: set up before its containers are created, updated
while it runs (so ConfigMap and Secret changes reach the mounted files), removed when
it is gone. Layout as upstream's kubelet:
  <pod_dir>/volumes/kubernetes.io~<plugin>/<volume name>
hostPath and persistentVolumeClaim volumes are host paths used where they are."""
from __future__ import annotations

import os
import shutil

from pybernetes.kubelet.container_config import VolumePath
from pybernetes.kubelet.env import ObjectLookup, PodContext
from pybernetes.kubelet.volumes import local, mounts
from pybernetes.kubelet.volumes.atomic_writer import AtomicWriter, PayloadError
from pybernetes.kubelet.volumes.errors import VolumeError
from pybernetes.kubelet.volumes.projection import TokenProvider, TokenRecord, volume_payload

PLUGIN_DIRS = {"emptyDir": "empty-dir", "configMap": "configmap", "secret": "secret",
               "downwardAPI": "downward-api", "projected": "projected"}
PROJECTING = ("configMap", "secret", "downwardAPI", "projected")
MEMORY_BACKED = ("secret", "projected")   # upstream keeps these on tmpfs: no secret on disk


def volume_kind(vol: dict) -> str:
    for k in ("emptyDir", "hostPath", "persistentVolumeClaim") + PROJECTING:
        if vol.get(k) is not None:
            return k
    return ""


class PodVolumes:
    def __init__(self, pod: dict, pod_dir: str, lookup: ObjectLookup, *,
                 ctx: PodContext | None = None, tokens: TokenProvider | None = None,
                 node_memory: int = 0, use_tmpfs: bool | None = None):
        self.pod, self.pod_dir, self.lookup = pod, pod_dir, lookup
        self.ctx = ctx or PodContext()
        self.token_provider = tokens
        self.node_memory = node_memory
        self.use_tmpfs = mounts.can_mount() if use_tmpfs is None else use_tmpfs
        self.tokens: list[TokenRecord] = []
        self.paths: dict[str, VolumePath] = {}

    @property
    def root(self) -> str:
        return os.path.join(self.pod_dir, "volumes")

    def path_of(self, vol: dict) -> str:
        plugin = PLUGIN_DIRS[volume_kind(vol)]
        return os.path.join(self.root, f"kubernetes.io~{plugin}", vol.get("name", ""))

    @property
    def _fs_group(self) -> int | None:
        g = ((self.pod.get("spec") or {}).get("securityContext") or {}).get("fsGroup")
        return int(g) if g is not None else None

    @property
    def _namespace(self) -> str:
        return (self.pod.get("metadata") or {}).get("namespace") or "default"

    async def setup(self) -> dict[str, VolumePath]:
        """Every volume of the pod, by name; VolumeError names the first that failed."""
        for vol in (self.pod.get("spec") or {}).get("volumes") or []:
            name = vol.get("name", "")
            try:
                self.paths[name] = await self._setup_one(vol)
            except OSError as e:
                raise VolumeError(name, str(e)) from None
        return dict(self.paths)

    async def _setup_one(self, vol: dict) -> VolumePath:
        kind, name = volume_kind(vol), vol.get("name", "")
        if kind == "hostPath":
            src = vol["hostPath"]
            local.check_host_path(name, src.get("path", ""), src.get("type"))
            return VolumePath(src.get("path", ""))
        if kind == "persistentVolumeClaim":
            return await self._claim(name, vol["persistentVolumeClaim"])
        if kind == "emptyDir":
            path = self.path_of(vol)
            local.setup_empty_dir(name, path, vol["emptyDir"], self.node_memory, self.use_tmpfs)
            if self._fs_group is not None:
                os.chown(path, -1, self._fs_group)
                os.chmod(path, 0o2777)   # setgid: new files belong to the fsGroup
            return VolumePath(path)
        if kind in PROJECTING:
            path = self.path_of(vol)
            os.makedirs(path, exist_ok=True)
            if kind in MEMORY_BACKED and self.use_tmpfs and not mounts.is_mount_point(path):
                mounts.mount_tmpfs(path, 0)
            os.chmod(path, 0o777)
            await self._project(vol)
            return VolumePath(path, readonly=True)
        raise VolumeError(name, "unsupported volume type on this node")

    async def _claim(self, name: str, src: dict) -> VolumePath:
        claim = src.get("claimName", "")
        pvc = await self.lookup("persistentvolumeclaim", self._namespace, claim)
        volume_name = ((pvc or {}).get("spec") or {}).get("volumeName") or ""
        pv = await self.lookup("persistentvolume", "", volume_name) if volume_name else None
        path, type_, readonly = local.pv_path(name, pvc, pv, claim, self._namespace)
        local.check_host_path(name, path, type_)
        return VolumePath(path, readonly=readonly or bool(src.get("readOnly")))

    async def _project(self, vol: dict) -> bool:
        name = vol.get("name", "")
        payload = await volume_payload(vol, self.pod, self.lookup, self.ctx,
                                       self.token_provider)
        assert payload is not None
        self.tokens = [t for t in self.tokens if t.volume != name] + payload.tokens
        try:
            return AtomicWriter(self.path_of(vol), self._fs_group).write(payload.files)
        except PayloadError as e:
            raise VolumeError(name, str(e)) from None

    async def update(self, pod: dict | None = None, ctx: PodContext | None = None) -> list[str]:
        """Re-project configMap/secret/downwardAPI/projected volumes (the pod's labels or
        IPs may have changed too); the names of those whose files changed."""
        if pod is not None:
            self.pod = pod
        if ctx is not None:
            self.ctx = ctx
        changed = []
        for vol in (self.pod.get("spec") or {}).get("volumes") or []:
            if volume_kind(vol) in PROJECTING and vol.get("name") in self.paths:
                if await self._project(vol):
                    changed.append(vol["name"])
        return changed

    def teardown(self) -> None:
        """Unmount and remove everything under the pod's volumes dir (idempotent; works
        from the disk alone, e.g. after a kubelet restart)."""
        if os.path.isdir(self.root):
            mounts.unmount_all_under(self.root)
            shutil.rmtree(self.root, ignore_errors=True)
        self.paths.clear()
        self.tokens.clear()
