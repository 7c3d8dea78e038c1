"""Processes a benchmark needs: a real etcd, a `pybernetes server`, and CPU
accounting of a process read from /proc (psutil is not a dependency)."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

ETCD_BINARY = "/usr/bin/etcd"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a whole process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # The command name may contain spaces; the fields we want follow the last ')'.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    """Direct children of a process, from every one of its threads."""
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out += [int(c) for c in f.read().split()]
    except OSError:
        pass
    return out


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode() for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def machine_ticks() -> list[int]:
    """The aggregate `cpu` line of /proc/stat: user nice system idle iowait irq
    softirq steal ..."""
    with open("/proc/stat") as f:
        return [int(v) for v in f.readline().split()[1:9]]


def machine_share(before: list[int], after: list[int]) -> dict[str, float]:
    """How the whole machine spent the interval, in percent of all CPUs: the
    benchmark shares it with whatever else runs (and with the hypervisor: steal)."""
    d = [b - a for a, b in zip(before, after)]
    total = max(sum(d), 1)
    idle = d[3] + d[4]
    return {"busy": round(100 * (total - idle - d[7]) / total, 1),
            "idle": round(100 * idle / total, 1), "steal": round(100 * d[7] / total, 1)}


@dataclass
class CpuMeter:
    """CPU used by a set of named processes between start() and stop()."""

    pids: dict[str, int]
    _t0: float = 0.0
    _c0: dict[str, float] = field(default_factory=dict)
    _m0: list[int] = field(default_factory=list)
    machine: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._t0 = time.monotonic()
        self._c0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._m0 = machine_ticks()

    def stop(self) -> dict[str, float]:
        """Percent of one core per process (200 = both cores busy)."""
        wall = max(time.monotonic() - self._t0, 1e-9)
        self.machine = machine_share(self._m0, machine_ticks())
        return {name: round(100 * (cpu_seconds(pid) - self._c0[name]) / wall, 1)
                for name, pid in self.pids.items()}


@dataclass
class Etcd:
    data_dir: Path
    client_port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.client_port}"

    def stop(self) -> None:
        stop_process(self.proc)


def start_etcd(data_dir: Path, timeout: float = 30.0) -> Etcd:
    if not os.path.exists(ETCD_BINARY):
        raise RuntimeError(f"{ETCD_BINARY} not found")
    client, peer = free_port(), free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [ETCD_BINARY, "--name", "bench", "--data-dir", str(data_dir / "etcd"),
            "--listen-client-urls", f"http://127.0.0.1:{client}",
            "--advertise-client-urls", f"http://127.0.0.1:{client}",
            "--listen-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls", f"http://127.0.0.1:{peer}",
            "--initial-cluster", f"bench=http://127.0.0.1:{peer}",
            "--listen-metrics-urls", f"http://127.0.0.1:{free_port()}"]
    log = open(data_dir / "etcd.log", "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    etcd = Etcd(data_dir, client, proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"etcd exited with {proc.returncode}; see {data_dir}/etcd.log")
        try:
            with urllib.request.urlopen(etcd.url + "/health", timeout=2) as r:
                if r.status == 200:
                    return etcd
        except OSError:
            pass
        time.sleep(0.2)
    etcd.stop()
    raise RuntimeError(f"etcd not healthy in {timeout}s")


@dataclass
class Server:
    data_dir: Path
    port: int
    proc: subprocess.Popen

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pki(self) -> Path:
        return self.data_dir / "pki"

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        ctx.load_cert_chain(str(self.pki / "admin.crt"), str(self.pki / "admin.key"))
        return ctx

    def apiserver_pid(self) -> int:
        """The process serving the API: the `apiserver` child of the supervisor
        (or the server process itself in a single-process mode)."""
        for pid in children(self.proc.pid):
            argv = cmdline(pid)
            if "apiserver" in argv:
                return pid
        return self.proc.pid

    def log(self) -> str:
        try:
            return (self.data_dir / "server.out").read_text()[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        stop_process(self.proc)


def start_server(data_dir: Path, storage: str, etcd_url: str | None = None,
                 timeout: float = 60.0, extra: list[str] | None = None) -> Server:
    """`pybernetes server` (every component it runs by default but the node-wide network
    ones: proxy, dns and ingress program nftables and take ports 53/80/443 of this machine)
    with `extra` flags added, e.g. `--kubelet-arg fake-nodes=100` or `--disable kubelet`."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "pybernetes.cli.main", "server", "--data-dir", str(data_dir),
            "--https-listen-port", str(port), "--storage", storage,
            "--disable", "proxy", "--disable", "dns", "--disable", "ingress"]
    if etcd_url:
        argv += ["--etcd-endpoints", etcd_url]
    argv += extra or []
    log = open(data_dir / "server.out", "ab")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    server = Server(data_dir, port, proc)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log()}")
        if (data_dir / "admin.kubeconfig").exists() and _ready(server):
            return server
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"server not ready in {timeout}s:\n{server.log()}")


def _ready(server: Server) -> bool:
    try:
        with urllib.request.urlopen(server.url + "/readyz", context=server.ssl_context(),
                                    timeout=2) as r:
            return r.status == 200
    except (OSError, ssl.SSLError):
        return False


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the process group we started, SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)
    except ProcessLookupError:
        pass


def py_spy() -> str | None:
    """py-spy from the venv (pip install py-spy) or PATH."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def run_recorded(run: Callable[[], None], result: dict, tmp: Path, keep: bool,
                 log: Callable[[str], None]) -> None:
    """Run a benchmark; a failure is recorded in result["error"] (the JSON still
    tells how far it got) and the scratch dir `tmp` goes unless `keep`."""
    try:
        run()
    except Exception as e:  # noqa: BLE001 - recorded, not raised
        result["error"] = f"{type(e).__name__}: {e}"
        log(f"FAILED: {result['error']}")
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)
