"""Digests and temp names for content-addressed files (no network imports here, so
listing images stays quick)."""
from __future__ import annotations

import hashlib
import os


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def file_digest(path: str) -> tuple[str, int]:
    """(sha256 digest, size) of a file."""
    h, size = hashlib.sha256(), 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return "sha256:" + h.hexdigest(), size


def temp_name(directory: str, digest: str) -> str:
    """A unique temp path beside the final place, so rename is atomic."""
    return os.path.join(directory, f".tmp-{digest.split(':')[-1][:16]}-{os.getpid()}-"
                        f"{os.urandom(4).hex()}")
