"""Test images without the internet: a busybox image built from Debian's
busybox-static, a real local registry (Debian's docker-registry) and a small
client of the registry's push API. Shared by image, runtime and e2e tests."""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
BUSYBOX = "/bin/busybox"
REGISTRY_BIN = "/usr/bin/docker-registry"
APPLETS = ("sh", "ls", "cat", "echo", "sleep", "httpd", "hostname", "wget", "true", "false",
           "env", "id", "ps", "mkdir", "rm", "test", "[")
MTIME = 1_700_000_000


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class LayerBuilder:
    """A layer tar built entry by entry, deterministic (fixed mtime, uid 0)."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.tar = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name: str, kind: bytes, mode: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.mode, info.mtime = kind, mode, MTIME
        return info

    def dir(self, name: str, mode: int = 0o755) -> "LayerBuilder":
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode))
        return self

    def file(self, name: str, data: bytes, mode: int = 0o644) -> "LayerBuilder":
        info = self._info(name, tarfile.REGTYPE, mode)
        info.size = len(data)
        self.tar.addfile(info, io.BytesIO(data))
        return self

    def symlink(self, name: str, target: str) -> "LayerBuilder":
        info = self._info(name, tarfile.SYMTYPE, 0o777)
        info.linkname = target
        self.tar.addfile(info)
        return self

    def hardlink(self, name: str, target: str) -> "LayerBuilder":
        info = self._info(name, tarfile.LNKTYPE, 0o644)
        info.linkname = target
        self.tar.addfile(info)
        return self

    def whiteout(self, name: str) -> "LayerBuilder":
        head, _, base = name.rpartition("/")
        return self.file(f"{head}/.wh.{base}" if head else f".wh.{base}", b"")

    def opaque(self, directory: str) -> "LayerBuilder":
        return self.file(f"{directory}/.wh..wh..opq", b"")

    def build(self, compress: bool = True) -> "Layer":
        self.tar.close()
        raw = self.buf.getvalue()
        blob = gzip.compress(raw, mtime=0) if compress else raw
        return Layer(blob=blob, diff_id=digest(raw), compressed=compress)


@dataclass
class Layer:
    blob: bytes
    diff_id: str
    compressed: bool = True

    @property
    def digest(self) -> str:
        return digest(self.blob)


@dataclass
class Image:
    layers: list[Layer]
    config: dict
    oci: bool = False

    @property
    def config_bytes(self) -> bytes:
        return json.dumps(self.config, sort_keys=True).encode()

    @property
    def config_digest(self) -> str:
        return digest(self.config_bytes)

    def manifest(self) -> bytes:
        layer_type = OCI_LAYER if self.oci else DOCKER_LAYER
        if not self.oci and not all(layer.compressed for layer in self.layers):
            layer_type = "application/vnd.docker.image.rootfs.diff.tar"
        doc = {"schemaVersion": 2,
               "mediaType": OCI_MANIFEST if self.oci else DOCKER_MANIFEST,
               "config": {"mediaType": OCI_CONFIG if self.oci else DOCKER_CONFIG,
                          "digest": self.config_digest, "size": len(self.config_bytes)},
               "layers": [{"mediaType": layer_type, "digest": layer.digest,
                           "size": len(layer.blob)} for layer in self.layers]}
        return json.dumps(doc).encode()

    @property
    def media_type(self) -> str:
        return OCI_MANIFEST if self.oci else DOCKER_MANIFEST


def busybox_base_layer() -> LayerBuilder:
    """bin/busybox with applet symlinks, a passwd, and things the second layer deletes."""
    lb = LayerBuilder().dir("bin").dir("etc").dir("tmp", 0o1777).dir("data")
    lb.file("bin/busybox", Path(BUSYBOX).read_bytes(), 0o755)
    for applet in APPLETS:
        lb.symlink(f"bin/{applet}", "busybox")
    lb.file("etc/passwd", b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534::/:/bin/sh\n")
    lb.file("etc/group", b"root:x:0:\nnobody:x:65534:\n")
    lb.file("etc/remove-me", b"gone in layer 2\n")
    lb.file("data/old.txt", b"hidden by the opaque dir\n")
    lb.dir("data/sub").file("data/sub/older.txt", b"also hidden\n")
    lb.hardlink("bin/busybox-hardlink", "bin/busybox")
    return lb


def busybox_image(arch: str = "amd64", oci: bool = False, extra: bytes = b"",
                  top_extra: bytes = b"") -> Image:
    """The test busybox: two layers, the second with a whiteout and an opaque dir.
    `extra` goes into the base layer (a different base), `top_extra` into the top one."""
    base = busybox_base_layer()
    if extra:
        base.file("etc/extra", extra)
    top = (LayerBuilder().dir("etc").whiteout("etc/remove-me").dir("data").opaque("data")
           .file("data/new.txt", b"from layer 2\n").file("etc/arch", arch.encode()))
    if top_extra:
        top.file("etc/top-extra", top_extra)
    layers = [base.build(), top.build()]
    config = {
        "architecture": arch, "os": "linux",
        "config": {"Cmd": ["sh"], "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:"
                                          "/usr/bin:/sbin:/bin"],
                   "WorkingDir": "/", "StopSignal": "SIGTERM",
                   "ExposedPorts": {"80/tcp": {}}},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created_by": "tests/oci_images.py"}] * 2,
    }
    return Image(layers, config, oci)


# ---- the registry -------------------------------------------------------------------
@dataclass
class Registry:
    """A running docker-registry on 127.0.0.1."""

    port: int
    proc: subprocess.Popen
    storage: Path
    log: Path
    pushed: dict = field(default_factory=dict)

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_registry(workdir: Path, port: int, htpasswd: Path | None = None) -> Registry:
    """Start Debian's docker-registry with filesystem storage under `workdir`; with
    `htpasswd` (bcrypt entries) every request needs Basic auth."""
    storage = workdir / "storage"
    storage.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.yml"
    auth = f"auth:\n  htpasswd:\n    realm: test\n    path: {htpasswd}\n" if htpasswd else ""
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n" + auth)
    log = workdir / "registry.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([REGISTRY_BIN, "serve", str(config)], stdout=out,
                                stderr=subprocess.STDOUT)
    reg = Registry(port, proc, storage, log)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{reg.url}/v2/", timeout=1) as resp:
                if resp.status == 200:
                    return reg
        except urllib.error.HTTPError as e:
            if e.code == 401 and htpasswd:
                return reg
            time.sleep(0.1)
        except (urllib.error.URLError, OSError):
            time.sleep(0.1)
    reg.stop()
    raise RuntimeError(f"docker-registry did not answer: {log.read_text()[-2000:]}")


def _request(method: str, url: str, data: bytes | None = None,
             headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def push_blob(registry_url: str, repo: str, data: bytes, auth: dict | None = None) -> str:
    """Monolithic upload: POST to start, PUT with ?digest= to finish. `auth`: headers
    (Authorization) for a registry that wants them."""
    d = digest(data)
    status, _, _ = _request("HEAD", f"{registry_url}/v2/{repo}/blobs/{d}", headers=auth)
    if status == 200:
        return d
    status, headers, body = _request("POST", f"{registry_url}/v2/{repo}/blobs/uploads/",
                                     headers=auth)
    assert status == 202, (status, body)
    location = headers["Location"]
    if location.startswith("/"):
        location = registry_url + location
    sep = "&" if "?" in location else "?"
    status, _, body = _request("PUT", f"{location}{sep}digest={d}", data,
                               {"Content-Type": "application/octet-stream", **(auth or {})})
    assert status == 201, (status, body)
    return d


def push_manifest(registry_url: str, repo: str, ref: str, body: bytes, media_type: str,
                  auth: dict | None = None) -> str:
    status, headers, resp = _request("PUT", f"{registry_url}/v2/{repo}/manifests/{ref}", body,
                                     {"Content-Type": media_type, **(auth or {})})
    assert status == 201, (status, resp)
    return digest(body)


def push_image(registry_url: str, repo: str, tag: str | None, image: Image,
               auth: dict | None = None) -> str:
    """Push blobs and the manifest; returns the manifest digest."""
    for layer in image.layers:
        push_blob(registry_url, repo, layer.blob, auth)
    push_blob(registry_url, repo, image.config_bytes, auth)
    body = image.manifest()
    return push_manifest(registry_url, repo, tag or digest(body), body, image.media_type, auth)


def push_index(registry_url: str, repo: str, tag: str, images: dict[str, Image],
               oci: bool = False) -> str:
    """Push each platform's image by digest, then a manifest list (or OCI index)."""
    entries = []
    for arch, image in images.items():
        d = push_image(registry_url, repo, None, image)
        platform = {"architecture": arch, "os": "linux"}
        if arch == "arm64":
            platform["variant"] = "v8"
        entries.append({"mediaType": image.media_type, "digest": d,
                        "size": len(image.manifest()), "platform": platform})
    media = OCI_INDEX if oci else DOCKER_LIST
    body = json.dumps({"schemaVersion": 2, "mediaType": media, "manifests": entries}).encode()
    return push_manifest(registry_url, repo, tag, body, media)


def docker_archive(image: Image, tags: list[str], path: Path) -> Path:
    """A `docker save` tarball (legacy layout: <id>/layer.tar, <config>.json)."""
    with tarfile.open(path, "w") as tar:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), MTIME
            tar.addfile(info, io.BytesIO(data))
        layer_names = []
        for layer in image.layers:
            raw = gzip.decompress(layer.blob) if layer.compressed else layer.blob
            name = f"{layer.diff_id.split(':')[1]}/layer.tar"
            add(name, raw)
            layer_names.append(name)
        cfg_name = f"{image.config_digest.split(':')[1]}.json"
        add(cfg_name, image.config_bytes)
        add("manifest.json", json.dumps([{"Config": cfg_name, "RepoTags": tags,
                                          "Layers": layer_names}]).encode())
    return path


def oci_archive(image: Image, name: str, path: Path) -> Path:
    """An OCI image layout tarball with one manifest named `name`."""
    with tarfile.open(path, "w") as tar:
        def add(n: str, data: bytes) -> None:
            info = tarfile.TarInfo(n)
            info.size, info.mtime = len(data), MTIME
            tar.addfile(info, io.BytesIO(data))
        for blob in [layer.blob for layer in image.layers] + [image.config_bytes]:
            add(f"blobs/sha256/{digest(blob)[7:]}", blob)
        manifest = image.manifest()
        add(f"blobs/sha256/{digest(manifest)[7:]}", manifest)
        add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add("index.json", json.dumps({"schemaVersion": 2, "manifests": [{
            "mediaType": image.media_type, "digest": digest(manifest), "size": len(manifest),
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1]}}]
        }).encode())
    return path


def have_registry() -> bool:
    return os.path.exists(REGISTRY_BIN) and os.path.exists(BUSYBOX)


def registry_fixture(tmp: Path, port: int) -> Iterator[Registry]:
    reg = start_registry(tmp, port)
    try:
        yield reg
    finally:
        reg.stop()
        shutil.rmtree(tmp, ignore_errors=True)
