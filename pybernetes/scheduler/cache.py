"""The scheduler's view of the cluster: every node with the pods on it and what they
request, kept up to date from the informers. A pod chosen for a node is *assumed*
onto it at once (before the Binding is written) so the next pod sees its requests;
the informer's update confirms it, a failed bind forgets it (upstream's assume/forget)."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pybernetes.machinery.quantity import parse_quantity

# Requests below are counted as these for *scoring* only (upstream's non-zero defaults),
# so best-effort pods still spread.
DEFAULT_MILLI_CPU = 100
DEFAULT_MEMORY = 200 * 1024 * 1024
SCALAR = ("cpu", "memory", "ephemeral-storage")
ASSUMED_TTL = 30.0  # an assumed pod whose bind finished but never showed up is dropped


def _amount(name: str, q: Any) -> int:
    """cpu in millicores, everything else in whole units (rounded up like upstream)."""
    try:
        v = parse_quantity(q)
    except Exception:
        return 0
    if name == "cpu":
        v = v * 1000
    return int(-(-v.numerator // v.denominator))


def _sum_requests(containers: list[dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for c in containers:
        for k, q in ((c.get("resources") or {}).get("requests") or {}).items():
            out[k] = out.get(k, 0) + _amount(k, q)
    return out


def pod_requests(pod: dict) -> dict[str, int]:
    """What a pod asks of a node: the sum over its containers, at least each init
    container's own request (they run one at a time; sidecars with restartPolicy Always
    keep running and add up), plus the RuntimeClass overhead."""
    spec = pod.get("spec") or {}
    total = _sum_requests(spec.get("containers") or [])
    sidecars: dict[str, int] = {}
    init_peak: dict[str, int] = {}
    for c in spec.get("initContainers") or []:
        one = _sum_requests([c])
        if c.get("restartPolicy") == "Always":
            for k, v in one.items():
                sidecars[k] = sidecars.get(k, 0) + v
            one = {}
        for k in set(one) | set(sidecars):  # runs beside the sidecars started before it
            init_peak[k] = max(init_peak.get(k, 0), one.get(k, 0) + sidecars.get(k, 0))
    for k, v in sidecars.items():
        total[k] = total.get(k, 0) + v
    for k, v in init_peak.items():
        total[k] = max(total.get(k, 0), v)
    for k, q in (spec.get("overhead") or {}).items():
        total[k] = total.get(k, 0) + _amount(k, q)
    return total


def pod_key(pod: dict) -> str:
    md = pod["metadata"]
    return f"{md.get('namespace')}/{md['name']}"


@dataclass
class PodInfo:
    pod: dict
    key: str
    requests: dict[str, int]
    non_zero_cpu: int
    non_zero_memory: int
    ports: list[tuple[str, str, int]]
    priority: int
    affinity: dict
    required_anti: bool   # has required pod anti-affinity (others must check it)
    owner_uid: str = ""   # uid of its controller (ReplicaSet, StatefulSet, ...), if any

    @classmethod
    def of(cls, pod: dict) -> "PodInfo":
        req = pod_requests(pod)
        spec = pod.get("spec") or {}
        ports = [((p.get("protocol") or "TCP"), p.get("hostIP") or "0.0.0.0", int(p["hostPort"]))
                 for c in spec.get("containers") or [] for p in c.get("ports") or []
                 if p.get("hostPort")]
        aff = spec.get("affinity") or {}
        anti = ((aff.get("podAntiAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution"))
        owner = next((r.get("uid") or "" for r in pod["metadata"].get("ownerReferences") or []
                      if r.get("controller")), "")
        return cls(pod, pod_key(pod), req, req.get("cpu") or DEFAULT_MILLI_CPU,
                   req.get("memory") or DEFAULT_MEMORY, ports, int(spec.get("priority") or 0),
                   aff, bool(anti), owner)

    @property
    def labels(self) -> dict:
        return self.pod["metadata"].get("labels") or {}

    @property
    def namespace(self) -> str:
        return self.pod["metadata"].get("namespace") or ""


@dataclass
class NodeInfo:
    name: str
    node: dict | None = None
    pods: dict[str, PodInfo] = field(default_factory=dict)
    requested: dict[str, int] = field(default_factory=dict)
    non_zero_cpu: int = 0
    non_zero_memory: int = 0
    used_ports: dict[tuple[str, str, int], int] = field(default_factory=dict)
    allocatable: dict[str, int] = field(default_factory=dict)
    anti_pods: dict[str, PodInfo] = field(default_factory=dict)  # with required anti-affinity
    labels: dict = field(default_factory=dict)
    taints: list = field(default_factory=list)
    unschedulable: bool = False
    by_owner: dict[str, int] = field(default_factory=dict)  # controller uid -> pods here

    def set_node(self, node: dict) -> None:
        self.node = node
        self.labels = (node.get("metadata") or {}).get("labels") or {}
        self.taints = (node.get("spec") or {}).get("taints") or []
        self.unschedulable = bool((node.get("spec") or {}).get("unschedulable"))
        alloc = (node.get("status") or {}).get("allocatable") or \
            (node.get("status") or {}).get("capacity") or {}
        self.allocatable = {k: _amount(k, q) for k, q in alloc.items()}

    def add_pod(self, pi: PodInfo) -> None:
        self._account(pi, 1)
        self.pods[pi.key] = pi
        if pi.required_anti:
            self.anti_pods[pi.key] = pi

    def remove_pod(self, key: str) -> PodInfo | None:
        pi = self.pods.pop(key, None)
        if pi is not None:
            self._account(pi, -1)
            self.anti_pods.pop(key, None)
        return pi

    def _account(self, pi: PodInfo, sign: int) -> None:
        for k, v in pi.requests.items():
            self.requested[k] = self.requested.get(k, 0) + sign * v
        self.non_zero_cpu += sign * pi.non_zero_cpu
        self.non_zero_memory += sign * pi.non_zero_memory
        if pi.owner_uid:
            n = self.by_owner.get(pi.owner_uid, 0) + sign
            if n > 0:
                self.by_owner[pi.owner_uid] = n
            else:
                self.by_owner.pop(pi.owner_uid, None)
        for p in pi.ports:
            n = self.used_ports.get(p, 0) + sign
            if n:
                self.used_ports[p] = n
            else:
                self.used_ports.pop(p, None)


class Cache:
    def __init__(self, clock=time.monotonic) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self.pod_node: dict[str, str] = {}
        self.assumed: dict[str, float | None] = {}  # key -> expiry once binding finished
        # Pods that preempted others and wait for the room: node -> key -> PodInfo. Pods of
        # lower or equal priority must leave that room free (upstream's nominator).
        self.nominated: dict[str, dict[str, PodInfo]] = {}
        self.nominated_node: dict[str, str] = {}
        self.clock = clock

    # ----- nodes -----
    def set_node(self, node: dict) -> None:
        name = node["metadata"]["name"]
        self.nodes.setdefault(name, NodeInfo(name)).set_node(node)

    def remove_node(self, name: str) -> None:
        ni = self.nodes.get(name)
        if ni is None:
            return
        if ni.pods:  # pods still bound there keep counting until they go (upstream: same)
            ni.node = None
        else:
            del self.nodes[name]

    def node_infos(self) -> list[NodeInfo]:
        return [ni for ni in self.nodes.values() if ni.node is not None]

    # ----- pods -----
    def add_pod(self, pod: dict) -> None:
        """An assigned pod seen by the informer (confirms an assumed one)."""
        key = pod_key(pod)
        self.assumed.pop(key, None)
        self.unnominate(key)
        self._place(PodInfo.of(pod), pod["spec"]["nodeName"])

    def remove_pod(self, key: str) -> None:
        self.assumed.pop(key, None)
        node = self.pod_node.pop(key, None)
        if node is not None and node in self.nodes:
            self.nodes[node].remove_pod(key)
            if self.nodes[node].node is None and not self.nodes[node].pods:
                del self.nodes[node]

    def assume(self, pi: PodInfo, node: str) -> None:
        self.unnominate(pi.key)
        self.assumed[pi.key] = None
        self._place(pi, node)

    def finish_binding(self, key: str) -> None:
        if key in self.assumed:
            self.assumed[key] = self.clock() + ASSUMED_TTL

    def forget(self, key: str) -> None:
        if key in self.assumed:
            self.remove_pod(key)

    def is_assumed(self, key: str) -> bool:
        return key in self.assumed

    def expire(self) -> None:
        now = self.clock()
        for key, deadline in list(self.assumed.items()):
            if deadline is not None and deadline < now:
                self.remove_pod(key)

    # ----- nominated pods -----
    def nominate(self, pi: PodInfo, node: str | None) -> None:
        self.unnominate(pi.key)
        if node:
            self.nominated.setdefault(node, {})[pi.key] = pi
            self.nominated_node[pi.key] = node

    def unnominate(self, key: str) -> None:
        node = self.nominated_node.pop(key, None)
        if node is not None:
            self.nominated[node].pop(key, None)
            if not self.nominated[node]:
                del self.nominated[node]

    def nominated_for(self, node: str, pod: PodInfo) -> list[PodInfo]:
        """Nominated pods on `node` that `pod` must leave room for."""
        return [o for k, o in (self.nominated.get(node) or {}).items()
                if k != pod.key and o.priority >= pod.priority]

    def _place(self, pi: PodInfo, node: str) -> None:
        old = self.pod_node.get(pi.key)
        if old is not None and old in self.nodes:
            self.nodes[old].remove_pod(pi.key)
        self.pod_node[pi.key] = node
        self.nodes.setdefault(node, NodeInfo(node)).add_pod(pi)

    def pods(self):
        for ni in self.nodes.values():
            yield from ((pi, ni) for pi in ni.pods.values())
