"""Shared pieces of the runtime tests: a busybox image layer, configs, bounded waits."""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from pybernetes.kubelet.runtime.base import ContainerConfig, Runtime, SandboxConfig

BUSYBOX = "/bin/busybox"
CRI_LINE = re.compile(rb"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}(?:Z|[+-]\d\d:\d\d) "
                      rb"(stdout|stderr) ([PF]) (.*)$")


def busybox_layer(path: Path) -> str:
    """An image layer with a static busybox and its applets (what `docker build`
    of a busybox image would unpack), plus a passwd/group naming uid 1000."""
    (path / "bin").mkdir(parents=True)
    shutil.copy(BUSYBOX, path / "bin" / "busybox")
    applets = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                             check=True).stdout.split()
    for name in applets:
        if name != "busybox":
            os.symlink("busybox", path / "bin" / name)
    (path / "etc").mkdir()
    (path / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                         "app:x:1000:1000:app:/home/app:/bin/sh\n")
    (path / "etc" / "group").write_text("root:x:0:\napp:x:1000:\nextra:x:2000:app\n")
    (path / "tmp").mkdir(mode=0o1777)
    return str(path)


def sandbox_config(name: str, logs: Path, **kw) -> SandboxConfig:
    uid = f"uid-{name}-{os.getpid()}"
    return SandboxConfig(pod_uid=uid, name=name, namespace="default", hostname=name,
                         log_directory=str(logs / f"default_{name}_{uid}"),
                         cgroup_parent=f"kubepods/pod{uid}", **kw)


def container_config(name: str, script: str, **kw) -> ContainerConfig:
    return ContainerConfig(name=name, attempt=0, image="busybox:test",
                           image_ref="sha256:" + "0" * 64, command=["sh", "-c", script],
                           log_path=f"{name}/0.log", **kw)


async def wait_state(rt: Runtime, cid: str, state: str, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        st = await rt.container_status(cid)
        if st.state == state or time.monotonic() > deadline:
            return st
        await asyncio.sleep(0.05)


async def wait_log(path: str, text: bytes, timeout: float = 30.0) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        data = Path(path).read_bytes() if os.path.exists(path) else b""
        if text in data or time.monotonic() > deadline:
            return data
        await asyncio.sleep(0.05)


def log_entries(path: str) -> list[tuple[str, str, bytes]]:
    out = []
    for line in Path(path).read_bytes().splitlines():
        m = CRI_LINE.match(line)
        assert m, f"not a CRI log line: {line!r}"
        out.append((m.group(1).decode(), m.group(2).decode(), m.group(3)))
    return out


def processes_mentioning(text: str) -> list[int]:
    """Pids whose command line contains text (our ids are unique 64-hex strings)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{d}/cmdline").read_bytes()
        except OSError:
            continue
        if text.encode() in cmdline:
            out.append(int(d))
    return out


def pid_running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] != b"Z"


async def remove_everything(rt: Runtime, root: Path) -> list[str]:
    """Remove every sandbox and container of the runtime, then unmount whatever is still
    mounted under its root dir; returns those leftover mount points (a test asserts
    there were none)."""
    for s in await rt.list_pod_sandboxes():
        await rt.remove_pod_sandbox(s.id)
    for c in await rt.list_containers():
        await rt.remove_container(c.id)
    from pybernetes.kubelet.runtime.runc import umount
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        leftovers = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    for path in reversed(leftovers):
        umount(path)
    return leftovers
