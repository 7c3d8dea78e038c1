"""Manifest media types, descriptors and platform selection from lists/indexes."""
from __future__ import annotations

import platform as _platform
from dataclasses import dataclass
from typing import Any

from pybernetes.kubelet.images.errors import ImagePullError

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"

MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_LIST, OCI_INDEX)
# What we send as Accept: the image types first, then the lists.
ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
UNCOMPRESSED_LAYERS = (OCI_LAYER, "application/vnd.docker.image.rootfs.diff.tar")
GZIP_LAYERS = (DOCKER_LAYER_GZIP, DOCKER_LAYER_FOREIGN, OCI_LAYER_GZIP, OCI_LAYER_NONDIST_GZIP)

# uname -m -> Go's GOARCH (and GOARM variant), as the registry platforms spell them.
_ARCHES = {
    "x86_64": ("amd64", ""), "amd64": ("amd64", ""),
    "aarch64": ("arm64", "v8"), "arm64": ("arm64", "v8"),
    "armv7l": ("arm", "v7"), "armv6l": ("arm", "v6"), "armv5tel": ("arm", "v5"),
    "i386": ("386", ""), "i686": ("386", ""),
    "ppc64le": ("ppc64le", ""), "s390x": ("s390x", ""), "riscv64": ("riscv64", ""),
}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""

    def __str__(self) -> str:
        out = f"{self.os}/{self.architecture}"
        return f"{out}/{self.variant}" if self.variant else out


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Descriptor":
        try:
            return cls(str(d.get("mediaType", "")), str(d["digest"]), int(d["size"]),
                       tuple(d.get("urls") or ()))
        except (KeyError, TypeError, ValueError):
            raise ImagePullError(f"invalid descriptor in manifest: {d!r}") from None


def host_platform() -> Platform:
    arch, variant = _ARCHES.get(_platform.machine(), (_platform.machine(), ""))
    return Platform("linux", arch, variant)


def _matches(entry: dict[str, Any], want: Platform) -> int:
    """0 when `entry` cannot run on `want`, else a score (higher = better fit)."""
    p = entry.get("platform") or {}
    if p.get("os") != want.os or p.get("architecture") != want.architecture:
        return 0
    variant = p.get("variant", "")
    if variant == want.variant:
        return 3
    if want.architecture == "arm64" and variant in ("", "v8"):  # v8 is arm64's default
        return 2
    if want.architecture == "arm" and variant and want.variant and variant < want.variant:
        return 1  # an armv6 image runs on armv7
    return 0 if variant and want.variant else 1


def select_platform(index: dict[str, Any], want: Platform | None = None) -> Descriptor:
    """The manifest in a list/index that fits `want` (default: this machine)."""
    want = want or host_platform()
    best: tuple[int, dict[str, Any]] | None = None
    for entry in index.get("manifests") or []:
        if entry.get("mediaType") and entry["mediaType"] not in MANIFEST_TYPES + INDEX_TYPES:
            continue
        score = _matches(entry, want)
        if score and (best is None or score > best[0]):
            best = (score, entry)
    if best is None:
        raise ImagePullError(f"no match for platform in manifest: not found (want {want})",
                             hint="the image is not built for this machine's platform")
    return Descriptor.from_json(best[1])


def parse_manifest(body: bytes, content_type: str) -> tuple[str, dict[str, Any]]:
    """(media type, parsed json) of a manifest/index; the body's mediaType wins."""
    import json
    try:
        doc = json.loads(body)
    except ValueError:
        raise ImagePullError("invalid manifest: not JSON") from None
    if not isinstance(doc, dict):
        raise ImagePullError("invalid manifest: not a JSON object")
    media = doc.get("mediaType") or content_type.split(";")[0].strip()
    if not media or media == "application/json":  # OCI allows leaving it out
        media = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if doc.get("schemaVersion") == 1 or "signatures" in doc:
        raise ImagePullError("Docker Image Format v1 and Docker Image manifest version 2, "
                             "schema 1 support has been removed",
                             hint="rebuild and push the image with a current tool")
    if media not in MANIFEST_TYPES + INDEX_TYPES:
        raise ImagePullError(f"unsupported manifest media type {media!r}")
    return media, doc
