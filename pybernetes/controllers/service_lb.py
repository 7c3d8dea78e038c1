"""ServiceLB (k3s' built-in load balancer, as a controller): a Service of type
LoadBalancer with no spec.loadBalancerClass gets the addresses of the cluster's Ready,
schedulable nodes in status.loadBalancer.ingress (a node's ExternalIP when it has one,
else its InternalIP, ipMode VIP), so `kubectl get svc` shows an EXTERNAL-IP instead of
<pending>. The proxy on every node then takes traffic for those addresses on the
Service's ports. The list follows nodes as they come, go, turn unready or are cordoned;
a Service that stops being a LoadBalancer has its ingress cleared.

As in k3s, when any node carries the label svccontroller.k3s.cattle.io/enablelb, only
the nodes with enablelb=true serve; nodes labelled
node.kubernetes.io/exclude-from-external-load-balancers never do (upstream's rule)."""
from __future__ import annotations

import ipaddress
import logging

from pybernetes.client.api import NODES, SERVICES
from pybernetes.controllers.base import Controller, split_key
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

ENABLE_LB_LABEL = "svccontroller.k3s.cattle.io/enablelb"
EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"


def is_ready(node: dict) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (node.get("status") or {}).get("conditions") or [])


def serving_nodes(nodes: list[dict]) -> list[dict]:
    """Nodes that take LoadBalancer traffic: Ready, schedulable, not excluded, and
    opted in when anyone opted in (k3s' enablelb label)."""
    def labels(n: dict) -> dict:
        return (n.get("metadata") or {}).get("labels") or {}
    opted = any(ENABLE_LB_LABEL in labels(n) for n in nodes)
    return [n for n in nodes
            if is_ready(n) and not (n.get("spec") or {}).get("unschedulable")
            and EXCLUDE_LABEL not in labels(n)
            and (not opted or labels(n).get(ENABLE_LB_LABEL) == "true")]


def node_addresses(node: dict) -> list[str]:
    """The node's ExternalIPs, or its InternalIPs when it has none (as k3s)."""
    addrs = (node.get("status") or {}).get("addresses") or []
    external = [a.get("address", "") for a in addrs if a.get("type") == "ExternalIP"]
    internal = [a.get("address", "") for a in addrs if a.get("type") == "InternalIP"]
    return [a for a in (external or internal) if a]


def _family(ip: str) -> str:
    try:
        return "IPv6" if ipaddress.ip_address(ip).version == 6 else "IPv4"
    except ValueError:
        return ""


def wanted_ingress(svc: dict, nodes: list[dict]) -> list[dict]:
    """status.loadBalancer.ingress for a LoadBalancer Service: the serving nodes'
    addresses of the Service's IP families, sorted, each once."""
    families = (svc.get("spec") or {}).get("ipFamilies") or ["IPv4"]
    ips = {ip for n in serving_nodes(nodes) for ip in node_addresses(n)
           if _family(ip) in families}
    ordered = sorted(ips, key=lambda ip: (_family(ip), ipaddress.ip_address(ip)))
    return [{"ip": ip, "ipMode": "VIP"} for ip in ordered]


def is_ours(svc: dict) -> bool:
    spec = svc.get("spec") or {}
    return spec.get("type") == "LoadBalancer" and not spec.get("loadBalancerClass")


class ServiceLBController(Controller):
    name = "service-lb"
    workers = 2

    def setup(self) -> None:
        self.svc_informer = self.informers.get(SERVICES)
        self.node_informer = self.informers.get(NODES)
        self.svc_informer.add_handler(on_add=self.enqueue,
                                      on_update=lambda old, new: self.enqueue(new))
        self.node_informer.add_handler(on_add=self._node_changed, on_delete=self._node_changed,
                                       on_update=self._node_updated)

    def _node_changed(self, node: dict) -> None:
        for svc in self.svc_informer.list():
            if is_ours(svc):
                self.enqueue(svc)

    def _node_updated(self, old: dict, new: dict) -> None:
        # heartbeats rewrite every node every few seconds: only what we read counts
        def view(n: dict) -> tuple:
            return (n in serving_nodes([n]), tuple(node_addresses(n)),
                    ((n.get("metadata") or {}).get("labels") or {}).get(ENABLE_LB_LABEL))
        if view(old) != view(new):
            self._node_changed(new)

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        svc = self.svc_informer.get(ns, name)
        if svc is None:
            return
        spec = svc.get("spec") or {}
        current = ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
        if is_ours(svc):
            want = wanted_ingress(svc, self.node_informer.list())
        elif spec.get("type") != "LoadBalancer" and current:
            want = []   # no longer a load balancer: nothing may still claim an address
        else:
            return      # another class's load balancer, or nothing to clear
        if current == want:
            return
        patch = {"status": {"loadBalancer": {"ingress": want or None}}}
        try:
            await self.client.patch(SERVICES, name, patch, namespace=ns, subresource="status")
        except StatusError as e:
            if e.code == 404:
                return
            raise
        log.info("service %s: load balancer ingress %s", key,
                 ", ".join(i["ip"] for i in want) or "cleared")
        if want and not current:
            self.recorder.event({**svc, "apiVersion": "v1", "kind": "Service"}, "Normal",
                                "EnsuredLoadBalancer", "Ensured load balancer")
