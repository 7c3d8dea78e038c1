"""The `kube-dns` Service in kube-system, as k3s ships it (labels k8s-app=kube-dns,
kubernetes.io/name=CoreDNS; ports dns 53/UDP, dns-tcp 53/TCP, metrics 9153/TCP) at the
cluster DNS address. It has no selector: this process keeps its EndpointSlice and
Endpoints pointing at the address and ports it really listens on, so the proxy sends
pods' queries for 10.43.0.10:53 here."""
from __future__ import annotations

import asyncio
import logging

from pybernetes.client.api import ENDPOINTS, ENDPOINTSLICES, SERVICES, APIClient
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

NAME, NAMESPACE = "kube-dns", "kube-system"
SLICE_NAME = "kube-dns-pybernetes"
MANAGED_BY = "pybernetes-dns"
LABELS = {"k8s-app": "kube-dns", "kubernetes.io/cluster-service": "true",
          "kubernetes.io/name": "CoreDNS"}
RESYNC = 30.0  # seconds between checks that the endpoints still point here


def service(cluster_ips: list[str]) -> dict:
    """The Service as created when missing (selectorless; the address is fixed)."""
    family = "IPv6" if ":" in cluster_ips[0] else "IPv4"
    return {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS),
                     "annotations": {"prometheus.io/port": "9153",
                                     "prometheus.io/scrape": "true"}},
        "spec": {"type": "ClusterIP", "clusterIP": cluster_ips[0], "clusterIPs": cluster_ips,
                 "ipFamilies": [family], "ipFamilyPolicy": "SingleStack",
                 "ports": [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                           {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                           {"name": "metrics", "port": 9153, "protocol": "TCP",
                            "targetPort": 9153}]}}


def _ports(dns_port: int, metrics_port: int) -> list[dict]:
    ports = [{"name": "dns", "port": dns_port, "protocol": "UDP"},
             {"name": "dns-tcp", "port": dns_port, "protocol": "TCP"}]
    if metrics_port:
        ports.append({"name": "metrics", "port": metrics_port, "protocol": "TCP"})
    return ports


def endpoint_slice(ip: str, dns_port: int, metrics_port: int, node_name: str) -> dict:
    ep: dict = {"addresses": [ip],
                "conditions": {"ready": True, "serving": True, "terminating": False}}
    if node_name:
        ep["nodeName"] = node_name
    return {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": SLICE_NAME, "namespace": NAMESPACE,
                     "labels": {"kubernetes.io/service-name": NAME,
                                "endpointslice.kubernetes.io/managed-by": MANAGED_BY,
                                **LABELS}},
        "addressType": "IPv6" if ":" in ip else "IPv4",
        "endpoints": [ep], "ports": _ports(dns_port, metrics_port)}


def endpoints(ip: str, dns_port: int, metrics_port: int, node_name: str) -> dict:
    addr: dict = {"ip": ip}
    if node_name:
        addr["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Endpoints",
            "metadata": {"name": NAME, "namespace": NAMESPACE, "labels": dict(LABELS)},
            "subsets": [{"addresses": [addr], "ports": _ports(dns_port, metrics_port)}]}


class Publisher:
    """Creates the Service if missing and keeps its endpoints on this process."""

    def __init__(self, client: APIClient, cluster_ips: list[str], ip: str, dns_port: int,
                 metrics_port: int, node_name: str = ""):
        self.client, self.cluster_ips = client, cluster_ips
        self.slice = endpoint_slice(ip, dns_port, metrics_port, node_name)
        self.endpoints = endpoints(ip, dns_port, metrics_port, node_name)
        self.wake = asyncio.Event()
        self._warned = False

    async def run(self) -> None:
        """Check now, then on every wake() (something changed) or every RESYNC seconds."""
        while True:
            self.wake.clear()
            try:
                await self.ensure()
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - the API may be away: try again later
                log.warning("publishing the kube-dns endpoints: %s: %s", type(e).__name__, e)
            try:
                await asyncio.wait_for(self.wake.wait(), RESYNC)
            except asyncio.TimeoutError:
                pass

    async def ensure(self) -> None:
        await self._service()
        await self._put(ENDPOINTSLICES, self.slice, lambda cur: (
            cur.get("endpoints"), cur.get("ports"), cur.get("addressType")) == (
            self.slice["endpoints"], self.slice["ports"], self.slice["addressType"]))
        await self._put(ENDPOINTS, self.endpoints,
                        lambda cur: cur.get("subsets") == self.endpoints["subsets"])

    async def _service(self) -> None:
        try:
            cur = await self.client.get(SERVICES, NAME, NAMESPACE)
        except StatusError as e:
            if e.code != 404:
                raise
            await self.client.create(SERVICES, service(self.cluster_ips))
            log.info("created Service %s/%s at %s", NAMESPACE, NAME, self.cluster_ips[0])
            return
        have = (cur.get("spec") or {}).get("clusterIP")
        if have != self.cluster_ips[0] and not self._warned:
            self._warned = True
            log.warning("Service %s/%s has ClusterIP %s, not the cluster DNS address %s "
                        "(pods' resolv.conf names %s); delete it to have it recreated",
                        NAMESPACE, NAME, have, self.cluster_ips[0], self.cluster_ips[0])

    async def _put(self, res, want: dict, same) -> None:
        """Create `want`, or update the existing object when it differs."""
        name = want["metadata"]["name"]
        try:
            cur = await self.client.get(res, name, NAMESPACE)
        except StatusError as e:
            if e.code != 404:
                raise
            await self.client.create(res, want)
            log.info("%s %s/%s points at this server", res.kind, NAMESPACE, name)
            return
        if same(cur):
            return
        body = dict(want, metadata=dict(cur["metadata"], labels=want["metadata"]["labels"]))
        await self.client.update(res, body)
        log.info("%s %s/%s updated to point at this server", res.kind, NAMESPACE, name)

    async def withdraw(self) -> None:
        """Take our address out (on a clean stop), so clients fail fast, not time out."""
        for res, name in ((ENDPOINTSLICES, SLICE_NAME), (ENDPOINTS, NAME)):
            try:
                await self.client.delete(res, name, NAMESPACE)
            except Exception:  # noqa: BLE001 - stopping anyway; gone already is fine
                pass
