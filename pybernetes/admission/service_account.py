"""ServiceAccount: every new pod runs as a ServiceAccount that exists (upstream's plugin of
the same name). A pod without `serviceAccountName` gets `default`; a missing account is a
403; unless automounting is turned off (on the pod, else on the account) each container
and init container gets the `kube-api-access-<random>` projected volume (a bound token,
the cluster CA, the namespace) read-only at /var/run/secrets/kubernetes.io/serviceaccount;
a pod without imagePullSecrets gets the account's."""
from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

from ..machinery import errors, objectmeta
from .chain import Attributes, Plugin

if TYPE_CHECKING:
    from ..apiserver.state import APIState

DEFAULT_SERVICE_ACCOUNT = "default"
DEFAULT_SA_ATTEMPTS = 10  # reads of a missing `default` account before a 403, as upstream
VOLUME_PREFIX = "kube-api-access-"
MOUNT_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"
ROOT_CA_CONFIGMAP = "kube-root-ca.crt"
TOKEN_EXPIRATION = 3607  # upstream's warn-only lifetime: the server extends it for pods


def token_volume_source() -> dict:
    """The projected source upstream's plugin adds, defaults written out as it does."""
    return {"defaultMode": 0o644, "sources": [
        {"serviceAccountToken": {"expirationSeconds": TOKEN_EXPIRATION, "path": "token"}},
        {"configMap": {"name": ROOT_CA_CONFIGMAP,
                       "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {
            "apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}},
    ]}


def should_automount(sa: dict, spec: dict) -> bool:
    """The pod's automountServiceAccountToken wins, then the account's; default: mount."""
    if spec.get("automountServiceAccountToken") is not None:
        return bool(spec["automountServiceAccountToken"])
    if sa.get("automountServiceAccountToken") is not None:
        return bool(sa["automountServiceAccountToken"])
    return True


def mount_token(spec: dict) -> None:
    """Add the token volume and its mount where a container lacks one at MOUNT_PATH."""
    existing = next((v.get("name", "") for v in spec.get("volumes") or []
                     if str(v.get("name", "")).startswith(VOLUME_PREFIX)), "")
    name = existing or objectmeta.generate_name(VOLUME_PREFIX)
    needed = False
    for key in ("initContainers", "containers"):
        for c in spec.get(key) or []:
            mounts = c.get("volumeMounts") or []
            if any(m.get("mountPath") == MOUNT_PATH for m in mounts):
                continue  # the user's own mount at that path wins
            c["volumeMounts"] = mounts + [{"name": name, "readOnly": True,
                                           "mountPath": MOUNT_PATH}]
            needed = True
    if needed and not existing:
        spec["volumes"] = (spec.get("volumes") or []) + [
            {"name": name, "projected": token_volume_source()}]


class ServiceAccount(Plugin):
    name = "ServiceAccount"

    async def admit(self, attrs: Attributes, api: "APIState") -> None:
        if not _is_pod_create(attrs):
            return
        pod = attrs.obj
        assert pod is not None
        md, spec = pod.setdefault("metadata", {}), pod.setdefault("spec", {})
        if MIRROR_ANNOTATION in (md.get("annotations") or {}):
            return  # the kubelet's mirror pods are left as written (and checked below)
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = DEFAULT_SERVICE_ACCOUNT
        spec["serviceAccount"] = spec["serviceAccountName"]  # v1's deprecated mirror field
        sa = await _service_account(api, attrs, spec["serviceAccountName"])
        if should_automount(sa, spec):
            mount_token(spec)
        if not spec.get("imagePullSecrets") and sa.get("imagePullSecrets"):
            spec["imagePullSecrets"] = [{"name": s.get("name", "")}
                                        for s in sa["imagePullSecrets"]]

    async def validate(self, attrs: Attributes, api: "APIState") -> None:
        if not _is_pod_create(attrs):
            return
        pod = attrs.obj
        assert pod is not None
        md, spec = pod.get("metadata") or {}, pod.get("spec") or {}
        if MIRROR_ANNOTATION in (md.get("annotations") or {}):
            if spec.get("serviceAccountName"):
                raise _forbidden(attrs, "a mirror pod may not reference service accounts")
            return
        await _service_account(api, attrs, spec.get("serviceAccountName") or
                               DEFAULT_SERVICE_ACCOUNT)


def _is_pod_create(attrs: Attributes) -> bool:
    s = attrs.strategy
    return (s.group == "" and s.plural == "pods" and attrs.operation == "CREATE"
            and not attrs.subresource and attrs.obj is not None)


def _forbidden(attrs: Attributes, why: str) -> errors.StatusError:
    return errors.forbidden_message(attrs.strategy.plural, attrs.name or None, why)


async def _service_account(api: "APIState", attrs: Attributes, name: str) -> dict:
    """The account from the watch cache, else from the store: an account created just
    before its pod may not have reached the cache yet (upstream does a live read too)."""
    rs = api.resource("", "v1", "serviceaccounts")
    assert rs is not None
    ns = attrs.namespace
    cached = rs.cache.get(rs.key(ns, name))
    if cached is not None:
        return cached
    # The `default` account is made by a controller moments after its namespace:
    # like upstream, look again a few times (~1.5 s) before refusing the pod.
    attempts = DEFAULT_SA_ATTEMPTS if name == DEFAULT_SERVICE_ACCOUNT else 1
    for i in range(attempts):
        if i:
            await asyncio.sleep(random.uniform(0.1, 0.2))
        found = await rs.try_get(ns, name)
        if found is not None:
            return found[0]
    raise _forbidden(attrs, f"error looking up service account {ns}/{name}: "
                            f'serviceaccount "{name}" not found')
