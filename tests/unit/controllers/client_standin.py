"""A small stand-in for pybernetes.client (issue 3's client engineer owns the real one),
used only while that package is missing so the controllers can be driven against a
real API server. Same interface as /work/briefs/issue3_common.md, far fewer features
(no pagination, no rate limit, plain backoff, no event aggregation). `install()`
does nothing once the real client exists."""
from __future__ import annotations

import asyncio
import base64
import copy
import os
import sys
import tempfile
import time
import types
import urllib.parse
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

import orjson

from pybernetes.machinery.errors import StatusError


@dataclass(frozen=True)
class Resource:
    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool

    @classmethod
    def of(cls, api_version: str, kind_or_plural: str) -> "Resource":
        from pybernetes.api.registry import registry
        group, _, version = api_version.rpartition("/")
        for s in registry().in_group_version(group, version):
            if kind_or_plural in (s.plural, s.kind):
                return cls(s.group, s.version, s.plural, s.kind, s.namespaced)
        raise KeyError(f"{api_version} {kind_or_plural}")

    def path(self, namespace: str | None = None, name: str | None = None, sub: str | None = None) -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
        if sub:
            base += f"/{sub}"
        return base


class APIClient:
    def __init__(self, server: str, ssl_ctx: Any, user_agent: str):
        import aiohttp
        self.server = server.rstrip("/")
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_ctx, limit=50),
            headers={"User-Agent": user_agent})

    @classmethod
    async def from_kubeconfig(cls, path: str, user_agent: str = "pybernetes") -> "APIClient":
        from pybernetes.auth.authn import make_client_ssl_context
        from pybernetes.auth.kubeconfig import read_kubeconfig
        kc = read_kubeconfig(path)
        d = tempfile.mkdtemp(prefix="standin-")
        files = {}
        for k in ("ca", "cert", "key"):
            files[k] = os.path.join(d, k)
            with open(files[k], "wb") as f:
                f.write(kc[k])
        return cls(kc["server"], make_client_ssl_context(files["ca"], files["cert"], files["key"]),
                   user_agent)

    async def close(self) -> None:
        await self.session.close()

    async def _req(self, method: str, path: str, body: Any = None, params: dict | None = None,
                   ctype: str = "application/json") -> dict:
        data = orjson.dumps(body) if body is not None else None
        params = {k: str(v) for k, v in (params or {}).items() if v is not None}
        async with self.session.request(method, self.server + path, data=data, params=params,
                                        headers={"Content-Type": ctype}) as r:
            raw = await r.read()
            obj = orjson.loads(raw) if raw else {}
            if r.status >= 400:
                raise StatusError(r.status, obj.get("reason", ""), obj.get("message", ""),
                                  obj.get("details"))
            return obj

    async def get(self, res, name, namespace=None):
        return await self._req("GET", res.path(namespace, name))

    async def list(self, res, namespace=None, label_selector=None, field_selector=None,
                   resource_version=None, limit=None, continue_=None):
        return await self._req("GET", res.path(namespace), params={
            "labelSelector": label_selector, "fieldSelector": field_selector,
            "resourceVersion": resource_version, "limit": limit, "continue": continue_})

    async def watch(self, res, namespace=None, resource_version="", label_selector=None,
                    field_selector=None, timeout_seconds=None, allow_bookmarks=True
                    ) -> AsyncIterator[tuple[str, dict]]:
        params = {"watch": "1", "resourceVersion": resource_version,
                  "allowWatchBookmarks": "true" if allow_bookmarks else None,
                  "timeoutSeconds": timeout_seconds, "labelSelector": label_selector}
        params = {k: str(v) for k, v in params.items() if v}
        async with self.session.get(self.server + res.path(namespace), params=params,
                                    timeout=None) as r:
            if r.status >= 400:
                obj = orjson.loads(await r.read())
                raise StatusError(r.status, obj.get("reason", ""), obj.get("message", ""))
            async for line in r.content:
                if line.strip():
                    ev = orjson.loads(line)
                    yield ev["type"], ev["object"]

    async def create(self, res, obj, namespace=None, dry_run=False):
        ns = namespace or (obj.get("metadata") or {}).get("namespace")
        return await self._req("POST", res.path(ns), obj)

    async def update(self, res, obj, subresource=None):
        md = obj["metadata"]
        return await self._req("PUT", res.path(md.get("namespace"), md["name"], subresource), obj)

    async def patch(self, res, name, patch, namespace=None, patch_type="merge", subresource=None):
        ctype = {"merge": "application/merge-patch+json", "json": "application/json-patch+json",
                 "strategic": "application/strategic-merge-patch+json"}[patch_type]
        return await self._req("PATCH", res.path(namespace, name, subresource), patch, ctype=ctype)

    async def delete(self, res, name, namespace=None, grace_period_seconds=None,
                     propagation_policy=None, preconditions=None):
        body = {"kind": "DeleteOptions", "apiVersion": "v1"}
        if grace_period_seconds is not None:
            body["gracePeriodSeconds"] = grace_period_seconds
        if propagation_policy:
            body["propagationPolicy"] = propagation_policy
        if preconditions:
            body["preconditions"] = preconditions
        return await self._req("DELETE", res.path(namespace, name), body)

    async def post(self, res, name, subresource, body, namespace=None):
        return await self._req("POST", res.path(namespace, name, subresource), body)


def object_key(obj: dict) -> str:
    md = obj.get("metadata") or {}
    return f"{md['namespace']}/{md['name']}" if md.get("namespace") else md.get("name", "")


class Informer:
    def __init__(self, client, res, namespace=None, label_selector=None, field_selector=None):
        self.client, self.res, self.namespace = client, res, namespace
        self.items: dict[str, dict] = {}
        self.handlers: list[tuple] = []
        self.indexers: dict[str, Callable] = {}
        self.synced = asyncio.Event()
        self.task: asyncio.Task | None = None

    def add_handler(self, on_add=None, on_update=None, on_delete=None):
        self.handlers.append((on_add, on_update, on_delete))

    def add_index(self, name, fn):
        self.indexers.setdefault(name, fn)

    async def start(self):
        self.task = asyncio.create_task(self._run())

    async def stop(self):
        if self.task:
            self.task.cancel()

    async def wait_synced(self, timeout=30):
        await asyncio.wait_for(self.synced.wait(), timeout)

    def get(self, namespace, name):
        return self.items.get(f"{namespace}/{name}" if namespace else name)

    def list(self, namespace=None):
        return [o for o in self.items.values()
                if namespace is None or o["metadata"].get("namespace") == namespace]

    def by_index(self, name, value):
        fn = self.indexers[name]
        return [o for o in self.items.values() if value in fn(o)]

    def _fire(self, i: int, *args):
        for h in self.handlers:
            if h[i]:
                try:
                    h[i](*args)
                except Exception as e:  # noqa: BLE001
                    print("handler failed", e, file=sys.stderr)

    async def _run(self):
        rv = ""
        while True:
            try:
                if not rv:
                    lst = await self.client.list(self.res, self.namespace)
                    rv = lst["metadata"]["resourceVersion"]
                    fresh = {object_key(o): o for o in lst.get("items") or []}
                    for k, o in list(self.items.items()):
                        if k not in fresh:
                            del self.items[k]
                            self._fire(2, o)
                    for k, o in fresh.items():
                        old = self.items.get(k)
                        self.items[k] = o
                        self._fire(0, o) if old is None else self._fire(1, old, o)
                    self.synced.set()
                async for typ, obj in self.client.watch(self.res, self.namespace, rv,
                                                        timeout_seconds=300):
                    if typ == "ERROR":
                        rv = ""
                        break
                    rv = obj["metadata"].get("resourceVersion", rv)
                    if typ == "BOOKMARK":
                        continue
                    k = object_key(obj)
                    old = self.items.get(k)
                    if typ == "DELETED":
                        self.items.pop(k, None)
                        self._fire(2, obj)
                    else:
                        self.items[k] = obj
                        self._fire(0, obj) if old is None else self._fire(1, old, obj)
            except asyncio.CancelledError:
                raise
            except StatusError as e:
                if e.code == 410:
                    rv = ""
                await asyncio.sleep(0.5)
            except Exception:  # noqa: BLE001
                await asyncio.sleep(0.5)


class WorkQueue:
    def __init__(self):
        self.queue: list[str] = []
        self.dirty: set[str] = set()
        self.processing: set[str] = set()
        self.cond = asyncio.Condition()
        self.failures: dict[str, int] = {}
        self.closed = False

    def __len__(self):
        return len(self.queue)

    def add(self, key):
        if self.closed or key in self.dirty:
            return
        self.dirty.add(key)
        if key not in self.processing:
            self.queue.append(key)
            asyncio.get_event_loop().create_task(self._notify())

    async def _notify(self):
        async with self.cond:
            self.cond.notify()

    def add_after(self, key, delay):
        asyncio.get_event_loop().call_later(delay, self.add, key)

    def add_rate_limited(self, key):
        n = self.failures.get(key, 0)
        self.failures[key] = n + 1
        self.add_after(key, min(0.005 * 2 ** n, 30))

    def forget(self, key):
        self.failures.pop(key, None)

    def num_requeues(self, key):
        return self.failures.get(key, 0)

    async def get(self):
        async with self.cond:
            await self.cond.wait_for(lambda: self.queue or self.closed)
            if self.closed:
                return None
            key = self.queue.pop(0)
            self.processing.add(key)
            self.dirty.discard(key)
            return key

    def done(self, key):
        self.processing.discard(key)
        if key in self.dirty:
            self.queue.append(key)
            asyncio.get_event_loop().create_task(self._notify())

    def shutdown(self):
        self.closed = True


class EventRecorder:
    def __init__(self, client, component, host=""):
        self.client, self.component = client, component

    def event(self, obj, type_, reason, message):
        md = obj["metadata"]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        ev = {"apiVersion": "v1", "kind": "Event",
              "metadata": {"name": f"{md['name']}.{time.time_ns():x}",
                           "namespace": md.get("namespace") or "default"},
              "involvedObject": {"apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"),
                                 "name": md["name"], "namespace": md.get("namespace"),
                                 "uid": md.get("uid"), "resourceVersion": md.get("resourceVersion")},
              "reason": reason, "message": message, "type": type_, "count": 1,
              "firstTimestamp": now, "lastTimestamp": now, "source": {"component": self.component}}
        from pybernetes.api.registry import registry  # noqa: F401
        asyncio.get_event_loop().create_task(self._send(ev))

    async def _send(self, ev):
        try:
            await self.client.create(Resource("", "v1", "events", "Event", True), ev)
        except Exception:  # noqa: BLE001
            pass


class LeaderElector:
    """Stand-in: leads at once (one manager per test cluster)."""

    def __init__(self, client, lease_name, identity, namespace="kube-system", lease_duration=15,
                 renew_deadline=10, retry_period=2):
        pass

    async def run(self, lead):
        await lead()


def install() -> bool:
    """Register this module as pybernetes.client.* unless the real client exists."""
    try:
        import pybernetes.client.informer  # noqa: F401
        return False
    except ImportError:
        pass
    me = sys.modules[__name__]
    api = types.ModuleType("pybernetes.client.api")
    api.Resource, api.APIClient = Resource, APIClient
    for name, (av, plural) in {"PODS": ("v1", "pods"), "NODES": ("v1", "nodes"),
                               "NAMESPACES": ("v1", "namespaces"),
                               "CONFIGMAPS": ("v1", "configmaps"),
                               "SERVICEACCOUNTS": ("v1", "serviceaccounts"),
                               "EVENTS": ("v1", "events"),
                               "DEPLOYMENTS": ("apps/v1", "deployments"),
                               "REPLICASETS": ("apps/v1", "replicasets"),
                               "LEASES": ("coordination.k8s.io/v1", "leases")}.items():
        setattr(api, name, Resource.of(av, plural))
    sys.modules["pybernetes.client.api"] = api
    for mod, names in (("informer", ("Informer", "object_key")), ("workqueue", ("WorkQueue",)),
                       ("events", ("EventRecorder",)), ("leader_election", ("LeaderElector",))):
        m = types.ModuleType(f"pybernetes.client.{mod}")
        for n in names:
            setattr(m, n, getattr(me, n))
        sys.modules[f"pybernetes.client.{mod}"] = m
    return True


_ = (base64, copy, urllib.parse)
