"""What every cluster has from its first start: the four standard namespaces, the
`default/kubernetes` Service (first service IP) with this server as endpoint, and
(as k3s deploys with every server) the default `local-path` StorageClass served by
the controller manager's local-path provisioner."""
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


def _first_service_ip(cidr: str) -> str:
    import ipaddress
    return str(ipaddress.ip_network(cidr).network_address + 1)


async def bootstrap(api: APIState) -> None:
    for name in NAMESPACES:
        await _ensure(api, ("", "v1", "namespaces"), "",
                      {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    cfg = api.config
    ip = _first_service_ip(cfg.service_cluster_ip_range)
    await _ensure(api, ("", "v1", "services"), "default", {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"clusterIP": ip, "type": "ClusterIP", "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP",
                            "targetPort": cfg.secure_port}]}})
    address = cfg.bind_address if cfg.bind_address not in ("0.0.0.0", "::") else "127.0.0.1"
    await _ensure(api, ("", "v1", "endpoints"), "default", {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": address}],
                     "ports": [{"name": "https", "port": cfg.secure_port, "protocol": "TCP"}]}]})
    await _ensure(api, ("storage.k8s.io", "v1", "storageclasses"), "",
                  copy.deepcopy(LOCAL_PATH_CLASS))
