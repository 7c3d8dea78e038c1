"""The async REST client every pybernetes component uses to talk to the API server
(client-go's REST client): JSON over one pooled HTTPS session, errors raised as the
server's own `Status` (StatusError), watches as an async iterator of events."""
from __future__ import annotations

import asyncio
import logging
import os
import ssl
import tempfile
from dataclasses import dataclass
from typing import Any, AsyncIterator

import aiohttp
import orjson

from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

PATCH_TYPES = {"merge": "application/merge-patch+json",
               "json": "application/json-patch+json",
               "strategic": "application/strategic-merge-patch+json"}
GET_RETRIES = 3  # a GET is safe to repeat when the connection drops mid-way


@dataclass(frozen=True)
class Resource:
    """One REST resource: where it lives and what it is called."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @classmethod
    def of(cls, api_version: str, kind_or_plural: str) -> "Resource":
        """Look a built-in resource up by apiVersion and kind or plural."""
        from pybernetes.api.registry import registry
        group, _, version = api_version.rpartition("/")
        for s in registry().in_group_version(group, version):
            if kind_or_plural in (s.plural, s.kind):
                return cls(s.group, s.version, s.plural, s.kind, s.namespaced)
        raise KeyError(f"no resource {kind_or_plural!r} in {api_version}")

    def path(self, namespace: str | None = None, name: str | None = None,
             sub: str | None = None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


def _r(group: str, version: str, plural: str, kind: str, namespaced: bool = True) -> Resource:
    return Resource(group, version, plural, kind, namespaced)


PODS = _r("", "v1", "pods", "Pod")
NODES = _r("", "v1", "nodes", "Node", False)
NAMESPACES = _r("", "v1", "namespaces", "Namespace", False)
CONFIGMAPS = _r("", "v1", "configmaps", "ConfigMap")
SECRETS = _r("", "v1", "secrets", "Secret")
SERVICES = _r("", "v1", "services", "Service")
ENDPOINTS = _r("", "v1", "endpoints", "Endpoints")
SERVICEACCOUNTS = _r("", "v1", "serviceaccounts", "ServiceAccount")
EVENTS = _r("", "v1", "events", "Event")
PVCS = _r("", "v1", "persistentvolumeclaims", "PersistentVolumeClaim")
PVS = _r("", "v1", "persistentvolumes", "PersistentVolume", False)
RESOURCEQUOTAS = _r("", "v1", "resourcequotas", "ResourceQuota")
LIMITRANGES = _r("", "v1", "limitranges", "LimitRange")
DEPLOYMENTS = _r("apps", "v1", "deployments", "Deployment")
REPLICASETS = _r("apps", "v1", "replicasets", "ReplicaSet")
STATEFULSETS = _r("apps", "v1", "statefulsets", "StatefulSet")
DAEMONSETS = _r("apps", "v1", "daemonsets", "DaemonSet")
CONTROLLERREVISIONS = _r("apps", "v1", "controllerrevisions", "ControllerRevision")
JOBS = _r("batch", "v1", "jobs", "Job")
CRONJOBS = _r("batch", "v1", "cronjobs", "CronJob")
ENDPOINTSLICES = _r("discovery.k8s.io", "v1", "endpointslices", "EndpointSlice")
LEASES = _r("coordination.k8s.io", "v1", "leases", "Lease")
PDBS = _r("policy", "v1", "poddisruptionbudgets", "PodDisruptionBudget")


def ssl_context(ca: bytes, cert: bytes = b"", key: bytes = b"",
                insecure: bool = False) -> ssl.SSLContext:
    """A client TLS context from PEM bytes. The key pair only touches disk inside a
    private temporary directory for the moment `ssl` needs a file name."""
    ctx = ssl.create_default_context(cadata=ca.decode() if ca else None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert:
        with tempfile.TemporaryDirectory(prefix="pyb-client-") as d:
            crt, k = os.path.join(d, "tls.crt"), os.path.join(d, "tls.key")
            for path, data in ((crt, cert), (k, key)):
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
            ctx.load_cert_chain(crt, k)
    return ctx


def status_error(code: int, raw: bytes) -> StatusError:
    """The server's Status as an exception; a body that is no Status still says something."""
    try:
        obj = orjson.loads(raw) if raw else {}
    except orjson.JSONDecodeError:
        obj = {}
    if not isinstance(obj, dict) or obj.get("kind") != "Status":
        text = raw[:200].decode(errors="replace").strip()
        return StatusError(code, "", text or f"the server answered {code}")
    return StatusError(code, obj.get("reason", ""), obj.get("message", ""), obj.get("details"))


class APIClient:
    """Typed-less client: every call takes a Resource and returns decoded JSON."""

    def __init__(self, server: str, ssl_ctx: ssl.SSLContext | None = None, token: str = "",
                 user_agent: str = "pybernetes", connections: int = 100,
                 timeout: float = 60.0):
        self.server = server.rstrip("/")
        headers = {"User-Agent": user_agent, "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_ctx if ssl_ctx is not None else False,
                                           limit=connections),
            headers=headers, timeout=aiohttp.ClientTimeout(total=timeout),
            json_serialize=lambda o: orjson.dumps(o).decode())

    @classmethod
    async def from_kubeconfig(cls, path: str, user_agent: str = "pybernetes",
                              **kw: Any) -> "APIClient":
        from pybernetes.auth.kubeconfig import read_kubeconfig
        kc = read_kubeconfig(path)
        ctx = None
        if kc["server"].startswith("https:"):
            ctx = ssl_context(kc["ca"], kc["cert"], kc["key"], kc["insecure"])
        return cls(kc["server"], ctx, kc["token"], user_agent, **kw)

    async def close(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> "APIClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    # -- plumbing -----------------------------------------------------------------------

    async def request(self, method: str, path: str, body: Any = None,
                      params: dict | None = None,
                      content_type: str = "application/json") -> dict:
        data = orjson.dumps(body) if body is not None else None
        query = {k: str(v) for k, v in (params or {}).items() if v is not None and v != ""}
        tries = GET_RETRIES if method == "GET" else 1
        for attempt in range(tries):
            try:
                async with self.session.request(method, self.server + path, data=data,
                                                params=query,
                                                headers={"Content-Type": content_type}) as r:
                    raw = await r.read()
                    if r.status >= 400:
                        raise status_error(r.status, raw)
                    return orjson.loads(raw) if raw else {}
            except (aiohttp.ClientConnectionError, asyncio.TimeoutError):
                if attempt + 1 == tries:
                    raise
                await asyncio.sleep(0.1 * 2 ** attempt)
        raise AssertionError("unreachable")

    # -- verbs ----------------------------------------------------------------------------

    async def get(self, res: Resource, name: str, namespace: str | None = None,
                  subresource: str | None = None) -> dict:
        return await self.request("GET", res.path(namespace, name, subresource))

    async def list(self, res: Resource, namespace: str | None = None,
                   label_selector: str | None = None, field_selector: str | None = None,
                   resource_version: str | None = None, limit: int | None = None,
                   continue_: str | None = None) -> dict:
        return await self.request("GET", res.path(namespace), params={
            "labelSelector": label_selector, "fieldSelector": field_selector,
            "resourceVersion": resource_version, "limit": limit, "continue": continue_})

    async def list_all(self, res: Resource, namespace: str | None = None,
                       label_selector: str | None = None, field_selector: str | None = None,
                       page: int = 500) -> tuple[list[dict], str]:
        """Every item, page by page (one consistent snapshot): (items, resourceVersion)."""
        items: list[dict] = []
        cont: str | None = None
        while True:
            lst = await self.list(res, namespace, label_selector, field_selector,
                                  limit=page, continue_=cont)
            items.extend(lst.get("items") or [])
            cont = (lst.get("metadata") or {}).get("continue")
            if not cont:
                return items, lst["metadata"]["resourceVersion"]

    async def watch(self, res: Resource, namespace: str | None = None,
                    resource_version: str = "", label_selector: str | None = None,
                    field_selector: str | None = None, timeout_seconds: int | None = None,
                    allow_bookmarks: bool = True) -> AsyncIterator[tuple[str, dict]]:
        """Yield (type, object) until the server ends the watch. An ERROR event is
        yielded as ("ERROR", status): a 410 there means "list again"."""
        params = {"watch": "1", "resourceVersion": resource_version,
                  "allowWatchBookmarks": "true" if allow_bookmarks else None,
                  "timeoutSeconds": timeout_seconds, "labelSelector": label_selector,
                  "fieldSelector": field_selector}
        params = {k: str(v) for k, v in params.items() if v not in (None, "")}
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
        async with self.session.get(self.server + res.path(namespace), params=params,
                                    timeout=timeout) as r:
            if r.status >= 400:
                raise status_error(r.status, await r.read())
            buf = b""
            # Split lines ourselves: objects can exceed aiohttp's readline limit.
            async for chunk in r.content.iter_any():
                buf += chunk
                while True:
                    nl = buf.find(b"\n")
                    if nl < 0:
                        break
                    line, buf = buf[:nl], buf[nl + 1:]
                    if line.strip():
                        ev = orjson.loads(line)
                        yield ev["type"], ev["object"]

    async def create(self, res: Resource, obj: dict, namespace: str | None = None,
                     dry_run: bool = False, subresource: str | None = None) -> dict:
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        path = res.path(ns) if not subresource else res.path(ns, obj["metadata"]["name"],
                                                             subresource)
        return await self.request("POST", path, obj, {"dryRun": "All" if dry_run else None})

    async def update(self, res: Resource, obj: dict, subresource: str | None = None) -> dict:
        md = obj["metadata"]
        return await self.request("PUT", res.path(md.get("namespace"), md["name"], subresource),
                                  obj)

    async def update_status(self, res: Resource, obj: dict) -> dict:
        return await self.update(res, obj, "status")

    async def patch(self, res: Resource, name: str, patch: Any, namespace: str | None = None,
                    patch_type: str = "merge", subresource: str | None = None) -> dict:
        return await self.request("PATCH", res.path(namespace, name, subresource), patch,
                                  content_type=PATCH_TYPES[patch_type])

    async def delete(self, res: Resource, name: str, namespace: str | None = None,
                     grace_period_seconds: int | None = None,
                     propagation_policy: str | None = None,
                     preconditions: dict | None = None) -> dict:
        body: dict[str, Any] = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if preconditions:
            body["preconditions"] = preconditions
        return await self.request("DELETE", res.path(namespace, name), body)

    async def post(self, res: Resource, name: str, subresource: str, body: dict,
                   namespace: str | None = None) -> dict:
        return await self.request("POST", res.path(namespace, name, subresource), body)
