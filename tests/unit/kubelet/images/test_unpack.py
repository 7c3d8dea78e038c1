"""Layer unpacking: whiteouts become overlayfs whiteouts, nothing escapes the layer dir."""
from __future__ import annotations

import io
import os
import stat
import sys
import tarfile
from pathlib import Path

import pytest

from pybernetes.kubelet.images.errors import DigestMismatch, ImageError
from pybernetes.kubelet.images.unpack import UnsafeLayer, _Extractor, unpack_layer

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
from oci_images import LayerBuilder  # noqa: E402

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="overlay whiteouts need root")


def _unpack(tmp_path: Path, layer, name: str = "layer") -> Path:
    blob = tmp_path / f"{name}.blob"
    blob.write_bytes(layer.blob)
    dest = tmp_path / name
    dest.mkdir()
    assert unpack_layer(str(blob), str(dest), layer.diff_id) == layer.diff_id
    return dest


def test_files_links_and_modes(tmp_path: Path) -> None:
    layer = (LayerBuilder().dir("bin").file("bin/tool", b"#!/bin/sh\n", 0o4755)
             .symlink("bin/sh", "/bin/tool").hardlink("bin/tool2", "bin/tool")
             .dir("ro", 0o555).file("ro/f", b"x", 0o444).build())
    root = _unpack(tmp_path, layer)
    assert (root / "bin/tool").read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE((root / "bin/tool").stat().st_mode) == 0o4755
    assert os.readlink(root / "bin/sh") == "/bin/tool"  # kept as written, not followed
    assert (root / "bin/tool2").stat().st_ino == (root / "bin/tool").stat().st_ino
    assert stat.S_IMODE((root / "ro").stat().st_mode) == 0o555
    assert (root / "ro").stat().st_mtime == 1_700_000_000


def test_uncompressed_layers_unpack_too(tmp_path: Path) -> None:
    root = _unpack(tmp_path, LayerBuilder().file("a", b"plain").build(compress=False))
    assert (root / "a").read_bytes() == b"plain"


@as_root
def test_whiteouts_become_overlay_whiteouts(tmp_path: Path) -> None:
    layer = (LayerBuilder().dir("etc").whiteout("etc/passwd").dir("data").opaque("data")
             .file("data/new", b"n").build())
    root = _unpack(tmp_path, layer)
    st = os.lstat(root / "etc/passwd")
    assert stat.S_ISCHR(st.st_mode) and os.major(st.st_rdev) == 0 and os.minor(st.st_rdev) == 0
    assert not (root / "etc/.wh.passwd").exists()
    assert os.getxattr(root / "data", "trusted.overlay.opaque") == b"y"
    assert sorted(os.listdir(root / "data")) == ["new"]


def test_device_nodes_only_as_root(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("dev/null")
        info.type, info.devmajor, info.devminor, info.mode = tarfile.CHRTYPE, 1, 3, 0o666
        tar.addfile(info)
    buf.seek(0)
    dest = tmp_path / "rootless"
    dest.mkdir()
    with tarfile.open(fileobj=buf, mode="r|") as tar:
        _Extractor(str(dest), tar, as_root=False).run()
    assert not (dest / "dev/null").exists()


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "./../../evil"])
def test_names_climbing_out_are_refused(tmp_path: Path, name: str) -> None:
    layer = LayerBuilder().file(name, b"pwned").build()
    blob = tmp_path / "blob"
    blob.write_bytes(layer.blob)
    (tmp_path / "x" / "layer").mkdir(parents=True)
    with pytest.raises(UnsafeLayer, match="outside the layer"):
        unpack_layer(str(blob), str(tmp_path / "x" / "layer"), None)
    assert not (tmp_path / "evil").exists() and not (tmp_path / "x" / "evil").exists()


def test_absolute_names_stay_inside(tmp_path: Path) -> None:
    root = _unpack(tmp_path, LayerBuilder().file("/etc/inside", b"ok").build())
    assert (root / "etc/inside").read_bytes() == b"ok"


@pytest.mark.parametrize("target", ["/", "../../..", "/../..", "{outside}"])
def test_symlinks_cannot_carry_writes_outside(tmp_path: Path, target: str) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    target = target.format(outside=outside)
    layer = (LayerBuilder().symlink("escape", target)
             .file("escape/pwned", b"pwned").build())
    root = _unpack(tmp_path, layer)
    assert not (outside / "pwned").exists() and not (tmp_path / "pwned").exists()
    assert os.readlink(root / "escape") == target
    found = [p for p in root.rglob("pwned")]
    assert len(found) == 1 and root in found[0].parents


def test_hardlinks_out_of_the_layer_are_refused(tmp_path: Path) -> None:
    layer = LayerBuilder().hardlink("passwd", "../../../../etc/passwd").build()
    blob = tmp_path / "blob"
    blob.write_bytes(layer.blob)
    (tmp_path / "layer").mkdir()
    with pytest.raises(UnsafeLayer):
        unpack_layer(str(blob), str(tmp_path / "layer"), None)


def test_diff_id_is_verified(tmp_path: Path) -> None:
    layer = LayerBuilder().file("a", b"1").build()
    blob = tmp_path / "blob"
    blob.write_bytes(layer.blob)
    (tmp_path / "layer").mkdir()
    with pytest.raises(DigestMismatch, match="diffID mismatch"):
        unpack_layer(str(blob), str(tmp_path / "layer"), "sha256:" + "0" * 64)


def test_garbage_is_not_a_layer(tmp_path: Path) -> None:
    blob = tmp_path / "blob"
    blob.write_bytes(b"\x1f\x8bnot really gzip")
    (tmp_path / "layer").mkdir()
    with pytest.raises(ImageError, match="not a valid tar archive"):
        unpack_layer(str(blob), str(tmp_path / "layer"), None)
