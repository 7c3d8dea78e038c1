"""Per-namespace defaults: the "default" ServiceAccount (upstream's serviceaccount
controller) and the kube-root-ca.crt ConfigMap holding the cluster CA (upstream's
root-ca-cert-publisher), recreated whenever deleted, left alone in namespaces
being deleted."""
from __future__ import annotations

import base64
import logging
import os

import yaml

from pybernetes.client.api import CONFIGMAPS, NAMESPACES, SERVICEACCOUNTS
from pybernetes.controllers.base import Controller, object_key
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
DESCRIPTION_ANNOTATION = "kubernetes.io/description"
ROOT_CA_DESCRIPTION = ("Contains a CA bundle that can be used to verify the kube-apiserver when "
                       "using internal endpoints such as the internal service IP or "
                       "kubernetes.default.svc. No other usage is guaranteed across distributions "
                       "of Kubernetes clusters.")


def ca_from_kubeconfig(path: str) -> str:
    """The PEM CA of the kubeconfig's current cluster ("" if it has none)."""
    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    ctx_name = cfg.get("current-context")
    ctx = next((c.get("context") or {} for c in cfg.get("contexts") or []
                if c.get("name") == ctx_name), {})
    clusters = cfg.get("clusters") or []
    cluster = next((c.get("cluster") or {} for c in clusters if c.get("name") == ctx.get("cluster")),
                   (clusters[0].get("cluster") or {}) if clusters else {})
    if cluster.get("certificate-authority-data"):
        return base64.b64decode(cluster["certificate-authority-data"]).decode()
    if cluster.get("certificate-authority"):
        ca = cluster["certificate-authority"]
        if not os.path.isabs(ca):
            ca = os.path.join(os.path.dirname(path), ca)
        with open(ca) as f:
            return f.read()
    return ""


class ServiceAccountController(Controller):
    """Keys are namespace names; each reconcile makes sure both objects exist."""

    name = "serviceaccount"
    workers = 2
    root_ca = ""  # set by the manager from --root-ca-file or the kubeconfig

    def setup(self) -> None:
        self.ns_informer = self.informers.get(NAMESPACES)
        self.sa_informer = self.informers.get(SERVICEACCOUNTS)
        self.cm_informer = self.informers.get(CONFIGMAPS)
        self.ns_informer.add_handler(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n))
        for inf in (self.sa_informer, self.cm_informer):
            inf.add_handler(on_delete=self._ns_of, on_update=lambda o, n: self._ns_of(n))

    def _ns_of(self, obj: dict) -> None:
        ns = (obj.get("metadata") or {}).get("namespace")
        if ns:
            self.queue.add(ns)

    async def reconcile(self, key: str) -> None:
        ns = self.ns_informer.get(None, key)
        if ns is None or ns["metadata"].get("deletionTimestamp") or \
                (ns.get("status") or {}).get("phase") == "Terminating":
            return
        await self._ensure_service_account(key)
        if self.root_ca:
            await self._ensure_root_ca(key)

    async def _ensure_service_account(self, namespace: str) -> None:
        if self.sa_informer.get(namespace, "default") is not None:
            return
        sa = {"apiVersion": "v1", "kind": "ServiceAccount",
              "metadata": {"name": "default", "namespace": namespace}}
        await self._create(SERVICEACCOUNTS, sa, namespace)

    async def _ensure_root_ca(self, namespace: str) -> None:
        cm = self.cm_informer.get(namespace, ROOT_CA_CONFIGMAP)
        want = {"ca.crt": self.root_ca}
        if cm is None:
            await self._create(CONFIGMAPS, {
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": ROOT_CA_CONFIGMAP, "namespace": namespace,
                             "annotations": {DESCRIPTION_ANNOTATION: ROOT_CA_DESCRIPTION}},
                "data": want}, namespace)
        elif cm.get("data") != want:
            await self.client.patch(CONFIGMAPS, ROOT_CA_CONFIGMAP, {"data": want},
                                    namespace=namespace)

    async def _create(self, res, obj: dict, namespace: str) -> None:
        try:
            await self.client.create(res, obj, namespace=namespace)
            log.info("created %s", object_key(obj))
        except StatusError as e:
            # exists already, or the namespace started terminating
            if e.reason not in ("AlreadyExists", "Forbidden", "NotFound"):
                raise
