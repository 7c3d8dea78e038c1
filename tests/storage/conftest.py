"""Fixtures: a real etcd on random loopback ports, and a store per backend."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from pybernetes.storage.etcd import EtcdStore
from pybernetes.storage.sqlite import SQLiteStore

ETCD_BIN = shutil.which("etcd") or ("/usr/bin/etcd" if os.path.exists("/usr/bin/etcd") else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"etcd exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError("etcd did not start listening")


class EtcdServer:
    def __init__(self, data_dir: Path):
        self.data_dir = data_dir
        self.client_port, self.peer_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        peer = f"http://127.0.0.1:{self.peer_port}"
        cmd = [ETCD_BIN, "--name", "test", "--data-dir", str(self.data_dir),
               "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
               "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
               "--initial-cluster", f"test={peer}", "--log-level", "error",
               "--logger", "zap"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        _wait_port(self.client_port, self.proc)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    if ETCD_BIN is None:
        pytest.skip("etcd binary not installed (Debian package etcd-server)")
    server = EtcdServer(tmp_path_factory.mktemp("etcd") / "data")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def own_etcd(tmp_path: Path) -> Iterator[EtcdServer]:
    """An etcd for one test only (compaction and crash tests must not disturb others)."""
    if ETCD_BIN is None:
        pytest.skip("etcd binary not installed (Debian package etcd-server)")
    server = EtcdServer(tmp_path / "etcd-own")
    server.start()
    try:
        yield server
    finally:
        server.stop()


BACKENDS = ["sqlite", pytest.param("etcd", marks=pytest.mark.etcd)]


async def _open(request: pytest.FixtureRequest, tmp_path: Path, server_fixture: str):
    if request.param == "sqlite":
        s = SQLiteStore(str(tmp_path / "state.db"), poll_interval=0.05)
    else:
        server: EtcdServer = request.getfixturevalue(server_fixture)
        s = EtcdStore([server.url])
    await s.start()
    return s


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest, tmp_path: Path):
    """A started store of each backend. etcd is shared by the session: key under `ns`,
    and take revisions relative to `current_revision()` at the test's start."""
    s = await _open(request, tmp_path, "etcd_server")
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture(params=BACKENDS)
async def private_store(request: pytest.FixtureRequest, tmp_path: Path):
    """A store nobody else uses (its own etcd): for compaction."""
    s = await _open(request, tmp_path, "own_etcd")
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def ns() -> str:
    """A key root unique to the test, so tests sharing one etcd never see each other."""
    return f"/t{uuid.uuid4().hex[:10]}/"
