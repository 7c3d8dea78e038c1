"""Read image tarballs: docker-archive (`docker save`: manifest.json + layer tars)
and OCI image layout (oci-layout, index.json, blobs/<alg>/<hex>)."""
from __future__ import annotations

import json
import os
import posixpath
import tarfile
from dataclasses import dataclass, field
from typing import Any

from pybernetes.kubelet.images import manifest as mf
from pybernetes.kubelet.images.digests import file_digest
from pybernetes.kubelet.images.errors import DigestMismatch, ImageError
from pybernetes.kubelet.images.reference import parse_reference
from pybernetes.kubelet.images.unpack import clean_name

CONTAINERD_NAME = "io.containerd.image.name"
OCI_REF_NAME = "org.opencontainers.image.ref.name"
_GZIP_MAGIC = b"\x1f\x8b"


@dataclass
class LocalImage:
    config: mf.Descriptor
    layers: list[mf.Descriptor]
    blobs: dict[str, str] = field(default_factory=dict)  # digest -> file under the temp dir
    tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)
    manifest_digests: list[str] = field(default_factory=list)


class _Files:
    """The archive's regular files, copied out by name; symlinks resolved by name."""

    def __init__(self, archive: str, tmp: str) -> None:
        self.tmp, self.paths, self.links = tmp, {}, {}
        self.paths: dict[str, str]
        self.links: dict[str, str]
        try:
            with tarfile.open(archive, "r:*") as tar:
                for i, m in enumerate(tar):
                    name = "/".join(clean_name(m.name))
                    if m.isreg():
                        self._copy(tar, m, name, i)
                    elif m.issym() or m.islnk():
                        base = posixpath.dirname(name) if m.issym() else ""
                        self.links[name] = "/".join(clean_name(posixpath.join(base,
                                                                              m.linkname)))
        except (tarfile.TarError, EOFError) as e:
            raise ImageError(f"{archive} is not a tar archive: {e}",
                             hint="give a file written by `docker save` or an OCI layout "
                                  "tarball") from None
        except FileNotFoundError:
            raise ImageError(f"no such file: {archive}") from None

    def _copy(self, tar: tarfile.TarFile, m: tarfile.TarInfo, name: str, i: int) -> None:
        src = tar.extractfile(m)
        dest = os.path.join(self.tmp, f"f{i}")
        with open(dest, "wb") as out:
            while src is not None and (chunk := src.read(1 << 20)):
                out.write(chunk)
        self.paths[name] = dest

    def path(self, name: str) -> str:
        name = "/".join(clean_name(name))
        for _ in range(40):
            if name in self.paths:
                return self.paths[name]
            if name not in self.links:
                break
            name = self.links[name]
        raise ImageError(f"archive has no file {name!r}")

    def has(self, name: str) -> bool:
        return name in self.paths

    def json(self, name: str) -> Any:
        try:
            with open(self.path(name), "rb") as f:
                return json.load(f)
        except ValueError:
            raise ImageError(f"{name} in the archive is not valid JSON") from None


def _digest(path: str) -> tuple[str, int]:
    return file_digest(path)


def read_archive(archive: str, tmp: str) -> list[LocalImage]:
    files = _Files(archive, tmp)
    if files.has("manifest.json"):
        return _docker_archive(files)
    if files.has("index.json"):
        return _oci_layout(files)
    raise ImageError(f"{archive}: neither a docker archive (manifest.json) nor an OCI layout "
                     f"(index.json)", hint="create it with `docker save` or `skopeo copy ... "
                                           "oci-archive:FILE`")


def _layer_type(path: str) -> str:
    with open(path, "rb") as f:
        gz = f.read(2) == _GZIP_MAGIC
    return mf.DOCKER_LAYER_GZIP if gz else "application/vnd.docker.image.rootfs.diff.tar"


def _docker_archive(files: _Files) -> list[LocalImage]:
    entries = files.json("manifest.json")
    if not isinstance(entries, list):
        raise ImageError("manifest.json in the archive is not a list")
    out = []
    for entry in entries:
        cfg_path = files.path(entry["Config"])
        cfg_digest, cfg_size = _digest(cfg_path)
        img = LocalImage(mf.Descriptor(mf.DOCKER_CONFIG, cfg_digest, cfg_size), [])
        img.blobs[cfg_digest] = cfg_path
        for name in entry.get("Layers") or []:
            path = files.path(name)
            digest, size = _digest(path)
            img.layers.append(mf.Descriptor(_layer_type(path), digest, size))
            img.blobs[digest] = path
        manifest = json.dumps({
            "schemaVersion": 2, "mediaType": mf.DOCKER_MANIFEST,
            "config": {"mediaType": mf.DOCKER_CONFIG, "digest": cfg_digest, "size": cfg_size},
            "layers": [{"mediaType": d.media_type, "digest": d.digest, "size": d.size}
                       for d in img.layers]}, separators=(",", ":")).encode()
        m_path = os.path.join(files.tmp, f"manifest-{len(out)}")
        with open(m_path, "wb") as f:
            f.write(manifest)
        m_digest, _ = _digest(m_path)
        img.blobs[m_digest] = m_path
        img.manifest_digests = [m_digest]
        img.tags = [str(parse_reference(t)) for t in entry.get("RepoTags") or []]
        out.append(img)
    return out


def _oci_blob(files: _Files, desc: mf.Descriptor) -> str:
    """The verified file of a blob named by its descriptor."""
    alg, _, hexpart = desc.digest.partition(":")
    path = files.path(f"blobs/{alg}/{hexpart}")
    digest, size = _digest(path)
    if digest != desc.digest or size != desc.size:
        raise DigestMismatch(f"blob {desc.digest} in the archive has digest {digest} and "
                             f"size {size}, expected size {desc.size}")
    return path


def _oci_layout(files: _Files) -> list[LocalImage]:
    index = files.json("index.json")
    out = []
    for entry in index.get("manifests") or []:
        desc = mf.Descriptor.from_json(entry)
        path = _oci_blob(files, desc)
        name = _oci_name(entry.get("annotations") or {})
        with open(path, "rb") as f:
            media, doc = mf.parse_manifest(f.read(), desc.media_type)
        manifest_digests = [desc.digest]
        blobs = {desc.digest: path}
        if media in mf.INDEX_TYPES:
            desc = mf.select_platform(doc)
            path = _oci_blob(files, desc)
            with open(path, "rb") as f:
                media, doc = mf.parse_manifest(f.read(), desc.media_type)
            manifest_digests.append(desc.digest)
            blobs[desc.digest] = path
        config = mf.Descriptor.from_json(doc["config"])
        layers = [mf.Descriptor.from_json(d) for d in doc.get("layers") or []]
        img = LocalImage(config, layers, blobs, manifest_digests=manifest_digests)
        for d in [config] + layers:
            img.blobs[d.digest] = _oci_blob(files, d)
        if name:
            ref = parse_reference(name)
            img.tags = [str(ref)] if ref.tag else []
            img.repo_digests = [f"{ref.repository}@{manifest_digests[0]}"]
        out.append(img)
    return out


def _oci_name(annotations: dict[str, str]) -> str:
    """A full image name from the annotations; a bare tag (`latest`) names nothing."""
    name = annotations.get(CONTAINERD_NAME) or annotations.get(OCI_REF_NAME) or ""
    if name and "/" not in name and ":" not in name and "@" not in name:
        return ""
    return name
