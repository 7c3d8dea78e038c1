"""Endpoints and EndpointSlice controllers: a Service with a selector lists the IPs
of its pods, ready ones as addresses and the rest as not-ready, with target ports
resolved (named ports looked up in each pod's containers). Services without a
selector are left to whoever manages their endpoints (the apiserver for
default/kubernetes, users for external services)."""
from __future__ import annotations

import copy
import logging
from typing import Any

from pybernetes.client.api import PODS, Resource
from pybernetes.controllers import pods as podutil
from pybernetes.controllers.base import Controller, split_key
from pybernetes.machinery.errors import StatusError
from pybernetes.machinery.selectors import LabelSelector

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGED_BY = "endpointslice-controller.k8s.io"
MAX_PER_SLICE = 1000  # the API's limit (upstream packs 100 a slice; we keep fewer, bigger ones)


def selects(svc: dict, pod: dict) -> bool:
    sel = (svc.get("spec") or {}).get("selector")
    if not sel:
        return False
    return LabelSelector.from_map(sel).matches((pod.get("metadata") or {}).get("labels") or {})


def target_port(svc_port: dict, pod: dict) -> int | None:
    """The pod's port for a service port: a number as is, a name via the containers."""
    tp = svc_port.get("targetPort", svc_port.get("port"))
    if isinstance(tp, int):
        return tp
    if isinstance(tp, str) and tp.isdigit():
        return int(tp)
    for c in (pod.get("spec") or {}).get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == tp and p.get("protocol", "TCP") == svc_port.get("protocol", "TCP"):
                return p.get("containerPort")
    return None


def endpoint_pods(svc: dict, pods: list[dict]) -> list[dict]:
    """Pods that belong in the service's endpoints: selected, with an IP, not finished,
    not being deleted unless the service publishes not-ready addresses."""
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    out = []
    for p in pods:
        st = p.get("status") or {}
        if not selects(svc, p) or not st.get("podIP"):
            continue
        if st.get("phase") in ("Succeeded", "Failed"):
            continue
        if p["metadata"].get("deletionTimestamp") and not publish:
            continue
        out.append(p)
    return sorted(out, key=lambda p: (p["metadata"]["name"]))


def endpoint_hostname(svc: dict, pod: dict) -> str:
    """The pod's hostname when its subdomain is this service (in its namespace), as
    upstream sets it: cluster DNS serves <hostname>.<service>.<ns>.svc for it."""
    spec = pod.get("spec") or {}
    same_ns = (svc.get("metadata") or {}).get("namespace") == pod["metadata"].get("namespace")
    if spec.get("hostname") and same_ns and \
            spec.get("subdomain") == (svc.get("metadata") or {}).get("name"):
        return spec["hostname"]
    return ""


def _address(pod: dict, svc: dict | None = None) -> dict:
    md = pod["metadata"]
    addr: dict[str, Any] = {"ip": pod["status"]["podIP"],
                            "targetRef": {"kind": "Pod", "namespace": md["namespace"],
                                          "name": md["name"], "uid": md.get("uid")}}
    hostname = endpoint_hostname(svc, pod) if svc else ""
    if hostname:
        addr["hostname"] = hostname
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        addr["nodeName"] = node
    return addr


def endpoints_subsets(svc: dict, pods: list[dict]) -> list[dict]:
    """Endpoints.subsets: pods grouped by their resolved port set, as upstream repacks."""
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    groups: dict[tuple, dict] = {}
    for pod in endpoint_pods(svc, pods):
        ports = []
        for sp in (svc.get("spec") or {}).get("ports") or []:
            port = target_port(sp, pod)
            if port is None:
                continue
            entry = {"port": port, "protocol": sp.get("protocol", "TCP")}
            if sp.get("name"):
                entry["name"] = sp["name"]
            ports.append(entry)
        if not ports:
            continue
        key = tuple(sorted((p.get("name", ""), p["port"], p["protocol"]) for p in ports))
        group = groups.setdefault(key, {"ports": sorted(ports, key=lambda p: p.get("name", ""))})
        ready = podutil.is_ready(pod) or publish
        group.setdefault("addresses" if ready else "notReadyAddresses", []).append(
            _address(pod, svc))
    return [groups[k] for k in sorted(groups)]


def slice_groups(svc: dict, pods: list[dict]) -> list[tuple[list[dict], list[dict]]]:
    """(ports, endpoints) of each IPv4 EndpointSlice the service needs: one per distinct set
    of resolved ports (a named targetPort may be a different number in different pods, as
    upstream splits them), at most MAX_PER_SLICE endpoints each; one empty slice when no
    pod backs the service."""
    publish = bool((svc.get("spec") or {}).get("publishNotReadyAddresses"))
    groups: dict[tuple, tuple[list[dict], list[dict]]] = {}
    for pod in endpoint_pods(svc, pods):
        ports = sorted(({"name": sp.get("name", ""), "port": port,
                         "protocol": sp.get("protocol", "TCP")}
                        for sp in (svc.get("spec") or {}).get("ports") or []
                        if (port := target_port(sp, pod)) is not None),
                       key=lambda p: p["name"])
        key = tuple((p["name"], p["port"], p["protocol"]) for p in ports)
        groups.setdefault(key, (ports, []))[1].append(_slice_endpoint(svc, pod, publish))
    out = [(ports, eps[i:i + MAX_PER_SLICE]) for key in sorted(groups)
           for ports, eps in [groups[key]] for i in range(0, len(eps), MAX_PER_SLICE)]
    return out or [([], [])]


def _slice_endpoint(svc: dict, pod: dict, publish: bool) -> dict:
    terminating = bool(pod["metadata"].get("deletionTimestamp"))
    ready = podutil.is_ready(pod)
    ep: dict[str, Any] = {"addresses": [pod["status"]["podIP"]],
                          "conditions": {"ready": (ready or publish) and not terminating,
                                         "serving": ready, "terminating": terminating},
                          "targetRef": _address(pod)["targetRef"]}
    hostname = endpoint_hostname(svc, pod)
    if hostname:
        ep["hostname"] = hostname
    node = (pod.get("spec") or {}).get("nodeName")
    if node:
        ep["nodeName"] = node
    return ep


class _ServicePods(Controller):
    """Keys are services; pod changes enqueue every service that selects the pod."""

    def setup(self) -> None:
        self.svc_informer = self.informers.get(Resource.of("v1", "services"))
        self.pod_informer = self.informers.get(PODS)
        self.svc_informer.add_handler(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n),
                                      on_delete=self.enqueue)
        self.pod_informer.add_handler(on_add=self._pod, on_update=self._pod_updated,
                                      on_delete=self._pod)

    def _pod(self, pod: dict) -> None:
        for svc in self.svc_informer.list(pod["metadata"].get("namespace")):
            if selects(svc, pod):
                self.enqueue(svc)

    def _pod_updated(self, old: dict, new: dict) -> None:
        self._pod(new)
        if (old["metadata"].get("labels") or {}) != (new["metadata"].get("labels") or {}):
            self._pod(old)

    def service_and_pods(self, key: str) -> tuple[dict | None, list[dict]]:
        ns, name = split_key(key)
        svc = self.svc_informer.get(ns, name)
        if svc is None or not (svc.get("spec") or {}).get("selector"):
            return None, []
        return svc, self.pod_informer.by_index("namespace", ns or "")


class EndpointsController(_ServicePods):
    name = "endpoints"
    workers = 3

    async def reconcile(self, key: str) -> None:
        res = Resource.of("v1", "endpoints")
        svc, pods = self.service_and_pods(key)
        ns, name = split_key(key)
        if svc is None:
            await self._delete_ours(res, ns, name)
            return
        subsets = endpoints_subsets(svc, pods)
        labels = dict(svc["metadata"].get("labels") or {})
        labels["endpoints.kubernetes.io/managed-by"] = "endpoint-controller"
        try:
            cur = await self.client.get(res, name, namespace=ns)
        except StatusError as e:
            if e.code != 404:
                raise
            cur = None
        if cur is None:
            await self.client.create(res, {"apiVersion": "v1", "kind": "Endpoints",
                                           "metadata": {"name": name, "namespace": ns,
                                                        "labels": labels},
                                           "subsets": subsets}, namespace=ns)
            return
        if (cur.get("subsets") or []) == subsets and cur["metadata"].get("labels") == labels:
            return
        new = copy.deepcopy(cur)
        new["subsets"], new["metadata"]["labels"] = subsets, labels
        await self.client.update(res, new)

    async def _delete_ours(self, res: Any, ns: str | None, name: str) -> None:
        """The service is gone (or lost its selector): drop the Endpoints we made."""
        try:
            cur = await self.client.get(res, name, namespace=ns)
            if (cur["metadata"].get("labels") or {}).get("endpoints.kubernetes.io/managed-by") \
                    == "endpoint-controller":
                await self.client.delete(res, name, namespace=ns)
        except StatusError as e:
            if e.code != 404:
                raise


class EndpointSliceController(_ServicePods):
    name = "endpointslice"
    workers = 3

    async def reconcile(self, key: str) -> None:
        res = Resource.of("discovery.k8s.io/v1", "endpointslices")
        ns, name = split_key(key)
        svc, pods = self.service_and_pods(key)
        if svc is None:
            return
        existing = (await self.client.list(res, namespace=ns, label_selector=(
            f"{SERVICE_NAME_LABEL}={name},{MANAGED_BY_LABEL}={MANAGED_BY}"))).get("items") or []
        labels = {**(svc["metadata"].get("labels") or {}), SERVICE_NAME_LABEL: name,
                  MANAGED_BY_LABEL: MANAGED_BY}
        owner = {"apiVersion": "v1", "kind": "Service", "name": name,
                 "uid": svc["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}
        unused = sorted(existing, key=lambda s: s["metadata"]["name"])
        for ports, endpoints in slice_groups(svc, pods):
            same = [s for s in unused if (s.get("ports") or []) == ports]
            keep = (same or unused or [None])[0]
            if keep is None:
                await self.client.create(res, {
                    "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                    "metadata": {"generateName": f"{name}-", "namespace": ns, "labels": labels,
                                 "ownerReferences": [owner]},
                    "addressType": "IPv4", "endpoints": endpoints, "ports": ports},
                    namespace=ns)
                continue
            unused.remove(keep)
            if (keep.get("endpoints") or []) != endpoints or (keep.get("ports") or []) != ports \
                    or keep["metadata"].get("labels") != labels:
                new = copy.deepcopy(keep)
                new["endpoints"], new["ports"], new["metadata"]["labels"] = \
                    endpoints, ports, labels
                await self.client.update(res, new)
        for s in unused:   # after the writes above, so no port set is ever without a slice
            await self.client.delete(res, s["metadata"]["name"], namespace=ns)
