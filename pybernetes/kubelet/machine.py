"""What a real node reports about the machine it runs on: capacity (cpu count,
/proc/meminfo, the root dir's filesystem), its address and OS image."""
from __future__ import annotations

import json
import os
import platform
import subprocess
from dataclasses import dataclass

from pybernetes.kubelet.node_status import NodeConfig

# upstream's default hard eviction threshold memory.available<100Mi comes off allocatable
EVICTION_MEMORY = 100 * 1024 * 1024


def memory_bytes(meminfo: str = "/proc/meminfo") -> int:
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def disk_bytes(path: str) -> int:
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize


def os_image() -> str:
    """PRETTY_NAME from /etc/os-release, as the kubelet reports it."""
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def primary_ip() -> str:
    """The first global IPv4 address of an interface that is up (what upstream picks
    for the node's InternalIP when no --node-ip is given); 127.0.0.1 when none."""
    try:
        out = subprocess.run(["ip", "-j", "-4", "addr", "show", "up", "scope", "global"],
                             capture_output=True, text=True, timeout=10).stdout
        for link in json.loads(out or "[]"):
            for addr in link.get("addr_info") or []:
                if addr.get("family") == "inet" and addr.get("local"):
                    return addr["local"]
    except (OSError, ValueError, subprocess.TimeoutExpired):
        pass
    return "127.0.0.1"


@dataclass
class MachineNodeConfig(NodeConfig):
    """A NodeConfig whose capacity is this machine's; allocatable keeps upstream's
    eviction reserve off memory."""

    ephemeral_storage: int = 0
    memory_bytes: int = 0
    root_dir: str = ""

    def pressure(self) -> set[str]:
        """Upstream's default hard eviction signals: memory.available < 100Mi,
        nodefs.available < 10%; pid.available < 10% of pid_max (upstream sets no PID
        threshold by default; a node about to run out is worth saying so)."""
        out = set()
        if available_memory() < EVICTION_MEMORY:
            out.add("MemoryPressure")
        if self.root_dir and disk_free_fraction(self.root_dir) < 0.10:
            out.add("DiskPressure")
        if pid_free_fraction() < 0.10:
            out.add("PIDPressure")
        return out

    def resources(self) -> dict[str, str]:
        out = super().resources()
        if self.ephemeral_storage:
            out["ephemeral-storage"] = str(self.ephemeral_storage)
        return out

    def allocatable(self) -> dict[str, str]:
        out = self.resources()
        if self.memory_bytes > EVICTION_MEMORY:
            out["memory"] = str((self.memory_bytes - EVICTION_MEMORY) // 1024) + "Ki"
        return out


def available_memory(meminfo: str = "/proc/meminfo") -> int:
    """MemAvailable in bytes (what the kernel could give without swapping)."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 1 << 62  # unknown: no pressure claimed


def disk_free_fraction(path: str) -> float:
    try:
        st = os.statvfs(path)
    except OSError:
        return 1.0
    return st.f_bavail / st.f_blocks if st.f_blocks else 1.0


def pid_free_fraction(proc: str = "/proc") -> float:
    try:
        with open(f"{proc}/sys/kernel/pid_max") as f:
            pid_max = int(f.read())
        used = sum(1 for d in os.listdir(proc) if d.isdigit())
    except (OSError, ValueError):
        return 1.0
    return 1.0 - used / pid_max if pid_max else 1.0


def machine_node_config(name: str, root_dir: str, runtime_version: str, node_ip: str = "",
                        pods: int = 110, labels: dict | None = None,
                        taints: list | None = None) -> MachineNodeConfig:
    mem = memory_bytes()
    return MachineNodeConfig(
        name=name, ip=node_ip or primary_ip(), cpu=str(os.cpu_count() or 1),
        memory=f"{mem // 1024}Ki", pods=pods, labels=dict(labels or {}),
        taints=list(taints or []), runtime_version=runtime_version, os_image=os_image(),
        ephemeral_storage=disk_bytes(root_dir), memory_bytes=mem, root_dir=root_dir)
