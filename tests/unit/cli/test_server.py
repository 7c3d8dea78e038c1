"""`pybernetes server` as a user runs it: a real process, real signals, real kubectl."""
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time

import pytest

from pybernetes.auth.kubeconfig import read_kubeconfig

ROOT = __file__.rsplit("/tests/", 1)[0]
KUBECTL = shutil.which("kubectl.1.33", path="/usr/lib/google-cloud-sdk/bin") or shutil.which("kubectl")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _children(pid: int) -> set[int]:
    """All descendants of pid (Linux /proc)."""
    out: set[int] = set()
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            kids = [int(k) for k in f.read().split()]
    except FileNotFoundError:
        return out
    for k in kids:
        out |= {k} | _children(k)
    return out


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Server:
    def __init__(self, tmp_path, *extra: str, port: int | None = None):
        self.data_dir = tmp_path / "data"
        self.port = port or _free_port()
        self.err_path = tmp_path / f"server-{time.monotonic_ns()}.err"
        self.argv = [sys.executable, "-m", "pybernetes.cli.main", "server",
                     "--data-dir", str(self.data_dir), "--https-listen-port", str(self.port),
                     *extra]
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Server":
        self.err = open(self.err_path, "w")
        self.proc = subprocess.Popen(self.argv, cwd=ROOT, stdout=subprocess.DEVNULL,
                                     stderr=self.err)
        return self

    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait_for(self, text: str, timeout: float = 60) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.stderr():
                return True
            if self.proc.poll() is not None:
                return text in self.stderr()
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            for pid in _children(self.proc.pid):
                os.kill(pid, signal.SIGKILL)
            self.proc.kill()
            self.proc.wait()
        if self.proc:
            self.err.close()


# the other components program this machine's network (nftables, ports 53/80/443, a pod
# bridge) and have tests of their own
ONLY_THE_API_SERVER = [a for c in ("controller-manager", "scheduler", "kubelet", "proxy", "dns",
                                   "ingress") for a in ("--disable", c)]


@pytest.fixture
def servers():
    started: list[Server] = []
    yield started
    for s in started:
        s.stop()


def _apiserver_available() -> bool:
    try:
        import pybernetes.apiserver.server  # noqa: F401
    except ImportError:
        return False
    return True


def test_second_server_on_same_data_dir_fails_fast(tmp_path, servers):
    kubeconfig = tmp_path / "kube" / "config"
    first = Server(tmp_path, "--write-kubeconfig", str(kubeconfig), "--bind-address", "0.0.0.0",
                   *ONLY_THE_API_SERVER)
    servers.append(first.start())
    assert first.wait_for("starting apiserver", 30), first.stderr()
    for path in (kubeconfig, first.data_dir / "admin.kubeconfig"):
        assert f"wrote kubeconfig {path}" in first.stderr()
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert read_kubeconfig(str(path))["server"] == f"https://127.0.0.1:{first.port}"
    second = Server(tmp_path)  # same data dir, other port
    servers.append(second)
    out = subprocess.run(second.argv, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert "is in use by another pybernetes server" in out.stderr
    assert f"(pid {first.proc.pid})" in out.stderr
    assert first.proc.poll() is None  # the first one is untouched

    kids = _children(first.proc.pid)
    first.proc.send_signal(signal.SIGTERM)
    assert first.proc.wait(timeout=20) == 0
    assert "stopped" in first.stderr()
    assert not [k for k in kids if _alive(k)]


def test_busy_port_fails_fast(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        s = Server(tmp_path, port=port)
        out = subprocess.run(s.argv, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in out.stderr


@pytest.mark.parametrize("flags,message", [
    (["--service-cidr", "10.1.0.0/30"], "--service-cidr 10.1.0.0/30: too small"),
    (["--cluster-dns", "10.44.0.10"], "--cluster-dns 10.44.0.10: not inside --service-cidr "
                                      "10.43.0.0/16"),
    (["--service-node-port-range", "32000-31000"], "--service-node-port-range: want LOW-HIGH"),
])
def test_bad_service_flags_fail_fast(tmp_path, flags, message):
    out = subprocess.run(Server(tmp_path, *flags).argv, cwd=ROOT, capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2
    assert message in out.stderr


@pytest.mark.kubectl
@pytest.mark.skipif(not _apiserver_available(), reason="pybernetes.apiserver.server not ready")
@pytest.mark.skipif(KUBECTL is None, reason="no kubectl")
def test_server_end_to_end(tmp_path, servers):
    kubeconfig = tmp_path / "home" / "kubeconfig"
    # the node-wide network components (nftables, port 53, ports 80/443) stay off in tests
    s = Server(tmp_path, "--write-kubeconfig", str(kubeconfig), "--service-cidr", "10.231.0.0/16",
               *ONLY_THE_API_SERVER)
    servers.append(s.start())
    assert s.wait_for("pybernetes is ready", 90), s.stderr()
    err = s.stderr()
    for step in ("generating certificates", "starting apiserver",
                 "waiting for apiserver to be ready", f"export KUBECONFIG={kubeconfig}"):
        assert step in err
    assert (s.data_dir / "admin.kubeconfig").exists()
    assert (s.data_dir / "logs" / "apiserver.log").exists()

    for cfg in (kubeconfig, s.data_dir / "admin.kubeconfig"):
        out = subprocess.run([KUBECTL, "--kubeconfig", str(cfg), "get", "--raw", "/readyz"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "ok"

    out = subprocess.run([KUBECTL, "--kubeconfig", str(kubeconfig), "get", "service",
                          "kubernetes", "-o", "jsonpath={.spec.clusterIP}"],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout == "10.231.0.1", "the API server's Service takes --service-cidr's first IP"

    kids = _children(s.proc.pid)
    assert kids, "the apiserver runs as a child process"
    s.proc.send_signal(signal.SIGTERM)
    assert s.proc.wait(timeout=20) == 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and [k for k in kids if _alive(k)]:
        time.sleep(0.1)
    assert not [k for k in kids if _alive(k)]
