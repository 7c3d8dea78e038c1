"""A kubelet's Node: registering it, its status (capacity, conditions, addresses,
nodeInfo) and its heartbeat Lease in kube-node-lease (upstream's node lease
controller). Shared by every runtime: the fake one now, the real kubelet later.

Heartbeats work as upstream: the Lease is renewed every `heartbeat_period`
(a quarter of its 40 s duration by default) and the full node status is written
only every `status_update_period`, or at once when something changed (e.g. the
node lifecycle controller marked the node Unknown while this agent was away)."""
from __future__ import annotations

import asyncio
import copy
import logging
import platform
import random
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from pybernetes.client.api import LEASES, NODES, APIClient
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

LEASE_NAMESPACE = "kube-node-lease"
KUBELET_PORT = 10250   # upstream's default port of the kubelet's server

# Upstream's node conditions while all is well: type -> (status, reason, message).
HEALTHY_CONDITIONS = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory",
     "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)
# The same conditions under pressure (upstream's wording).
PRESSURE_CONDITIONS = {
    "MemoryPressure": ("KubeletHasInsufficientMemory",
                       "kubelet has insufficient memory available"),
    "DiskPressure": ("KubeletHasDiskPressure", "kubelet has disk pressure"),
    "PIDPressure": ("KubeletHasInsufficientPID", "kubelet has insufficient PID available"),
}
ARCH = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le",
        "s390x": "s390x"}


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """metav1.MicroTime, as Lease renewTime carries it."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def go_arch() -> str:
    m = platform.machine()
    return ARCH.get(m, m or "amd64")


def kube_version() -> str:
    from pybernetes.apiserver.app import KUBE_VERSION
    return KUBE_VERSION[2]


def pybernetes_version() -> str:
    try:
        from importlib.metadata import version
        return version("pybernetes")
    except Exception:  # noqa: BLE001 - a source tree that is not installed
        return "0.1.0"


def parse_taint(text: str) -> dict:
    """`key=value:Effect` or `key:Effect` (kubelet --register-with-taints)."""
    kv, sep, effect = text.rpartition(":")
    if not sep or not kv or effect not in ("NoSchedule", "PreferNoSchedule", "NoExecute"):
        raise ValueError(f"invalid taint {text!r}: want key=value:Effect with Effect one of "
                         "NoSchedule, PreferNoSchedule, NoExecute")
    key, _, value = kv.partition("=")
    taint = {"key": key, "effect": effect}
    if value:
        taint["value"] = value
    return taint


@dataclass
class NodeConfig:
    """What one node reports about itself."""

    name: str
    ip: str
    cpu: str = "32"
    memory: str = "256Gi"
    pods: int = 110
    labels: dict[str, str] = field(default_factory=dict)
    taints: list[dict] = field(default_factory=list)
    runtime_version: str = ""
    os_image: str = ""
    kubelet_port: int = 0   # where its server answers (logs, exec, ...); 0: it has none
    # the runtime's handlers ("" = its default), reported as status.runtimeHandlers
    runtime_handlers: list[str] = field(default_factory=list)

    def node_labels(self) -> dict[str, str]:
        arch = go_arch()
        return {"beta.kubernetes.io/arch": arch, "beta.kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch, "kubernetes.io/hostname": self.name,
                "kubernetes.io/os": "linux", **self.labels}

    def resources(self) -> dict[str, str]:
        return {"cpu": self.cpu, "memory": self.memory, "pods": str(self.pods)}

    def allocatable(self) -> dict[str, str]:
        """What pods may use (a real node keeps some back; a fake one all)."""
        return self.resources()

    def pressure(self) -> set[str]:
        """Conditions under pressure now (MemoryPressure, ...); a fake node has none."""
        return set()


def healthy_conditions(old: list[dict] | None = None,
                       pressure: set[str] | frozenset[str] = frozenset()) -> list[dict]:
    """The four conditions, heartbeat now, True for those in `pressure`; a condition
    keeps its lastTransitionTime while its status does not change."""
    now = now_rfc3339()
    before = {c.get("type"): c for c in old or []}
    out = []
    for type_, status, reason, message in HEALTHY_CONDITIONS:
        if type_ in pressure:
            status, (reason, message) = "True", PRESSURE_CONDITIONS[type_]
        prev = before.get(type_) or {}
        since = prev.get("lastTransitionTime") if prev.get("status") == status else None
        out.append({"type": type_, "status": status, "reason": reason, "message": message,
                    "lastHeartbeatTime": now, "lastTransitionTime": since or now})
    return out


def node_status(cfg: NodeConfig, boot_id: str, old: dict | None = None) -> dict:
    res = cfg.resources()
    old_conds = ((old or {}).get("status") or {}).get("conditions")
    return {
        "capacity": dict(res), "allocatable": dict(cfg.allocatable()),
        "conditions": healthy_conditions(old_conds, cfg.pressure()),
        "addresses": [{"type": "InternalIP", "address": cfg.ip},
                      {"type": "Hostname", "address": cfg.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": cfg.kubelet_port}},
        "nodeInfo": {"machineID": uuid.uuid5(uuid.NAMESPACE_DNS, cfg.name).hex,
                     "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_URL, cfg.name)),
                     "bootID": boot_id, "kernelVersion": platform.release(),
                     "osImage": cfg.os_image or "pybernetes", "operatingSystem": "linux",
                     "architecture": go_arch(),
                     "containerRuntimeVersion": cfg.runtime_version,
                     "kubeletVersion": kube_version()},
        **runtime_handlers_status(cfg.runtime_handlers),
    }


def runtime_handlers_status(handlers: list[str]) -> dict:
    """status.runtimeHandlers (v1.30+): one entry per handler, with the features the
    kubelet asks about; none of ours has recursive read-only mounts or user namespaces."""
    if not handlers:
        return {}
    return {"runtimeHandlers": [{"name": h, "features": {"recursiveReadOnlyMounts": False,
                                                         "userNamespaces": False}}
                                for h in handlers]}


def node_object(cfg: NodeConfig, boot_id: str) -> dict:
    spec: dict[str, Any] = {}
    if cfg.taints:
        spec["taints"] = copy.deepcopy(cfg.taints)
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": cfg.name, "labels": cfg.node_labels(),
                         "annotations": {"node.alpha.kubernetes.io/ttl": "0"}},
            "spec": spec, "status": node_status(cfg, boot_id)}


def lease_object(name: str, node_uid: str, duration: int) -> dict:
    return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
            "metadata": {"name": name, "namespace": LEASE_NAMESPACE,
                         "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": name,
                                              "uid": node_uid}]},
            "spec": {"holderIdentity": name, "leaseDurationSeconds": duration,
                     "renewTime": now_micro()}}


class NodeAgent:
    """Keeps one Node registered, its Lease renewed and its status fresh."""

    def __init__(self, client: APIClient, cfg: NodeConfig, recorder: Any = None,
                 lease_duration: int = 40, heartbeat_period: float = 10.0,
                 status_update_period: float = 60.0):
        self.client, self.cfg, self.recorder = client, cfg, recorder
        self.lease_duration, self.heartbeat_period = lease_duration, heartbeat_period
        self.status_update_period = status_update_period
        self.boot_id = str(uuid.uuid4())
        self.node: dict | None = None          # the latest Node seen (ours or the informer's)
        self.registered_at = 0.0               # monotonic time of the last registration
        self._lease: dict | None = None
        self._status_written = 0.0
        self._wake = asyncio.Event()

    @property
    def name(self) -> str:
        return self.cfg.name

    def pod_cidrs(self) -> list[str]:
        spec = (self.node or {}).get("spec") or {}
        return list(spec.get("podCIDRs") or ([spec["podCIDR"]] if spec.get("podCIDR") else []))

    def observe(self, node: dict | None) -> None:
        """The node informer saw our Node change (None: it was deleted)."""
        if node is None:
            self.node = None
            self._wake.set()  # register again
            return
        if self.node is not None and node["metadata"].get("uid") != self.node["metadata"].get(
                "uid"):
            self._lease = None  # a new Node: the Lease needs a new owner
        self.node = node
        ready = next((c for c in (node.get("status") or {}).get("conditions") or []
                      if c.get("type") == "Ready"), None)
        if ready is None or ready.get("status") != "True":
            self._wake.set()  # someone else wrote our conditions: put ours back

    async def run(self) -> None:
        """Register, then heartbeat until cancelled; API trouble is retried."""
        await asyncio.sleep(random.random() * min(1.0, self.heartbeat_period))  # spread 100 nodes
        while True:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except (StatusError, OSError, asyncio.TimeoutError) as e:
                log.warning("node %s: heartbeat failed: %s", self.name, e)
            except Exception:  # noqa: BLE001 - keep the node alive whatever happened
                log.exception("node %s: heartbeat failed", self.name)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.heartbeat_period)
                await asyncio.sleep(0.5)  # let a burst of watch events settle
            except asyncio.TimeoutError:
                pass

    async def _tick(self) -> None:
        if self.node is None or not self.registered_at:
            await self.register()
        elif self._status_due():
            await self.update_status()
        await self.renew_lease()

    def _status_due(self) -> bool:
        ready = next((c for c in ((self.node or {}).get("status") or {}).get("conditions") or []
                      if c.get("type") == "Ready"), None)
        stale = time.monotonic() - self._status_written >= self.status_update_period
        return stale or ready is None or ready.get("status") != "True"

    async def register(self) -> None:
        try:
            self.node = await self.client.create(NODES, node_object(self.cfg, self.boot_id))
            log.info("node %s registered", self.name)
            self._event("Normal", "Starting", "Starting kubelet.")
            self._event("Normal", "NodeReady", f"Node {self.name} status is now: NodeReady")
        except StatusError as e:
            if e.code != 409:
                raise
            # registered before (a restart): take it over and report our status
            self.node = await self.client.get(NODES, self.name)
            await self._reconcile_existing()
            await self.update_status()
            log.info("node %s already registered; updated its status", self.name)
        self.registered_at = time.monotonic()
        self._status_written = time.monotonic()
        self._lease = None

    async def _reconcile_existing(self) -> None:
        """Labels we own go back on an existing Node (upstream reconciles them too)."""
        labels = (self.node or {}).get("metadata", {}).get("labels") or {}
        want = self.cfg.node_labels()
        if any(labels.get(k) != v for k, v in want.items()):
            self.node = await self.client.patch(NODES, self.name, {"metadata": {"labels": want}})

    async def update_status(self) -> None:
        status = node_status(self.cfg, self.boot_id, self.node)
        self.node = await self.client.patch(NODES, self.name, {"status": status},
                                            patch_type="strategic", subresource="status")
        self._status_written = time.monotonic()

    async def renew_lease(self) -> None:
        node_uid = ((self.node or {}).get("metadata") or {}).get("uid", "")
        if not node_uid:
            return
        if self._lease is not None:
            lease = copy.deepcopy(self._lease)
            lease["spec"].update(renewTime=now_micro(), holderIdentity=self.name,
                                 leaseDurationSeconds=self.lease_duration)
            try:
                self._lease = await self.client.update(LEASES, lease)
                return
            except StatusError as e:
                if e.code not in (404, 409):
                    raise
        self._lease = await self._get_or_create_lease(node_uid)

    async def _get_or_create_lease(self, node_uid: str) -> dict:
        want = lease_object(self.name, node_uid, self.lease_duration)
        try:
            return await self.client.create(LEASES, want)
        except StatusError as e:
            if e.code != 409:
                raise
        lease = await self.client.get(LEASES, self.name, LEASE_NAMESPACE)
        lease["spec"] = {**(lease.get("spec") or {}), **want["spec"]}
        lease["metadata"]["ownerReferences"] = want["metadata"]["ownerReferences"]
        return await self.client.update(LEASES, lease)

    def _event(self, type_: str, reason: str, message: str) -> None:
        if self.recorder is None:
            return
        # the kubelet's node reference: uid is the node name, as upstream
        ref = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": self.name,
                                                                 "uid": self.name}}
        self.recorder.event(ref, type_, reason, message)
