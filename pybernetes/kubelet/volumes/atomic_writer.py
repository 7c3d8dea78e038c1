"""Upstream's AtomicWriter scheme for configMap/secret/downwardAPI/projected volumes:
the payload goes into a fresh timestamped directory `..<time>.<random>`, the symlink
`..data` is swapped to it in one rename, and the user-visible names are symlinks to
`..data/<name>`. A reader inside the container therefore always sees one whole
version of the files, never a mix. Nothing is rewritten when nothing changed."""
from __future__ import annotations

import os
import shutil
import stat
import tempfile
import time
from dataclasses import dataclass

DATA_DIR, DATA_TMP = "..data", "..data_tmp"
MAX_PATH = 4096


@dataclass(frozen=True)
class FileProjection:
    data: bytes
    mode: int = 0o644
    fs_user: int | None = None


class PayloadError(ValueError):
    pass


def validate_path(path: str) -> None:
    """Relative, no '..' element, not starting with '..' (upstream's validatePath)."""
    if not path:
        raise PayloadError("invalid path: must not be empty")
    if len(path) > MAX_PATH:
        raise PayloadError(f"invalid path: must be less than or equal to {MAX_PATH} characters")
    if os.path.isabs(path):
        raise PayloadError(f"invalid path: must be relative path: {path}")
    if ".." in path.split("/"):
        raise PayloadError(f"invalid path: must not contain '..': {path}")
    if path.startswith(".."):
        raise PayloadError(f"invalid path: must not start with '..': {path}")


def _clean(payload: dict[str, FileProjection]) -> dict[str, FileProjection]:
    out = {}
    for path, proj in payload.items():
        validate_path(path)
        out[os.path.normpath(path)] = proj
    return out


def _files_under(root: str) -> dict[str, str]:
    """relative path → absolute path of every regular file under root."""
    out = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            full = os.path.join(dirpath, f)
            out[os.path.relpath(full, root)] = full
    return out


class AtomicWriter:
    def __init__(self, target_dir: str, fs_group: int | None = None):
        self.target_dir = target_dir
        self.fs_group = fs_group

    def _final_mode(self, mode: int) -> int:
        # fsGroup volumes are group-readable (upstream's SetVolumeOwnership, read-only mask)
        return mode | 0o440 if self.fs_group is not None else mode

    def _data_dir(self) -> str | None:
        try:
            return os.path.join(self.target_dir, os.readlink(os.path.join(self.target_dir,
                                                                          DATA_DIR)))
        except OSError:
            return None

    def _unchanged(self, payload: dict[str, FileProjection], old_dir: str | None) -> bool:
        if old_dir is None or not os.path.isdir(old_dir):
            return False
        have = _files_under(old_dir)
        if set(have) != set(payload):
            return False
        for rel, proj in payload.items():
            st = os.lstat(have[rel])
            if stat.S_IMODE(st.st_mode) != self._final_mode(proj.mode):
                return False
            with open(have[rel], "rb") as f:
                if f.read() != proj.data:
                    return False
        return True

    def write(self, payload: dict[str, FileProjection]) -> bool:
        """Project the payload; True when anything was (re)written."""
        clean = _clean(payload)
        os.makedirs(self.target_dir, exist_ok=True)
        old_dir = self._data_dir()
        if self._unchanged(clean, old_dir):
            self._link_visible(clean)   # repair missing user-visible links
            return False
        stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime())
        new_dir = tempfile.mkdtemp(prefix=stamp, dir=self.target_dir)
        try:
            os.chmod(new_dir, 0o755)
            self._write_files(new_dir, clean)
            tmp = os.path.join(self.target_dir, DATA_TMP)
            if os.path.lexists(tmp):
                os.unlink(tmp)
            os.symlink(os.path.basename(new_dir), tmp)
            os.rename(tmp, os.path.join(self.target_dir, DATA_DIR))   # the atomic swap
        except BaseException:
            shutil.rmtree(new_dir, ignore_errors=True)
            raise
        self._link_visible(clean)
        self._remove_stale(clean, old_dir)
        return True

    def _write_files(self, root: str, payload: dict[str, FileProjection]) -> None:
        for rel, proj in payload.items():
            path = os.path.join(root, rel)
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            with open(path, "wb") as f:
                f.write(proj.data)
            os.chmod(path, self._final_mode(proj.mode))
            if proj.fs_user is not None or self.fs_group is not None:
                os.chown(path, -1 if proj.fs_user is None else proj.fs_user,
                         -1 if self.fs_group is None else self.fs_group)

    def _link_visible(self, payload: dict[str, FileProjection]) -> None:
        for top in {rel.split("/", 1)[0] for rel in payload}:
            link = os.path.join(self.target_dir, top)
            want = os.path.join(DATA_DIR, top)
            if os.path.islink(link) and os.readlink(link) == want:
                continue
            if os.path.lexists(link):
                if os.path.isdir(link) and not os.path.islink(link):
                    shutil.rmtree(link)
                else:
                    os.unlink(link)
            os.symlink(want, link)

    def _remove_stale(self, payload: dict[str, FileProjection], old_dir: str | None) -> None:
        tops = {rel.split("/", 1)[0] for rel in payload}
        for name in os.listdir(self.target_dir):
            if name.startswith(".."):
                continue
            path = os.path.join(self.target_dir, name)
            if name not in tops and os.path.islink(path):
                os.unlink(path)
        if old_dir and os.path.isdir(old_dir):
            shutil.rmtree(old_dir, ignore_errors=True)
        # leftovers of a crash between mkdtemp and the swap
        current = self._data_dir()
        for name in os.listdir(self.target_dir):
            full = os.path.join(self.target_dir, name)
            if (name.startswith("..") and name not in (DATA_DIR, DATA_TMP)
                    and os.path.isdir(full) and not os.path.islink(full)
                    and full != current):
                shutil.rmtree(full, ignore_errors=True)
