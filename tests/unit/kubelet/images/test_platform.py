"""Choosing the manifest for this machine from a manifest list / OCI index."""
from __future__ import annotations

import json

import pytest

from pybernetes.kubelet.images import manifest as mf
from pybernetes.kubelet.images.errors import ImagePullError


def _entry(arch: str, variant: str = "", os: str = "linux", n: int = 0) -> dict:
    platform = {"os": os, "architecture": arch}
    if variant:
        platform["variant"] = variant
    return {"mediaType": mf.OCI_MANIFEST, "digest": f"sha256:{n:064x}", "size": 100 + n,
            "platform": platform}


INDEX = {"schemaVersion": 2, "mediaType": mf.OCI_INDEX, "manifests": [
    _entry("unknown", os="unknown", n=9),     # a build attestation, never chosen
    _entry("amd64", n=1), _entry("arm", "v6", n=2), _entry("arm", "v7", n=3),
    _entry("arm64", "v8", n=4), _entry("s390x", n=5), _entry("amd64", os="windows", n=6)]}


@pytest.mark.parametrize("want,n", [
    (mf.Platform("linux", "amd64"), 1),
    (mf.Platform("linux", "arm64", "v8"), 4),
    (mf.Platform("linux", "arm64"), 4),
    (mf.Platform("linux", "arm", "v7"), 3),
    (mf.Platform("linux", "arm", "v6"), 2),
    (mf.Platform("linux", "s390x"), 5),
])
def test_the_fitting_platform_is_chosen(want: mf.Platform, n: int) -> None:
    assert mf.select_platform(INDEX, want).digest == f"sha256:{n:064x}"


def test_arm64_without_variant_and_armv6_on_armv7() -> None:
    index = {"manifests": [_entry("arm64", n=1), _entry("arm", "v6", n=2)]}
    assert mf.select_platform(index, mf.Platform("linux", "arm64", "v8")).size == 101
    assert mf.select_platform(index, mf.Platform("linux", "arm", "v7")).size == 102


def test_no_match_says_so() -> None:
    with pytest.raises(ImagePullError, match="no match for platform in manifest"):
        mf.select_platform(INDEX, mf.Platform("linux", "riscv64"))


def test_this_machine_is_linux_with_a_go_arch() -> None:
    p = mf.host_platform()
    assert p.os == "linux" and p.architecture in ("amd64", "arm64", "arm", "386", "ppc64le",
                                                  "s390x", "riscv64")


def test_manifest_types_from_body_or_header() -> None:
    body = json.dumps({"schemaVersion": 2, "manifests": []}).encode()
    assert mf.parse_manifest(body, "application/json")[0] == mf.OCI_INDEX
    body = json.dumps({"schemaVersion": 2, "config": {}, "layers": []}).encode()
    assert mf.parse_manifest(body, mf.DOCKER_MANIFEST + "; charset=utf-8")[0] == \
        mf.DOCKER_MANIFEST
    with pytest.raises(ImagePullError, match="schema 1 support has been removed"):
        mf.parse_manifest(json.dumps({"schemaVersion": 1}).encode(), "")
    with pytest.raises(ImagePullError, match="not JSON"):
        mf.parse_manifest(b"<html>", "text/html")
