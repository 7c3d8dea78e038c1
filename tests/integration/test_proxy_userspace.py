"""The userspace proxy with real sockets and no root features: backends on loopback
addresses (127.0.0.x), node ports on 127.0.0.1, a loopback address standing in for a
cluster IP. Connections spread evenly, stick with ClientIP affinity, are refused at
once without endpoints, never reach a removed endpoint after the sync, half-close both
ways; UDP answers; and the whole thing driven by a real API server's Services and
EndpointSlices (created with the real kubectl)."""
from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from typing import AsyncIterator

import pytest

from pybernetes.proxy.model import Endpoint, ServicePort
from pybernetes.proxy.userspace import START_MESSAGE, UserspaceOptions, UserspaceProxier
from tests.conftest import Cluster, Kubectl, free_port, kubectl_binary, start_cluster

BACKENDS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
VIP = "127.0.0.50"   # a local address, as every VIP is once the service CIDR is on lo


class Backends:
    """TCP servers that answer each connection with their own address, after reading
    the request to its end (so half-close must work), and a UDP echo of the same."""

    def __init__(self) -> None:
        self.port = free_port()
        self.servers: list = []
        self.hits: Counter = Counter()

    async def start(self, ips: list[str]) -> None:
        loop = asyncio.get_running_loop()
        for ip in ips:
            self.servers.append(await asyncio.start_server(
                lambda r, w, ip=ip: self._answer(ip, r, w), ip, self.port))
            self.servers.append((await loop.create_datagram_endpoint(
                lambda ip=ip: _UDPEcho(ip), local_addr=(ip, self.port)))[0])

    async def _answer(self, ip: str, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter) -> None:
        await reader.read()            # until the client's EOF
        self.hits[ip] += 1
        writer.write(ip.encode())
        await writer.drain()
        writer.close()

    def close(self) -> None:
        for s in self.servers:
            s.close()


class _UDPEcho(asyncio.DatagramProtocol):
    def __init__(self, ip: str):
        self.ip = ip

    def connection_made(self, transport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr) -> None:
        self.transport.sendto(self.ip.encode() + b":" + data, addr)


def service_port(ips: list[str], port: int, node_port: int = 0, protocol: str = "TCP",
                 affinity: int = 0, name: str = "web") -> ServicePort:
    eps = tuple(Endpoint(ip, port, True, True, False, "node-a") for ip in ips)
    return ServicePort("default", name, "", protocol, (VIP,), 80, node_port, (), (),
                       affinity, False, False, eps)


async def ask(ip: str, port: int, source: str = "127.0.0.1") -> str:
    """One request: connect (from `source`), send, half-close, read the answer."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(ip, port, local_addr=(source, 0)), 10)
    writer.write(b"GET / HTTP/1.0\r\n\r\n")
    writer.write_eof()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return answer.decode()


@pytest.fixture
async def backends() -> AsyncIterator[Backends]:
    b = Backends()
    await b.start(BACKENDS)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
async def proxier() -> AsyncIterator[UserspaceProxier]:
    p = UserspaceProxier("node-a", ("127.0.0.1",))
    try:
        yield p
    finally:
        await p.close()


async def test_even_spread_over_node_port_and_cluster_ip(backends, proxier) -> None:
    node_port = free_port()
    await proxier.sync([service_port(BACKENDS, backends.port, node_port)])
    answers = Counter([await ask("127.0.0.1", node_port) for _ in range(150)] +
                      [await ask(VIP, 80) for _ in range(150)])
    assert set(answers) == set(BACKENDS)
    assert min(answers.values()) >= 0.2 * 300, answers


async def test_client_ip_affinity_sticks(backends, proxier) -> None:
    node_port = free_port()
    await proxier.sync([service_port(BACKENDS, backends.port, node_port, affinity=60)])
    for source in ("127.0.0.11", "127.0.0.12", "127.0.0.13"):
        seen = {await ask("127.0.0.1", node_port, source) for _ in range(10)}
        assert len(seen) == 1, (source, seen)


async def test_no_endpoints_refuses_at_once(backends, proxier) -> None:
    node_port = free_port()
    await proxier.sync([service_port([], backends.port, node_port)])
    for ip, port in (("127.0.0.1", node_port), (VIP, 80)):
        with pytest.raises(ConnectionRefusedError):
            await ask(ip, port)
    # endpoints arrive: it answers; they go: refused again
    await proxier.sync([service_port(BACKENDS[:1], backends.port, node_port)])
    assert await ask(VIP, 80) == BACKENDS[0]
    await proxier.sync([service_port([], backends.port, node_port)])
    with pytest.raises(ConnectionRefusedError):
        await ask(VIP, 80)


async def test_a_removed_endpoint_gets_no_more_connections(backends, proxier) -> None:
    node_port = free_port()
    await proxier.sync([service_port(BACKENDS, backends.port, node_port)])
    assert {await ask(VIP, 80) for _ in range(6)} == set(BACKENDS)
    await proxier.sync([service_port(BACKENDS[:2], backends.port, node_port)])
    before = backends.hits[BACKENDS[2]]
    answers = {await ask(VIP, 80) for _ in range(50)}
    assert answers == set(BACKENDS[:2])
    assert backends.hits[BACKENDS[2]] == before


async def test_a_dead_endpoint_is_skipped(backends, proxier) -> None:
    node_port = free_port()
    dead = "127.0.0.9"   # nothing listens there: refused, the next endpoint is tried
    await proxier.sync([service_port([dead] + BACKENDS[:1], backends.port, node_port)])
    assert {await ask(VIP, 80) for _ in range(6)} == {BACKENDS[0]}


async def test_udp_answers_through_the_proxy(backends, proxier) -> None:
    node_port = free_port()
    await proxier.sync([service_port(BACKENDS, backends.port, node_port, protocol="UDP")])
    loop = asyncio.get_running_loop()
    got: asyncio.Queue = asyncio.Queue()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data, addr) -> None:
            got.put_nowait(data)

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1",
                                                                            node_port))
    try:
        for i in range(3):
            transport.sendto(f"ping {i}".encode())
            answer = await asyncio.wait_for(got.get(), 10)
            assert answer.split(b":", 1)[1] == f"ping {i}".encode()
            assert answer.split(b":", 1)[0].decode() in BACKENDS
    finally:
        transport.close()


async def test_big_transfers_both_ways(proxier) -> None:
    """A 16 MiB upload echoed back: flow control and half-close under load."""
    port = free_port()

    async def echo(reader, writer) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, BACKENDS[0], port)
    try:
        node_port = free_port()
        await proxier.sync([service_port(BACKENDS[:1], port, node_port)])
        reader, writer = await asyncio.open_connection("127.0.0.1", node_port)
        blob = bytes(range(256)) * 65536

        async def send() -> None:
            writer.write(blob)
            await writer.drain()
            writer.write_eof()
        sender = asyncio.create_task(send())
        back = await asyncio.wait_for(reader.read(-1), 60)
        await sender
        writer.close()
        assert back == blob
    finally:
        server.close()


# -- driven by the API --------------------------------------------------------------------

@pytest.fixture(scope="module")
def kc(kubectl: Kubectl) -> Kubectl:
    return kubectl


def slice_for(service: str, ips: list[str], port: int, port_name: str = "80-80") -> dict:
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service}-manual",
                         "labels": {"kubernetes.io/service-name": service}},
            "addressType": "IPv4", "ports": [{"name": port_name, "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [ip], "conditions": {"ready": True}} for ip in ips]}


@pytest.mark.kubectl
async def test_run_userspace_follows_the_api(cluster: Cluster, kc: Kubectl, backends,
                                             caplog: pytest.LogCaptureFixture) -> None:
    from pybernetes.client.api import APIClient
    from pybernetes.proxy.userspace import run_userspace
    kc("create", "service", "nodeport", "web", "--tcp=80:80")
    svc = json.loads(kc("get", "svc", "web", "-o", "json"))
    node_port = svc["spec"]["ports"][0]["nodePort"]
    client = await APIClient.from_kubeconfig(cluster.kubeconfig)
    opts = UserspaceOptions(node_name="node-a", node_ips=("127.0.0.1",), reason="test",
                            min_sync_period=0.1)
    caplog.set_level(logging.INFO, "pybernetes.proxy")
    task = asyncio.create_task(run_userspace(client, opts))
    try:
        await asyncio.sleep(1)
        assert START_MESSAGE.split(":")[0] in caplog.text
        with pytest.raises(ConnectionRefusedError):   # no endpoints yet
            await ask("127.0.0.1", node_port)
        kc("apply", "-f", "-", input=json.dumps(slice_for("web", BACKENDS, backends.port)))
        await wait_answers(node_port, set(BACKENDS))
        kc("apply", "-f", "-", input=json.dumps(slice_for("web", BACKENDS[:1], backends.port)))
        await wait_answers(node_port, {BACKENDS[0]})
        kc("delete", "svc", "web")
        await wait_refused(node_port)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await client.close()
    with pytest.raises(OSError):   # nothing is left listening
        socket.create_connection(("127.0.0.1", node_port), timeout=5).close()


async def wait_answers(port: int, want: set[str], tries: int = 100) -> None:
    for _ in range(tries):
        try:
            if {await ask("127.0.0.1", port) for _ in range(6)} == want:
                return
        except OSError:
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"node port {port} never answered from exactly {want}")


async def wait_refused(port: int, tries: int = 100) -> None:
    for _ in range(tries):
        try:
            await ask("127.0.0.1", port)
        except ConnectionRefusedError:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"node port {port} still answers")


# -- `pybernetes proxy --proxy-mode userspace` as root: cluster IPs on lo ------------------

SERVICE_CIDR = f"10.{230 + os.getpid() % 20}.0.0/16"   # clear of the e2e modules' ranges


def local_route() -> str:
    return subprocess.run(["ip", "route", "show", "table", "local", "exact", SERVICE_CIDR],
                          capture_output=True, text=True).stdout.strip()


@pytest.mark.kubectl
@pytest.mark.skipif(os.geteuid() != 0, reason="routing the service CIDR to lo needs root")
async def test_the_command_serves_cluster_ips_as_root(tmp_path, backends) -> None:
    """The real command in userspace mode: it routes its service CIDR to lo, so the
    Service's own cluster IP answers; a Service without endpoints is refused; SIGTERM
    removes the route."""
    assert not local_route(), f"{SERVICE_CIDR} is already routed here"
    c = start_cluster(tmp_path / "cluster", extra=["--service-cidr", SERVICE_CIDR])
    proxy = None
    try:
        kc = Kubectl(kubectl_binary("1.33") or kubectl_binary() or "kubectl", c.kubeconfig)
        # a port no host process holds on 0.0.0.0 (a wildcard listener there would own
        # the VIP's port too: the userspace proxy could not bind it)
        port = wildcard_free_port()
        kc("create", "service", "clusterip", "web", f"--tcp={port}:80")
        kc("create", "service", "clusterip", "nobody", f"--tcp={port}:80")
        kc("apply", "-f", "-", input=json.dumps(slice_for("web", BACKENDS, backends.port,
                                                          f"{port}-80")))
        vip = svc_ip(kc, "web")
        proxy = subprocess.Popen(
            [sys.executable, "-m", "pybernetes.cli.main", "proxy", "--proxy-mode", "userspace",
             "--kubeconfig", c.kubeconfig, "--hostname-override", "node-a",
             "--service-cluster-ip-range", SERVICE_CIDR, "--min-sync-period", "100ms"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(150):
            try:
                if {await ask(vip, port) for _ in range(6)} == set(BACKENDS):
                    break
            except OSError:
                pass
            await asyncio.sleep(0.2)
        assert {await ask(vip, port) for _ in range(6)} == set(BACKENDS)
        assert local_route().startswith(f"local {SERVICE_CIDR} dev lo")
        with pytest.raises(ConnectionRefusedError):
            await ask(svc_ip(kc, "nobody"), port)
        proxy.send_signal(signal.SIGTERM)
        out, _ = proxy.communicate(timeout=30)
        assert "userspace proxy: slower" in out
        assert proxy.returncode == 0, out
        assert not local_route()
    finally:
        if proxy is not None and proxy.poll() is None:
            proxy.kill()
            proxy.wait(10)
        c.stop()
        if local_route():   # only if the proxy died without its cleanup
            subprocess.run(["ip", "route", "del", "local", SERVICE_CIDR, "dev", "lo", "table",
                            "local"], capture_output=True)


def svc_ip(kc: Kubectl, name: str) -> str:
    return json.loads(kc("get", "svc", name, "-o", "json"))["spec"]["clusterIP"]


def wildcard_free_port() -> int:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        return s.getsockname()[1]
