"""The node's pod network, as the runc runtime asks for it: one bridge (cni0-like)
carrying the node's podCIDR, one veth per pod, addresses from host-local IPAM and
hostPorts through portmap — the real CNI plugins, configured the way k3s/kubenet
configure them:

    loopback                    its own attachment (ifname "lo"), as containerd does
    bridge  + host-local        isGateway (the gateway address lives on the bridge, so
                                the podCIDR route is local to this machine),
                                hairpinMode; a default route in the pod via the gateway;
                                masquerading (ip_masq) by one set of node rules for the
                                podCIDR, as kubenet does (masquerade.py), not by
                                bridge's per-pod ipMasq chains
    portmap                     capabilities.portMappings <- the sandbox's hostPorts;
                                only in the chain of a pod that has hostPorts

Each plugin is a process, and the node's pod start rate is bound by them, so a pod
runs no more of them than it needs: portmap (and the loopback guard, an iptables
call) only for pods with hostPorts, the loopback and bridge attachments at the same
time, no loopback DEL (it only sets `lo` down inside a namespace that is about to go;
nothing of it lives outside) and the NAT sweep only when bridge could not clean up
itself (the namespace was gone).

The network namespace itself belongs to the runtime (see `netns.py`): `setup` wires
an existing namespace, `teardown` unwires it and may run after the namespace is gone,
twice, or in a new process (the CNI result cache is on disk under `state_dir`).
Call teardown *before* removing the namespace when you can (bridge then finds the
addresses to unmasquerade itself); afterwards still works, via sweep_nat_rules.

hostPorts (portmap's DNAT, hooked for every local destination address) answer on
127.0.0.1, on the node's addresses including the bridge gateway, from other pods via
the gateway, and from the pod itself (hairpin). Localhost needs route_localnet on
the bridge, which portmap sets; the INPUT guard below keeps that from opening the
node's loopback to pods. The bridge plugin (isGateway) also turns on
net.ipv4.ip_forward, as any Kubernetes node needs."""
from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import re
import shlex
import shutil
import time

from ..runtime.base import PortMapping, SandboxConfig
from . import masquerade, netns
from .commands import run
from .cni import CNI, DEFAULT_BIN_DIRS, CNIError, RuntimeConf

log = logging.getLogger(__name__)

CNI_VERSION = "1.0.0"      # what Debian's containernetworking-plugins 1.1.1 speak
LOOPBACK_NETWORK = "cni-loopback"
_GUARD_COMMENT = "pybernetes: pods on {bridge} may not reach host loopback"
_GUARD_RE = re.compile(r'--comment "pybernetes: pods on (\S+) may not reach host loopback"')
GUARD_RECHECK = 30.0   # seconds between checks of the guard for pods without hostPorts

__all__ = ["PodNetwork", "CNIError"]


class PodNetwork:
    def __init__(self, *, pod_cidr: str, state_dir: str, bridge: str = "pyb0",
                 gateway: str | None = None, cni_bin_dir: str | list[str] | None = None,
                 hairpin: bool = True, ip_masq: bool = True, name: str = "pybernetes",
                 mtu: int = 0):
        net = ipaddress.ip_network(pod_cidr, strict=False)
        if len(bridge) > 15:
            raise ValueError(f"bridge name {bridge!r} is longer than 15 characters")
        self.pod_cidr = str(net)
        self.gateway = gateway or str(next(net.hosts()))
        self.bridge, self.name = bridge, name
        self.hairpin, self.ip_masq, self.mtu = hairpin, ip_masq, mtu
        self.state_dir = state_dir
        bin_dirs = [cni_bin_dir] if isinstance(cni_bin_dir, str) else cni_bin_dir
        self.cni = CNI(bin_dirs or list(DEFAULT_BIN_DIRS),
                       cache_dir=os.path.join(state_dir, "cache"))
        self._swept = False
        self._guard_lock = asyncio.Lock()
        self._guard_checked = 0.0     # monotonic time of the last check of the guard
        self._masq_lock = asyncio.Lock()
        self._masq_checked = 0.0      # ... and of the masquerade rules

    @property
    def ipam_dir(self) -> str:
        """host-local keeps one lease file per address under <ipam_dir>/<network name>."""
        return os.path.join(self.state_dir, "ipam")

    def conflist(self, host_ports: bool = True) -> dict:
        """The pod network's list; without portmap for a pod that has no hostPort
        (teardown without a cached attachment uses the whole list)."""
        bridge: dict = {
            "type": "bridge", "bridge": self.bridge, "isGateway": True,
            "ipMasq": False, "hairpinMode": self.hairpin,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": self.pod_cidr, "gateway": self.gateway}]],
                "routes": [{"dst": "0.0.0.0/0"}],
                "dataDir": self.ipam_dir,
            },
        }
        if self.mtu:
            bridge["mtu"] = self.mtu
        plugins = [bridge]
        if host_ports:
            plugins.append({"type": "portmap", "capabilities": {"portMappings": True},
                            "snat": True})
        return {"cniVersion": CNI_VERSION, "name": self.name, "plugins": plugins}

    @staticmethod
    def loopback_conflist() -> dict:
        return {"cniVersion": CNI_VERSION, "name": LOOPBACK_NETWORK,
                "plugins": [{"type": "loopback"}]}

    async def setup(self, netns_path: str, cfg: SandboxConfig,
                    sandbox_id: str | None = None) -> list[str]:
        """Attach the pod's namespace; return its IPs (primary first). On failure the
        partial attachment is undone and the plugin's error (CNIError) raised."""
        if cfg.host_network:
            return []
        cid = sandbox_id or default_sandbox_id(cfg)
        ports = _has_host_ports(cfg)
        await self._guard_host_loopback(ports)
        await self._masquerade()
        # two attachments that do not touch each other: made at the same time
        lo, eth0 = await asyncio.gather(
            self.cni.add_list(self.loopback_conflist(), self._rt(cid, netns_path, cfg, "lo")),
            self.cni.add_list(self.conflist(host_ports=ports),
                              self._rt(cid, netns_path, cfg, "eth0")),
            return_exceptions=True)
        failed = next((r for r in (eth0, lo) if isinstance(r, BaseException)), None)
        if failed is not None:
            try:
                await self.teardown(netns_path, cfg, sandbox_id=cid)
            except Exception:   # the ADD error is the one worth reporting
                log.exception("cleanup after a failed CNI ADD for %s", cid)
            raise failed
        assert isinstance(eth0, dict)
        ips = [ip["address"].split("/")[0] for ip in eth0.get("ips", [])]
        log.info("pod %s/%s: network ready on %s, ips %s", cfg.namespace, cfg.name,
                 self.bridge, ips)
        return ips

    async def teardown(self, netns_path: str, cfg: SandboxConfig,
                       sandbox_id: str | None = None) -> None:
        """Detach the pod (idempotent): veth, IP lease and portmap rules go."""
        if cfg.host_network:
            return
        cid = sandbox_id or default_sandbox_id(cfg)
        # A path that no longer pins a namespace is passed as "", which the spec's
        # plugins take as "already gone" instead of failing to open it.
        path = netns_path if netns_path and netns.is_netns(netns_path) else ""
        await self.cni.del_list(self.conflist(), self._rt(cid, path, cfg, "eth0"))
        self.cni.forget(LOOPBACK_NETWORK, self._rt(cid, path, cfg, "lo"))
        if not path:
            # bridge's ipMasq rules of attachments made before the node masqueraded
            # (bridge removes them only for the addresses it finds on the pod's
            # interface): with the namespace gone they, and anything else tagged with
            # this attachment, are left to sweep
            await sweep_nat_rules(self.name, cid)

    async def check(self, netns_path: str, cfg: SandboxConfig,
                    sandbox_id: str | None = None) -> None:
        """CNI CHECK of the pod's attachment (raises CNIError when it drifted)."""
        cid = sandbox_id or default_sandbox_id(cfg)
        await self.cni.check_list(self.conflist(), self._rt(cid, netns_path, cfg, "eth0"))

    async def remove_bridge(self) -> None:
        """Delete the bridge, its masquerade rules and its loopback guard (node
        shutdown, tests); no-op when they are absent."""
        await run(["ip", "link", "del", self.bridge], check=False)
        if shutil.which("iptables"):
            await masquerade.remove(self.bridge)
            for _ in range(64):     # bounded; duplicates only if processes raced
                code, _, _ = await run(["iptables", "-D", *self._guard_rule()], check=False)
                if code != 0:
                    break

    def _guard_rule(self) -> list[str]:
        return ["INPUT", "-i", self.bridge, "-d", "127.0.0.0/8", "-m", "conntrack",
                "!", "--ctstate", "RELATED,ESTABLISHED,DNAT", "-m", "comment", "--comment",
                _GUARD_COMMENT.format(bridge=self.bridge), "-j", "DROP"]

    async def _guard_host_loopback(self, host_ports: bool) -> None:
        """portmap turns on route_localnet for the bridge so that 127.0.0.1:hostPort
        works; that also lets a pod address the node's loopback-only services
        (CVE-2020-8558). Like kube-proxy, drop new connections from the bridge to
        127.0.0.0/8; replies of DNATed hostPort connections still pass. Checked (one
        `iptables -C`) before every pod with hostPorts, and every GUARD_RECHECK
        seconds while the bridge has route_localnet on, so a flushed INPUT chain
        heals itself; pods without hostPorts on a bridge without it need none."""
        if shutil.which("iptables") is None:
            return
        if not host_ports and (not self._route_localnet() or
                               time.monotonic() - self._guard_checked < GUARD_RECHECK):
            return
        async with self._guard_lock:     # concurrent setups: one rule, not many
            if not self._swept:
                await sweep_stale_guards(keep=self.bridge)
                self._swept = True
            rule = self._guard_rule()
            code, _, _ = await run(["iptables", "-C", *rule], check=False)
            if code != 0:
                await run(["iptables", "-I", rule[0], "1", *rule[1:]])
            self._guard_checked = time.monotonic()

    async def _masquerade(self) -> None:
        """The node's masquerade rules for the podCIDR: made before the first pod,
        checked again at most every GUARD_RECHECK seconds (a flushed nat table heals)."""
        if not self.ip_masq or shutil.which("iptables") is None:
            return
        if time.monotonic() - self._masq_checked < GUARD_RECHECK:
            return
        async with self._masq_lock:
            if time.monotonic() - self._masq_checked >= GUARD_RECHECK:
                await masquerade.ensure(self.bridge, self.pod_cidr)
                self._masq_checked = time.monotonic()

    def _route_localnet(self) -> bool:
        try:
            with open(f"/proc/sys/net/ipv4/conf/{self.bridge}/route_localnet") as f:
                return f.read().strip() == "1"
        except OSError:    # no bridge yet
            return False

    def _rt(self, cid: str, path: str, cfg: SandboxConfig, ifname: str) -> RuntimeConf:
        args = [("IgnoreUnknown", "1"), ("K8S_POD_NAMESPACE", cfg.namespace),
                ("K8S_POD_NAME", cfg.name), ("K8S_POD_INFRA_CONTAINER_ID", cid),
                ("K8S_POD_UID", cfg.pod_uid)]
        caps = {}
        ports = [port_mapping(p) for p in cfg.ports if p.host_port > 0]
        if ports:
            caps["portMappings"] = ports
        return RuntimeConf(container_id=cid, netns=path, ifname=ifname, args=args,
                           capability_args=caps)


def _has_host_ports(cfg: SandboxConfig) -> bool:
    return any(p.host_port > 0 for p in cfg.ports)


def port_mapping(p: PortMapping) -> dict:
    """A CRI PortMapping as the portMappings capability spells it."""
    entry = {"hostPort": p.host_port, "containerPort": p.container_port,
             "protocol": (p.protocol or "TCP").lower()}
    if p.host_ip:
        entry["hostIP"] = p.host_ip
    return entry


def default_sandbox_id(cfg: SandboxConfig) -> str:
    """The CNI container id when the runtime gives none: stable per pod attempt, so
    a teardown in a restarted process finds the same cache entry and leases."""
    if not cfg.pod_uid:
        raise ValueError("sandbox config has no pod_uid")
    return f"{cfg.pod_uid}-{cfg.attempt}"


async def sweep_nat_rules(network: str, cid: str) -> int:
    """Remove nat rules the plugins tagged for this attachment and chains left empty.

    bridge 1.1.1 undoes its ipMasq rules only for the addresses it finds on the pod's
    interface, so once the namespace is gone (a crash, a reboot, a runtime that
    removed it first) DEL leaves them behind; this finishes the job. Only rules
    whose comment names this network *and* container are touched."""
    if shutil.which("iptables-save") is None:
        return 0
    _, out, _ = await run(["iptables-save", "-t", "nat"], check=False)
    tag = f'name: "{network}" id: "{cid}"'
    rules = [argv for argv in (shlex.split(line) for line in out.decode().splitlines()
                               if line.startswith("-A ") and cid in line)
             if any(tag in a for a in argv)]
    chains: list[str] = []
    for argv in rules:
        await run(["iptables", "-t", "nat", "-D", *argv[1:]], check=False)
        target = argv[argv.index("-j") + 1] if "-j" in argv[:-1] else ""
        if target.startswith("CNI-") and not target.startswith("CNI-HOSTPORT-"):
            chains.append(target)
    for chain in dict.fromkeys(chains):
        _, listing, _ = await run(["iptables", "-t", "nat", "-S", chain], check=False)
        if len(listing.decode().split("\n-A ")) == 1:    # no rules of anyone else left
            await run(["iptables", "-t", "nat", "-X", chain], check=False)
    if rules:
        log.info("removed %d nat rules left by CNI for %s", len(rules), cid)
    return len(rules)


async def sweep_stale_guards(keep: str) -> int:
    """Drop loopback guards whose bridge no longer exists (a bridge deleted with
    `ip link del` instead of remove_bridge, or a crash): inert, but litter."""
    _, out, _ = await run(["iptables", "-S", "INPUT"], check=False)
    removed = 0
    for line in out.decode().splitlines():
        m = _GUARD_RE.search(line)
        if not m or m.group(1) == keep or os.path.exists(f"/sys/class/net/{m.group(1)}"):
            continue
        code, _, _ = await run(["iptables", "-D", *shlex.split(line)[1:]], check=False)
        removed += code == 0
    return removed
