"""Images for the kubelet: OCI distribution pulls, a content-addressed store,
layer unpacking for overlayfs, docker-archive/OCI-layout import and image GC.

The kubelet uses `ImageStore` (store.py); everything else is its machinery."""
from pybernetes.kubelet.images.errors import ImageError, ImagePullError
from pybernetes.kubelet.images.reference import Reference, parse_reference
from pybernetes.kubelet.images.store import FsUsage, GCResult, ImageRecord, ImageStore

__all__ = ["FsUsage", "GCResult", "ImageError", "ImagePullError", "ImageRecord", "ImageStore",
           "Reference", "parse_reference"]
