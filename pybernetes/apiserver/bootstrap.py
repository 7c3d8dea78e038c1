"""What every cluster has from its first start: the four standard namespaces, the
`default/kubernetes` Service (first service IP) with this server as endpoint, and
(as k3s deploys with every server) the default `local-path` StorageClass served by
the controller manager's local-path provisioner; and (as k3s ships RuntimeClasses for
the runtimes it may find) a `crun` RuntimeClass. Each is created only when missing:
a user's own object of that name is never overwritten."""
from __future__ import annotations

import copy
import logging

from ..auth.authn import UserInfo
from ..machinery import errors
from .resource_store import Context
from .state import APIState

log = logging.getLogger("pybernetes.apiserver")
SYSTEM = UserInfo("system:apiserver", ["system:masters", "system:authenticated"])
NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")
LOCAL_PATH_CLASS = {
    "apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
    "metadata": {"name": "local-path",
                 "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
    "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
    "volumeBindingMode": "WaitForFirstConsumer"}


async def _ensure(api: APIState, group_version_plural: tuple[str, str, str], ns: str,
                  obj: dict) -> None:
    rs = api.resource(*group_version_plural)
    if rs is None:
        return
    if await rs.try_get(ns, obj["metadata"]["name"]) is not None:
        return
    try:
        await rs.create(ns, obj, Context(SYSTEM))
        log.info("created %s %s", rs.s.kind, obj["metadata"]["name"])
    except errors.StatusError as e:
        if e.code != 409:
            raise


def first_service_ip(cidr: str) -> str:
    import ipaddress
    return str(ipaddress.ip_network(cidr).network_address + 1)


def advertised_address(cfg) -> str:
    """Where in-cluster clients reach us: --advertise-address, else the bind address, else
    (bound to all) this machine's primary address, as upstream picks it."""
    if cfg.advertise_address:
        return cfg.advertise_address
    if cfg.bind_address not in ("0.0.0.0", "::", ""):
        return cfg.bind_address
    from ..kubelet.machine import primary_ip
    return primary_ip()


def _kubernetes_endpoints(address: str, port: int) -> tuple[dict, dict]:
    """default/kubernetes as Endpoints and as an EndpointSlice (the proxy reads slices;
    upstream's endpoint reconciler keeps both, the mirroring controller skips them)."""
    endpoints = {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": address}],
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}]}
    family = "IPv6" if ":" in address else "IPv4"
    endpoint_slice = {
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "kubernetes"}},
        "addressType": family,
        "endpoints": [{"addresses": [address], "conditions": {"ready": True}}],
        "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}
    return endpoints, endpoint_slice


async def _reconcile(api: APIState, group_version_plural: tuple[str, str, str], ns: str,
                     obj: dict, fields: tuple[str, ...]) -> None:
    """Create obj, or bring the stored one's `fields` back to obj's (a restart on another
    port or address must not leave in-cluster clients dialling the old one)."""
    rs = api.resource(*group_version_plural)
    if rs is None:
        return
    found = await rs.try_get(ns, obj["metadata"]["name"])
    if found is None:
        await _ensure(api, group_version_plural, ns, obj)
        return
    current = found[0]
    if all(current.get(f) == obj.get(f) for f in fields):
        return
    updated = {**current, **{f: obj[f] for f in fields}}
    try:
        await rs.update(ns, obj["metadata"]["name"], updated, Context(SYSTEM))
        log.info("updated %s %s", rs.s.kind, obj["metadata"]["name"])
    except errors.StatusError as e:
        if e.code != 409:   # someone else wrote it meanwhile; the next start fixes it
            raise


async def bootstrap(api: APIState) -> None:
    for name in NAMESPACES:
        await _ensure(api, ("", "v1", "namespaces"), "",
                      {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    cfg = api.config
    ip = first_service_ip(cfg.service_cluster_ip_range)
    await _ensure(api, ("", "v1", "services"), "default", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": ip, "type": "ClusterIP", "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                            "targetPort": cfg.secure_port}]}})
    endpoints, endpoint_slice = _kubernetes_endpoints(advertised_address(cfg), cfg.secure_port)
    await _reconcile(api, ("", "v1", "endpoints"), "default", endpoints, ("subsets",))
    await _reconcile(api, ("discovery.k8s.io", "v1", "endpointslices"), "default",
                     endpoint_slice, ("addressType", "endpoints", "ports"))
    await _ensure(api, ("storage.k8s.io", "v1", "storageclasses"), "",
                  copy.deepcopy(LOCAL_PATH_CLASS))
    from ..api.node import BOOTSTRAP_CLASSES
    for runtime_class in BOOTSTRAP_CLASSES:
        await _ensure(api, ("node.k8s.io", "v1", "runtimeclasses"), "",
                      copy.deepcopy(runtime_class))
    if "RBAC" in cfg.authorization_modes:  # upstream's rbac/bootstrap-roles hook
        from ..auth.bootstrap_policy import reconcile
        await reconcile(api)
