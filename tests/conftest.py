"""Fixtures shared by the whole suite: a real `pybernetes server` on a random
loopback port with a temp data dir, and the real kubectl pointed at it."""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

KUBECTL_DIR = "/usr/lib/google-cloud-sdk/bin"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kubectl_versions() -> list[str]:
    """Installed pinned kubectl binaries, e.g. ['1.27', ..., '1.33']."""
    found = sorted(glob.glob(os.path.join(KUBECTL_DIR, "kubectl.1.*")),
                   key=lambda p: int(p.rsplit(".", 1)[1]))
    return [p.rsplit("kubectl.", 1)[1] for p in found]


def kubectl_binary(version: str | None = None) -> str | None:
    if version:
        path = os.path.join(KUBECTL_DIR, f"kubectl.{version}")
        return path if os.path.exists(path) else None
    return shutil.which("kubectl")


@dataclass
class Cluster:
    """A running `pybernetes server` (or apiserver) process."""

    data_dir: Path
    port: int
    proc: subprocess.Popen
    log_path: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> str:
        return str(self.data_dir / "admin.kubeconfig")

    def component_pid(self, name: str) -> int | None:
        """The pid of the server's `name` child (apiserver, scheduler, ...), from /proc."""
        for path in glob.glob(f"/proc/{self.proc.pid}/task/*/children"):
            try:
                pids = open(path).read().split()
            except OSError:
                continue
            for pid in pids:
                try:
                    argv = open(f"/proc/{pid}/cmdline", "rb").read().split(b"\0")
                except OSError:
                    continue
                if name.encode() in argv[:4]:  # python -m pybernetes.cli.main NAME ...
                    return int(pid)
        return None

    def has_default_service_account(self, namespace: str) -> bool:
        """Pods may be created there (ServiceAccount admission needs the account the
        controller manager makes for each namespace)."""
        status, _ = self.get_raw(f"/api/v1/namespaces/{namespace}/serviceaccounts/default",
                                 timeout=2)
        return status == 200

    def ssl_context(self) -> ssl.SSLContext:
        pki = self.data_dir / "pki"
        ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
        ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
        return ctx

    def get_raw(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        status, _, body = self.request("GET", path, timeout=timeout)
        return status, body

    def request(self, method: str, path: str, body: object = None,
                content_type: str = "application/json", headers: dict | None = None,
                timeout: float = 10.0, anonymous: bool = False) -> tuple[int, dict, bytes]:
        """One HTTPS request as the admin (or anonymous); returns (status, headers, body)."""
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", content_type)
        for k, v in (headers or {}).items():
            req.add_header(k, v)
        if anonymous:
            ctx = ssl.create_default_context(cafile=str(self.data_dir / "pki" / "ca.crt"))
        else:
            ctx = self.ssl_context()
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=timeout) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def json(self, method: str, path: str, body: object = None, **kw) -> tuple[int, dict]:
        status, _, raw = self.request(method, path, body, **kw)
        return status, json.loads(raw) if raw else {}

    def log(self) -> str:
        try:
            return self.log_path.read_text()[-6000:]
        except OSError:
            return ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        return self.proc.returncode


OPTIONAL_COMPONENTS = ("controller-manager", "scheduler", "kubelet", "proxy", "dns", "ingress")


def start_cluster(data_dir: Path, port: int | None = None, extra: list[str] | None = None,
                  timeout: float = 60.0, components: tuple[str, ...] = ()) -> Cluster:
    """`pybernetes server` with the API server plus the optional `components` asked
    for (none by default: API tests see no controller, scheduler or node)."""
    port = port or free_port()
    extra = [a for c in OPTIONAL_COMPONENTS if c not in components
             for a in ("--disable", c)] + (extra or [])
    if "controller-manager" not in components:
        # no one creates the default ServiceAccount: turn its admission off, as upstream's
        # integration tests do
        extra += ["--kube-apiserver-arg", "disable-admission-plugins=ServiceAccount"]
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "server.out"
    out = open(log_path, "ab")
    argv = [sys.executable, "-m", "pybernetes.cli.main", "server", "--data-dir", str(data_dir),
            "--https-listen-port", str(port)] + extra
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    cluster = Cluster(data_dir, port, proc, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"pybernetes server exited with {proc.returncode}:\n{cluster.log()}")
        if os.path.exists(cluster.kubeconfig):
            try:
                status, _ = cluster.get_raw("/readyz", timeout=2)
                if status == 200 and ("controller-manager" not in components or
                                      cluster.has_default_service_account("default")):
                    return cluster
            except (OSError, ssl.SSLError):
                pass
        time.sleep(0.2)
    cluster.stop(signal.SIGKILL)
    raise RuntimeError(f"pybernetes server not ready in {timeout}s:\n{cluster.log()}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory,
            request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A fresh server per test module (SQLite store): the API server plus the components
    the module names in CLUSTER_COMPONENTS, with its CLUSTER_FLAGS, if any."""
    c = start_cluster(tmp_path_factory.mktemp("cluster"),
                      components=getattr(request.module, "CLUSTER_COMPONENTS", ()),
                      extra=list(getattr(request.module, "CLUSTER_FLAGS", ())))
    try:
        yield c
    finally:
        c.stop()


def wait_for(what: str, check: Callable[[], Any], timeout: float = 30.0,
             interval: float = 0.2) -> Any:
    """Poll check() until it returns something truthy (returned); fail after `timeout`
    seconds naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last: {last!r}")


@dataclass
class Kubectl:
    binary: str
    kubeconfig: str

    def run(self, *args: str, input: str | None = None, check: bool = True,
            timeout: float = 60.0, env: dict | None = None) -> subprocess.CompletedProcess:
        full_env = dict(os.environ, KUBECONFIG=self.kubeconfig, HOME=os.environ.get("HOME", "/tmp"))
        full_env.update(env or {})
        p = subprocess.run([self.binary, *args], input=input, capture_output=True, text=True,
                           timeout=timeout, env=full_env)
        if check and p.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({p.returncode}):\n"
                                 f"stdout: {p.stdout}\nstderr: {p.stderr}")
        return p

    def __call__(self, *args: str, **kw) -> str:
        return self.run(*args, **kw).stdout


@pytest.fixture
def ns(kubectl: Kubectl, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace named after the test, deleted (not waited for) after it."""
    name = request.node.name.replace("_", "-")[:50].strip("-")
    kubectl("create", "namespace", name)
    yield name
    kubectl("delete", "namespace", name, "--wait=false")


def apply_items(kubectl: Kubectl, ns: str, *objs: dict) -> None:
    """`kubectl apply` these objects as one List into namespace `ns`."""
    kubectl("apply", "-n", ns, "-f", "-",
            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objs)}))


@pytest.fixture(scope="module")
def kubectl(cluster: Cluster) -> Kubectl:
    binary = kubectl_binary("1.33") or kubectl_binary()
    if binary is None:
        pytest.skip("no kubectl on this machine")
    return Kubectl(binary, cluster.kubeconfig)
