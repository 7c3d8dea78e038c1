"""Named network namespaces, the way `ip netns` keeps them, but in a directory the
runtime owns: a namespace is pinned by bind-mounting its nsfs file onto an empty
file, so it outlives every process in it and can be found again after a restart.

Creation goes through util-linux `unshare --net=<file>` (it unshares and does the
bind mount in one short-lived child, so no thread of ours ever changes namespace);
deletion is umount + unlink and is idempotent."""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
from typing import Iterator

from .commands import CommandError, run

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$")
_MNT_DETACH = 2
_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetNSError(CommandError):
    """A namespace could not be created, entered or removed."""


def _nsfs_dev() -> int:
    # Every nsfs file shares one superblock, so our own netns tells us its st_dev.
    return os.stat("/proc/self/ns/net").st_dev


def is_netns(path: str) -> bool:
    """True when `path` is a live namespace pin (an nsfs mount), not a bare file."""
    try:
        return os.stat(path).st_dev == _nsfs_dev()
    except OSError:
        return False


async def create(directory: str, name: str, timeout: float = 10.0) -> str:
    """Create and pin a new, empty network namespace at `directory/name`; return its
    path. Fails if one is already there (names are the caller's sandbox ids)."""
    if not _NAME.match(name):
        raise NetNSError(f"invalid network namespace name {name!r}")
    os.makedirs(directory, mode=0o755, exist_ok=True)
    path = os.path.join(directory, name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_EXCL, 0o444)
    except FileExistsError:
        raise NetNSError(f"network namespace {path} already exists") from None
    os.close(fd)
    try:
        await run(["unshare", f"--net={path}", "true"], timeout)
        await run(["nsenter", f"--net={path}", "ip", "link", "set", "lo", "up"], timeout)
    except BaseException:
        delete(path)
        raise
    return path


def delete(path: str) -> None:
    """Unpin and remove the namespace file; a no-op for a path that is already gone.
    The kernel frees the namespace (and the pod ends of its veths) once nothing
    else holds it."""
    # A file may carry more than one stacked mount if a create raced a crash; bounded.
    for _ in range(8):
        if _libc.umount2(os.fsencode(path), _MNT_DETACH) == 0:
            continue
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOENT):   # not a mount point / no such file
            break
        raise NetNSError(f"umount {path}: {os.strerror(err)}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def nsenter_argv(path: str, argv: list[str]) -> list[str]:
    """The command line that runs `argv` inside the namespace at `path`."""
    return ["nsenter", f"--net={path}", "--", *argv]


async def run_in(path: str, argv: list[str], timeout: float = 10.0,
                 check: bool = True) -> tuple[int, bytes, bytes]:
    """Run a command inside the namespace; returns (exit code, stdout, stderr)."""
    return await run(nsenter_argv(path, argv), timeout, check=check)


@contextlib.contextmanager
def entered(path: str) -> Iterator[None]:
    """Move the *calling thread* into the namespace for the block (sockets opened
    inside stay there, e.g. for port-forward). Never await inside the block: other
    coroutines would run in the pod's namespace."""
    own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    try:
        target = os.open(path, os.O_RDONLY)
        try:
            _setns(target, path)
        finally:
            os.close(target)
        try:
            yield
        finally:
            _setns(own, "the original namespace")
    finally:
        os.close(own)


def _setns(fd: int, what: str) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        raise NetNSError(f"setns {what}: {os.strerror(ctypes.get_errno())}")
