"""Pod volumes on the host (emptyDir, hostPath, configMap, secret, downwardAPI,
projected, persistentVolumeClaim); `PodVolumes` is the entry point."""
from pybernetes.kubelet.volumes.atomic_writer import AtomicWriter, FileProjection
from pybernetes.kubelet.volumes.errors import VolumeError
from pybernetes.kubelet.volumes.manager import PodVolumes
from pybernetes.kubelet.volumes.projection import TokenRecord

__all__ = ["AtomicWriter", "FileProjection", "PodVolumes", "TokenRecord", "VolumeError"]
