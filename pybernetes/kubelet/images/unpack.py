"""Unpack a layer tarball into a directory that overlayfs can use as a lowerdir.

Safety: entry names are cleaned and may not climb out of the directory; symlinks
met on the way to an entry are resolved as if the directory were `/` (so an
absolute or `../` symlink cannot point extraction outside it); device nodes are
made only as root. OCI whiteouts become overlayfs whiteouts: `.wh.<name>` a 0/0
character device, `.wh..wh..opq` the `trusted.overlay.opaque="y"` xattr on its dir.
The uncompressed stream is hashed and must match the layer's diffID."""
from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import tarfile
from typing import IO

from pybernetes.kubelet.images.errors import DigestMismatch, ImageError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_SYMLINKS = 40  # as Linux path resolution
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class UnsafeLayer(ImageError):
    """A layer tries to write outside its directory or is otherwise malformed."""


class _HashingReader:
    """A read-only stream that hashes what passes through it."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.hash = raw, hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self.raw.read(n)
        self.hash.update(data)
        return data

    def drain(self) -> None:
        while self.read(1 << 16):
            pass


def clean_name(name: str) -> list[str]:
    """A tar entry name as path parts below the root; refuses any `..` escape."""
    parts: list[str] = []
    for p in name.split("/"):
        if p in ("", "."):
            continue
        if p == "..":
            if not parts:
                raise UnsafeLayer(f"layer entry {name!r} points outside the layer")
            parts.pop()
            continue
        parts.append(p)
    return parts


def resolve_in_root(root: str, parts: list[str], create: bool = True) -> str:
    """The real directory path of `parts` under `root`, following symlinks as if
    `root` were `/`. Missing directories are created when `create`."""
    done: list[str] = []
    todo = list(parts)
    links = 0
    while todo:
        p = todo.pop(0)
        if p in ("", "."):
            continue
        if p == "..":
            if done:
                done.pop()
            continue
        path = os.path.join(root, *done, p)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            if not create:
                raise
            os.mkdir(path, 0o755)
            done.append(p)
            continue
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > MAX_SYMLINKS:
                raise UnsafeLayer(f"too many levels of symbolic links under {'/'.join(parts)}")
            target = os.readlink(path)
            if target.startswith("/"):
                done = []
            todo = target.split("/") + todo
            continue
        if not stat.S_ISDIR(st.st_mode) and todo:
            raise UnsafeLayer(f"layer entry path {'/'.join(parts)}: {p} is not a directory")
        done.append(p)
    return os.path.join(root, *done)


def _open_layer(path: str) -> IO[bytes]:
    f = open(path, "rb")
    magic = f.read(4)
    f.seek(0)
    if magic.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=f, mode="rb")  # type: ignore[return-value]
    if magic == _ZSTD_MAGIC:
        f.close()
        raise ImageError("zstd-compressed layers are not supported; use gzip layers")
    return f


def unpack_layer(blob: str, dest: str, diff_id: str | None) -> str:
    """Extract `blob` (gzip or plain tar) into the empty dir `dest`; returns the diffID.
    Raises DigestMismatch when `diff_id` is given and does not match."""
    as_root = os.geteuid() == 0
    with _open_layer(blob) as raw:
        reader = _HashingReader(raw)
        try:
            with tarfile.open(fileobj=reader, mode="r|") as tar:  # type: ignore[call-overload]
                _Extractor(dest, tar, as_root).run()
            reader.drain()  # the hash covers the tar's trailing padding too
        except (tarfile.TarError, EOFError, gzip.BadGzipFile, OSError) as e:
            if isinstance(e, OSError) and e.errno is not None:
                raise
            raise ImageError(f"layer {os.path.basename(blob)} is not a valid tar archive: "
                             f"{e}") from None
    actual = "sha256:" + reader.hash.hexdigest()
    if diff_id and actual != diff_id:
        raise DigestMismatch(f"layer diffID mismatch: unpacked content is {actual}, the image "
                             f"config says {diff_id}")
    return actual


class _Extractor:
    def __init__(self, root: str, tar: tarfile.TarFile, as_root: bool) -> None:
        self.root, self.tar, self.as_root = root, tar, as_root
        self.dirs: list[tuple[str, tarfile.TarInfo]] = []

    def run(self) -> None:
        for member in self.tar:
            self.entry(member)
        for path, member in reversed(self.dirs):  # after children, so mtimes stick
            self.metadata(path, member)

    def entry(self, m: tarfile.TarInfo) -> None:
        parts = clean_name(m.name)
        if not parts:
            return  # the root itself ("./")
        parent = resolve_in_root(self.root, parts[:-1])
        base = parts[-1]
        if base.startswith(WHITEOUT):
            self.whiteout(parent, base)
            return
        path = os.path.join(parent, base)
        self.make_room(path, m)
        if m.isdir():
            if not os.path.isdir(path):
                os.mkdir(path, 0o700)
            self.dirs.append((path, m))
            return
        if m.isreg():
            self.regular(path, m)
        elif m.issym():
            os.symlink(m.linkname, path)
        elif m.islnk():
            self.hardlink(path, m)
            return  # the link shares its target's inode: the target's metadata stands
        elif m.ischr() or m.isblk():
            if not self.as_root:
                return  # as containerd rootless: device nodes need root
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
            os.mknod(path, kind | (m.mode & 0o7777), os.makedev(m.devmajor, m.devminor))
        elif m.isfifo():
            os.mkfifo(path, m.mode & 0o7777)
        else:
            return  # unknown entry types are skipped, as other unpackers do
        self.metadata(path, m)

    def make_room(self, path: str, m: tarfile.TarInfo) -> None:
        """A later entry replaces an earlier one; directories merge."""
        if not os.path.lexists(path):
            return
        if os.path.isdir(path) and not os.path.islink(path):
            if m.isdir():
                return
            shutil.rmtree(path)
        else:
            os.unlink(path)

    def regular(self, path: str, m: tarfile.TarInfo) -> None:
        src = self.tar.extractfile(m)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            if src is not None:
                shutil.copyfileobj(src, out, 1 << 16)

    def hardlink(self, path: str, m: tarfile.TarInfo) -> None:
        parts = clean_name(m.linkname)
        if not parts:
            raise UnsafeLayer(f"hard link {m.name!r} to the layer root")
        target = os.path.join(resolve_in_root(self.root, parts[:-1], create=False), parts[-1])
        if not os.path.lexists(target):
            raise UnsafeLayer(f"hard link {m.name!r} to {m.linkname!r}, which is not in "
                              f"the layer")
        os.link(target, path, follow_symlinks=False)

    def whiteout(self, parent: str, base: str) -> None:
        if base == OPAQUE:
            name = "trusted.overlay.opaque" if self.as_root else "user.overlay.opaque"
            os.setxattr(parent, name, b"y")
            return
        if base.startswith(WHITEOUT + WHITEOUT):
            return  # other aufs metadata (.wh..wh.plnk ...): nothing for overlayfs
        path = os.path.join(parent, base[len(WHITEOUT):])
        if os.path.lexists(path):
            shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) \
                else os.unlink(path)
        if self.as_root:
            os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))
        else:  # no overlay whiteouts without root: keep the marker as a plain file
            open(os.path.join(parent, base), "wb").close()

    def metadata(self, path: str, m: tarfile.TarInfo) -> None:
        if self.as_root:
            os.lchown(path, m.uid, m.gid)
            for key, value in (m.pax_headers or {}).items():
                if key.startswith("SCHILY.xattr."):
                    try:
                        os.setxattr(path, key[len("SCHILY.xattr."):],
                                    value.encode("utf-8", "surrogateescape"),
                                    follow_symlinks=False)
                    except OSError:
                        pass  # an xattr this filesystem refuses is not worth failing for
        if not m.issym():
            os.chmod(path, m.mode & 0o7777)
        os.utime(path, (m.mtime, m.mtime), follow_symlinks=False)
