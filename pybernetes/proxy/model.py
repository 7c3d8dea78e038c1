"""What a service proxy needs to know, flattened out of Services and EndpointSlices:
one ServicePort per (Service, spec.ports[i]) with its addresses and its endpoints, the
target port already resolved per endpoint (a named targetPort can be a different number
in each pod; the EndpointSlice controller puts pods with different numbers in different
slices, so the number comes from the endpoint's own slice). Both data planes (nftables
and userspace) render from this, as kube-proxy's ServicePortInfo/Endpoint do."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
DEFAULT_AFFINITY_TIMEOUT = 10800  # seconds: upstream's default for sessionAffinity ClientIP
EXTERNAL_TYPES = ("NodePort", "LoadBalancer")


@dataclass(frozen=True)
class Endpoint:
    ip: str
    port: int           # the targetPort resolved for this endpoint
    ready: bool
    serving: bool
    terminating: bool
    node_name: str = ""
    zone: str = ""

    def is_local(self, node: str) -> bool:
        return bool(node) and self.node_name == node


@dataclass(frozen=True)
class ServicePort:
    namespace: str
    name: str                       # the Service's name
    port_name: str                  # spec.ports[i].name ("" when the Service has one port)
    protocol: str                   # TCP, UDP or SCTP
    cluster_ips: tuple[str, ...]
    port: int
    node_port: int                  # 0 when none
    external_ips: tuple[str, ...]
    load_balancer_ips: tuple[str, ...]
    affinity_timeout: int           # seconds; 0 = no session affinity
    external_local: bool            # externalTrafficPolicy Local (NodePort/LoadBalancer only)
    internal_local: bool            # internalTrafficPolicy Local
    endpoints: tuple[Endpoint, ...]

    @property
    def key(self) -> str:
        """`ns/name:port_name`, kube-proxy's ServicePortName string."""
        return f"{self.namespace}/{self.name}:{self.port_name}"


def _cluster_ips(spec: dict) -> tuple[str, ...]:
    ips = [ip for ip in (spec.get("clusterIPs") or [spec.get("clusterIP")]) if ip]
    return tuple(ip for ip in ips if ip != "None" and ":" not in ip)  # IPv4 only


def _affinity_timeout(spec: dict) -> int:
    if spec.get("sessionAffinity") != "ClientIP":
        return 0
    cfg = ((spec.get("sessionAffinityConfig") or {}).get("clientIP") or {})
    timeout = cfg.get("timeoutSeconds")
    return int(timeout) if isinstance(timeout, int) and timeout > 0 else DEFAULT_AFFINITY_TIMEOUT


def _lb_ips(svc: dict) -> tuple[str, ...]:
    """Ingress IPs in status; ipMode Proxy means the load balancer proxies to the node
    itself, so traffic to that IP must not be short-circuited on the node (as upstream)."""
    if (svc.get("spec") or {}).get("type") != "LoadBalancer":
        return ()
    ingress = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return tuple(i["ip"] for i in ingress
                 if i.get("ip") and ":" not in i["ip"] and i.get("ipMode", "VIP") == "VIP")


def _slice_service(sl: dict) -> tuple[str, str]:
    md = sl.get("metadata") or {}
    return md.get("namespace") or "", (md.get("labels") or {}).get(SERVICE_NAME_LABEL, "")


def _endpoints_for(port_name: str, protocol: str, slices: list[dict]) -> tuple[Endpoint, ...]:
    """Endpoints of one service port across the service's slices, deduplicated by
    ip:port (a pod can briefly sit in two slices while the controller moves it)."""
    seen: dict[tuple[str, int], Endpoint] = {}
    for sl in slices:
        if sl.get("addressType", "IPv4") != "IPv4":
            continue
        port = None
        for p in sl.get("ports") or []:
            if (p.get("name") or "") == port_name and p.get("protocol", "TCP") == protocol:
                port = p.get("port")
                break
        if not isinstance(port, int):
            continue
        for ep in sl.get("endpoints") or []:
            cond = ep.get("conditions") or {}
            # unset ready/serving mean true, unset terminating false (as kube-proxy reads them)
            ready = cond.get("ready") is not False
            serving = cond.get("serving") is not False
            terminating = cond.get("terminating") is True
            for ip in (ep.get("addresses") or [])[:1]:    # only the first is used upstream
                seen.setdefault((ip, port), Endpoint(
                    ip=ip, port=port, ready=ready, serving=serving, terminating=terminating,
                    node_name=ep.get("nodeName") or "", zone=ep.get("zone") or ""))
    return tuple(sorted(seen.values(), key=lambda e: (e.ip, e.port)))


def _ports_of(svc: dict, slices: list[dict]) -> list[ServicePort]:
    spec = svc.get("spec") or {}
    typ = spec.get("type") or "ClusterIP"
    cluster_ips = _cluster_ips(spec)
    if typ == "ExternalName" or not cluster_ips:
        return []  # nothing to proxy: DNS answers for these
    md = svc.get("metadata") or {}
    external_ips = tuple(ip for ip in spec.get("externalIPs") or [] if ":" not in ip)
    out = []
    for sp in spec.get("ports") or []:
        protocol = sp.get("protocol") or "TCP"
        port_name = sp.get("name") or ""
        out.append(ServicePort(
            namespace=md.get("namespace") or "", name=md.get("name") or "",
            port_name=port_name, protocol=protocol, cluster_ips=cluster_ips,
            port=int(sp.get("port") or 0),
            node_port=int(sp.get("nodePort") or 0) if typ in EXTERNAL_TYPES else 0,
            external_ips=external_ips, load_balancer_ips=_lb_ips(svc),
            affinity_timeout=_affinity_timeout(spec),
            external_local=typ in EXTERNAL_TYPES and spec.get("externalTrafficPolicy") == "Local",
            internal_local=spec.get("internalTrafficPolicy") == "Local",
            endpoints=_endpoints_for(port_name, protocol, slices)))
    return out


def service_ports(services: Iterable[dict], slices: Iterable[dict]) -> list[ServicePort]:
    """Every proxied port of every Service, in a stable order (namespace, name, port)."""
    by_service: dict[tuple[str, str], list[dict]] = {}
    for sl in slices:
        by_service.setdefault(_slice_service(sl), []).append(sl)
    out: list[ServicePort] = []
    for svc in services:
        md = svc.get("metadata") or {}
        key = (md.get("namespace") or "", md.get("name") or "")
        out.extend(_ports_of(svc, by_service.get(key, [])))
    out.sort(key=lambda p: (p.namespace, p.name, p.port_name, p.protocol))
    return out


# -- which endpoints take which traffic (kube-proxy's CategorizeEndpoints) --------------------

def _usable(eps: Iterable[Endpoint]) -> tuple[Endpoint, ...]:
    """Ready endpoints; when none is ready, the serving ones that are terminating, so a
    rolling update's last pods keep answering until they stop (upstream's fallback)."""
    eps = tuple(eps)
    ready = tuple(e for e in eps if e.ready)
    return ready or tuple(e for e in eps if e.serving and e.terminating)


@dataclass(frozen=True)
class Targets:
    """Where traffic to one ServicePort goes. has_endpoints False → reject everything
    (the client fails at once); an empty internal/external tuple while has_endpoints is
    True → that kind of traffic is dropped (a Local policy with no endpoint here)."""
    has_endpoints: bool
    internal: tuple[Endpoint, ...]   # traffic to cluster IPs
    external: tuple[Endpoint, ...]   # traffic to node ports, external IPs, LB IPs
    cluster: tuple[Endpoint, ...] = ()  # usable endpoints on every node
    local: tuple[Endpoint, ...] = ()    # usable endpoints on this node


def targets(sp: ServicePort, node: str) -> Targets:
    everywhere = _usable(sp.endpoints)
    local = _usable(e for e in sp.endpoints if e.is_local(node))
    internal = local if sp.internal_local else everywhere
    external = local if sp.external_local else everywhere
    return Targets(has_endpoints=bool(everywhere), internal=internal, external=external,
                   cluster=everywhere, local=local)
