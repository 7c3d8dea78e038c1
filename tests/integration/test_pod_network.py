"""The pod network with the real CNI plugins (bridge, host-local, portmap, loopback):
pods in network namespaces get addresses from the node's range, reach each other,
the gateway and hostPorts, and leave nothing behind when they go.

Needs root, Debian's containernetworking-plugins, busybox-static, util-linux and
iptables. Each test uses its own bridge (`pybt<hex>`) and a 10.199.x.0/24 range, and
sends traffic only between namespaces it made and to local addresses (DESIGN §6)."""
from __future__ import annotations

import asyncio
import os
import random
import re
import secrets
import shutil
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field

import pytest

from pybernetes.kubelet.network import netns
from pybernetes.kubelet.network.cni import CNIError
from pybernetes.kubelet.network.pod_network import PodNetwork, default_sandbox_id
from pybernetes.kubelet.runtime.base import PortMapping, SandboxConfig

BUSYBOX = shutil.which("busybox")
_missing = [b for b in ("unshare", "nsenter", "ip", "iptables-save")
            if shutil.which(b) is None]
pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(not os.access("/usr/lib/cni/bridge", os.X_OK)
                       and not os.access("/opt/cni/bin/bridge", os.X_OK),
                       reason="containernetworking-plugins not installed"),
    pytest.mark.skipif(BUSYBOX is None, reason="busybox-static not installed"),
    pytest.mark.skipif(bool(_missing), reason=f"missing {_missing}"),
    pytest.mark.timeout(120),
]
_LEASE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def sh(*argv: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)


def links() -> str:
    return sh("ip", "-o", "link").stdout


def nat_rules() -> str:
    """Every table's rules (nat holds the plugins' rules, filter our guard)."""
    return sh("iptables-save").stdout


@dataclass
class Node:
    """One test's node network: a PodNetwork plus every namespace the test made."""

    net: PodNetwork
    ns_dir: str
    prefix: str                       # "10.199.N"
    pods: dict[str, tuple[str, SandboxConfig]] = field(default_factory=dict)

    async def pod(self, name: str, ports: list[PortMapping] | None = None) -> tuple[str, str]:
        """A namespace wired to the network; returns (netns path, pod IP)."""
        cfg = SandboxConfig(pod_uid=f"uid-{name}-{secrets.token_hex(3)}", name=name,
                            namespace="default", hostname=name, ports=ports or [])
        path = await netns.create(self.ns_dir, name)
        self.pods[name] = (path, cfg)
        ips = await self.net.setup(path, cfg)
        return path, ips[0]

    async def remove(self, name: str) -> None:
        path, cfg = self.pods.pop(name)
        await self.net.teardown(path, cfg)
        netns.delete(path)

    def bridge_ports(self) -> list[str]:
        out = sh("ip", "-o", "link", "show", "master", self.net.bridge).stdout
        return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines()]

    def leases(self) -> list[str]:
        d = os.path.join(self.net.ipam_dir, self.net.name)
        return [f for f in os.listdir(d) if _LEASE.match(f)] if os.path.isdir(d) else []

    def cached(self) -> list[str]:
        d = os.path.join(self.net.state_dir, "cache", "results")
        return os.listdir(d) if os.path.isdir(d) else []


def make_node(tmp_path, suffix: str = "") -> Node:
    third = random.randrange(0, 256)
    net = PodNetwork(pod_cidr=f"10.199.{third}.0/24", bridge=f"pybt{secrets.token_hex(2)}",
                     state_dir=str(tmp_path / f"state{suffix}"), ip_masq=True)
    return Node(net=net, ns_dir=str(tmp_path / f"netns{suffix}"), prefix=f"10.199.{third}")


async def cleanup(node: Node) -> None:
    for name in list(node.pods):
        try:
            await node.remove(name)
        except Exception:   # keep cleaning; the assertions below say what stayed
            netns.delete(node.pods.pop(name, ("", None))[0] or "/nonexistent")
    await node.net.remove_bridge()
    assert node.net.bridge not in links()
    assert node.net.bridge not in nat_rules()     # nor the loopback guard in filter


@pytest.fixture(autouse=True)
def forwarding_as_found():
    """The bridge plugin (isGateway) turns on IPv4 forwarding, as on any node. Put
    the machine back as found, unless some run still has pods on a bridge."""
    before = open("/proc/sys/net/ipv4/ip_forward").read().strip()
    yield
    if before == "0" and not sh("ip", "-o", "link", "show", "type", "veth").stdout:
        with open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write("0")


@pytest.fixture
async def node(tmp_path):
    n = make_node(tmp_path)
    try:
        yield n
    finally:
        await cleanup(n)


def run_in(path: str, *argv: str, timeout: float = 10) -> subprocess.CompletedProcess:
    return sh(*netns.nsenter_argv(path, list(argv)), timeout=timeout)


def ping(path: str, ip: str) -> bool:
    # Bounded retries: the first packets may race the veth coming up.
    for _ in range(5):
        if run_in(path, BUSYBOX, "ping", "-c", "1", "-W", "2", ip).returncode == 0:
            return True
    return False


class Greeter:
    """A TCP server opened *inside* a pod namespace (netns.entered), answering each
    connection with one line; runs in a thread, bounded in connections."""

    def __init__(self, path: str, port: int, text: bytes, max_conns: int = 10):
        with netns.entered(path):
            self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("0.0.0.0", port))
        self.sock.listen(8)
        self.sock.settimeout(30)
        self.text, self.max_conns = text, max_conns
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        for _ in range(self.max_conns):
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(self.text)

    def close(self) -> None:
        # shutdown wakes the thread blocked in accept(); close alone would not
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


def fetch_from(path: str, ip: str, port: int) -> str:
    for _ in range(5):
        out = run_in(path, BUSYBOX, "nc", "-w", "3", ip, str(port)).stdout
        if out:
            return out
    return ""


async def fetch_from_host(ip: str, port: int) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 5)
    try:
        return await asyncio.wait_for(reader.read(100), 5)
    finally:
        writer.close()


async def test_two_pods_talk_to_each_other_and_the_gateway(node: Node):
    a, ip_a = await node.pod("a")
    b, ip_b = await node.pod("b")
    assert ip_a.startswith(node.prefix + ".") and ip_b.startswith(node.prefix + ".")
    assert ip_a != ip_b and node.net.gateway not in (ip_a, ip_b)
    assert sorted(node.leases()) == sorted([ip_a, ip_b])

    # the pod side: eth0 with its address, lo up, a default route via the bridge
    addr = run_in(a, "ip", "-o", "-4", "addr", "show", "dev", "eth0").stdout
    assert f"{ip_a}/24" in addr
    assert "UP" in run_in(a, "ip", "-o", "link", "show", "lo").stdout
    assert f"default via {node.net.gateway}" in run_in(a, "ip", "route").stdout
    # the host side: the range's route is the bridge, never the default route
    assert f"dev {node.net.bridge}" in sh("ip", "route", "get", ip_a).stdout

    assert ping(a, ip_b) and ping(b, ip_a)
    assert ping(a, node.net.gateway)
    greeter = Greeter(a, 8080, b"hello from a\n")
    try:
        assert fetch_from(b, ip_a, 8080) == "hello from a\n"
    finally:
        greeter.close()

    await node.net.check(a, node.pods["a"][1])     # CNI CHECK agrees with the cache


async def test_teardown_leaves_nothing_and_is_idempotent(node: Node):
    a, ip_a = await node.pod("a", ports=[PortMapping(8080, random.randrange(30000, 32000))])
    b, _ = await node.pod("b")
    veths = node.bridge_ports()
    assert len(veths) == 2
    ids = [default_sandbox_id(cfg) for _, cfg in node.pods.values()]
    assert ids[0] in nat_rules()                      # a's portmap rules exist
    assert ids[1] not in nat_rules()                  # b has none: masquerading is the node's

    cfg_a, cfg_b = node.pods["a"][1], node.pods["b"][1]
    await node.remove("a")
    # the namespace goes first for b: DEL must still release what it held
    netns.delete(b)
    await node.net.teardown(b, cfg_b)
    node.pods.pop("b")
    # twice more, as a kubelet retrying would
    await node.net.teardown(a, cfg_a)
    await node.net.teardown(b, cfg_b)

    assert not os.path.exists(a) and not os.path.exists(b)
    assert node.leases() == [] and node.cached() == []
    rules = nat_rules()
    assert not any(i in rules for i in ids), rules
    assert "CNI-DN-" not in rules
    for _ in range(50):                # the kernel frees a dead netns' veths async
        if not any(v in links() for v in veths):
            break
        await asyncio.sleep(0.1)
    assert not any(v in links() for v in veths), links()


async def test_host_port(node: Node):
    host_port = random.randrange(30000, 32000)
    a, ip_a = await node.pod("a", ports=[PortMapping(8080, host_port)])
    b, _ = await node.pod("b")
    greeter = Greeter(a, 8080, b"via hostPort\n")
    try:
        # from the host, to the gateway address and to localhost (portmap turns on
        # route_localnet for the bridge only and masquerades 127.0.0.1)
        assert await fetch_from_host(node.net.gateway, host_port) == b"via hostPort\n"
        assert await fetch_from_host("127.0.0.1", host_port) == b"via hostPort\n"
        # from another pod, through the node's address (DNAT in PREROUTING)
        assert fetch_from(b, node.net.gateway, host_port) == "via hostPort\n"
        # hairpin: the pod reaching itself through its own hostPort
        assert fetch_from(a, node.net.gateway, host_port) == "via hostPort\n"
    finally:
        greeter.close()
    await node.remove("a")
    assert str(host_port) not in nat_rules()


async def test_teardown_after_restart_uses_the_cache(node: Node, tmp_path):
    host_port = random.randrange(30000, 32000)
    a, ip_a = await node.pod("a", ports=[PortMapping(8080, host_port)])
    path, cfg = node.pods.pop("a")
    # a new process: a fresh PodNetwork on the same state dir, and a config that no
    # longer carries the ports — the cached attachment still says what to undo
    again = PodNetwork(pod_cidr=node.net.pod_cidr, bridge=node.net.bridge,
                       state_dir=node.net.state_dir)
    bare = SandboxConfig(pod_uid=cfg.pod_uid, name=cfg.name, namespace=cfg.namespace,
                         hostname=cfg.hostname)
    assert len(node.cached()) == 2        # eth0 and lo attachments
    await again.teardown(path, bare)
    netns.delete(path)
    assert node.leases() == [] and node.cached() == []
    rules = nat_rules()
    assert default_sandbox_id(cfg) not in rules and str(host_port) not in rules


async def test_churn_of_twenty_pods_leaves_nothing(node: Node):
    names = [f"p{i}" for i in range(20)]
    ips = await asyncio.gather(*(node.pod(n) for n in names))
    assert len({ip for _, ip in ips}) == 20
    assert len(node.bridge_ports()) == 20 and len(node.leases()) == 20
    ids = [default_sandbox_id(cfg) for _, cfg in node.pods.values()]
    assert ping(ips[0][0], ips[-1][1])
    await asyncio.gather(*(node.remove(n) for n in names))
    assert node.bridge_ports() == [] and node.leases() == [] and node.cached() == []
    assert os.listdir(node.ns_dir) == []
    rules = nat_rules()
    assert not any(i in rules for i in ids)


async def test_exhausted_range_is_a_clear_error(tmp_path):
    small = make_node(tmp_path, "-small")
    third = int(small.prefix.rsplit(".", 1)[1])
    small.net = PodNetwork(pod_cidr=f"10.198.{third}.0/30", bridge=small.net.bridge,
                           state_dir=small.net.state_dir)
    try:
        _, ip = await small.pod("only")            # a /30 has one address besides .1
        assert ip == f"10.198.{third}.2"
        with pytest.raises(CNIError) as err:
            await small.pod("one-too-many")
        assert err.value.plugin == "bridge" and err.value.command == "ADD"
        assert "no IP addresses available" in str(err.value)
        assert 'plugin type="bridge"' in str(err.value)
        # the failed ADD was undone: only the first pod's veth and lease remain
        assert len(small.bridge_ports()) == 1 and small.leases() == [ip]
    finally:
        await cleanup(small)
    assert small.leases() == [] and small.cached() == []


async def test_netns_lifecycle(tmp_path):
    d = str(tmp_path / "netns")
    path = await netns.create(d, "solo")
    try:
        assert netns.is_netns(path)
        with pytest.raises(netns.NetNSError, match="already exists"):
            await netns.create(d, "solo")
        # a fresh namespace: only lo, and it is up
        code, out, _ = await netns.run_in(path, ["ip", "-o", "link"])
        assert code == 0 and out.decode().count("\n") == 1 and "LOOPBACK,UP" in out.decode()
        # the calling thread enters and comes back
        own = os.stat("/proc/thread-self/ns/net").st_ino
        with netns.entered(path):
            assert os.stat("/proc/thread-self/ns/net").st_ino == os.stat(path).st_ino
        assert os.stat("/proc/thread-self/ns/net").st_ino == own
    finally:
        netns.delete(path)
    assert not os.path.exists(path) and not netns.is_netns(path)
    netns.delete(path)                     # idempotent
    assert path not in open("/proc/self/mountinfo").read()
    with pytest.raises(netns.NetNSError, match="invalid"):
        await netns.create(d, "../escape")


async def test_pods_cannot_reach_the_hosts_loopback(node: Node):
    """portmap's route_localnet on the bridge must not expose 127.0.0.1-only host
    services to pods (CVE-2020-8558): a pod that routes 127.0.0.1 to the gateway
    gets nothing through, while localhost hostPorts keep working (test_host_port)."""
    a, _ = await node.pod("a", ports=[PortMapping(8080, random.randrange(30000, 32000))])
    assert sh("sysctl", "-n", f"net.ipv4.conf.{node.net.bridge}.route_localnet"
              ).stdout.strip() == "1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.settimeout(2)
        port = listener.getsockname()[1]
        # all inside the pod's own namespace: send 127.0.0.1 out of eth0
        script = (
            "sysctl -qw net.ipv4.conf.all.route_localnet=1 net.ipv4.conf.eth0.route_localnet=1"
            " && ip route del local 127.0.0.0/8 dev lo table local"
            " && ip route del local 127.0.0.1 dev lo table local"
            f" && ip route add 127.0.0.1/32 via {node.net.gateway} dev eth0"
            f" && {BUSYBOX} ping -c 1 -W 2 {node.net.gateway} >/dev/null"
            f" && {os.path.realpath(sys.executable)} -c 'import socket;"
            f" socket.socket(2, 2).sendto(b\"sneaky\", (\"127.0.0.1\", {port}))'")
        done = run_in(a, "sh", "-c", script)
        assert done.returncode == 0, done.stderr
        with pytest.raises(socket.timeout):
            listener.recvfrom(100)


async def test_a_deleted_bridges_guard_is_swept(node: Node):
    """A bridge removed with `ip link del` (not remove_bridge) leaves its loopback
    guard behind; the next PodNetwork to set up a pod with a hostPort drops it."""
    dead = f"pybt{secrets.token_hex(2)}x"
    rule = ["INPUT", "-i", dead, "-d", "127.0.0.0/8", "-m", "conntrack", "!", "--ctstate",
            "RELATED,ESTABLISHED,DNAT", "-m", "comment", "--comment",
            f"pybernetes: pods on {dead} may not reach host loopback", "-j", "DROP"]
    assert sh("iptables", "-A", *rule).returncode == 0
    try:
        await node.pod("a")                  # no hostPort: no guard needed, none made
        assert f"pods on {node.net.bridge} may not" not in nat_rules()
        await node.pod("b", ports=[PortMapping(8080, random.randrange(30000, 32000))])
        assert dead not in nat_rules()
        assert f"pods on {node.net.bridge} may not" in nat_rules()
    finally:
        sh("iptables", "-D", *rule)


async def test_masquerading_is_one_set_of_node_rules(node: Node):
    """Pods leaving the podCIDR are masqueraded by the node's rules for the whole
    podCIDR (as kubenet), made once: no pod adds nat rules of its own."""
    before = nat_rules()
    await node.pod("a")
    await node.pod("b")
    chain = f"PYB-MASQ-{node.net.bridge}"
    nat = sh("iptables", "-t", "nat", "-S").stdout
    assert f"-A POSTROUTING -s {node.net.pod_cidr} -m comment --comment " \
        f'"pybernetes: masquerade pods on {node.net.bridge}" -j {chain}' in nat
    assert f"-A {chain} -d {node.net.pod_cidr} -j RETURN" in nat
    assert f"-A {chain} -j MASQUERADE" in nat
    ids = [default_sandbox_id(cfg) for _, cfg in node.pods.values()]
    assert not any(i in nat_rules() for i in ids)
    # a flushed chain is made again (a new PodNetwork, as after a kubelet restart)
    assert sh("iptables", "-t", "nat", "-F", chain).returncode == 0
    again = PodNetwork(pod_cidr=node.net.pod_cidr, bridge=node.net.bridge,
                       state_dir=node.net.state_dir)
    node.net = again
    await node.pod("c")
    assert f"-A {chain} -j MASQUERADE" in sh("iptables", "-t", "nat", "-S", chain).stdout
    assert node.net.bridge not in before
