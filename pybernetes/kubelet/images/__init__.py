"""Images for the kubelet: OCI distribution pulls, a content-addressed store,
layer unpacking for overlayfs, docker-archive/OCI-layout import and image GC.

The kubelet uses `ImageStore` (store.py); everything else is its machinery."""
from pybernetes.kubelet.images.errors import ImageError, ImagePullError  # noqa: F401
from pybernetes.kubelet.images.reference import Reference, parse_reference  # noqa: F401
from pybernetes.kubelet.images.store import FsUsage, ImageRecord, ImageStore  # noqa: F401
