"""tmpfs mounts for memory-backed volumes, through the mount(2)/umount2(2) system
calls (no `mount` binary needed), and the list of mounts under a directory, read
from /proc/self/mountinfo so teardown finds them even after a kubelet restart."""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os

MS_NOSUID, MS_NODEV = 0x2, 0x4
MNT_DETACH = 0x2
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def can_mount() -> bool:
    return os.geteuid() == 0


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal."""
    return field.encode().decode("unicode_escape") if "\\" in field else field


def mounts_under(root: str) -> list[str]:
    """Mount points at or below root, deepest first."""
    root = os.path.realpath(root)
    out = []
    # mountinfo has a line per mount on the machine (thousands on a busy node): only
    # lines that contain root are split. mountinfo escapes space, tab, newline and
    # backslash; a root with none of them is spelled there as it is here.
    probe = root if not any(c in root for c in " \t\n\\") else ""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                if probe not in line:
                    continue
                point = _unescape(line.split()[4])
                if point == root or point.startswith(root.rstrip("/") + "/"):
                    out.append(point)
    except OSError:
        return []
    return sorted(set(out), key=len, reverse=True)


def is_mount_point(path: str) -> bool:
    """Whether another filesystem (our tmpfs volumes) is mounted on path: its device
    differs from its parent's (os.path.ismount's test, without reading mountinfo; a
    bind mount from the same filesystem does not count, and we make none here)."""
    return os.path.ismount(os.path.realpath(path))


def mount_tmpfs(path: str, size_bytes: int, mode: int = 0o777) -> None:
    opts = f"mode={mode:o}" + (f",size={size_bytes}" if size_bytes > 0 else "")
    rc = _libc.mount(b"tmpfs", os.fsencode(path), b"tmpfs", MS_NOSUID | MS_NODEV,
                     opts.encode())
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"mount tmpfs on {path}: {os.strerror(e)}")


def unmount(path: str) -> None:
    """Unmount; a busy mount is detached (lazy) rather than left behind."""
    rc = _libc.umount2(os.fsencode(path), 0)
    if rc == 0:
        return
    e = ctypes.get_errno()
    if e == errno.EINVAL:   # not a mount point (any more)
        return
    if _libc.umount2(os.fsencode(path), MNT_DETACH) != 0:
        e = ctypes.get_errno()
        raise OSError(e, f"unmount {path}: {os.strerror(e)}")


def unmount_all_under(root: str) -> bool:
    """Unmount everything at or below root; whether there was anything (a read of
    mountinfo costs tens of milliseconds on a busy node: callers verify only then)."""
    points = mounts_under(root)
    for point in points:
        unmount(point)
    return bool(points)
