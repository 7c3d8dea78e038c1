"""The Ingress controller: informers on Ingresses, IngressClasses, Services,
EndpointSlices and TLS Secrets; after any change (at most one sync per
`min_sync_period`, level-triggered: each sync starts from the whole cache) it builds
the route table, renders nginx.conf, and reloads nginx when the text changed; then
it writes this node's address into status.loadBalancer of every Ingress it serves."""
from __future__ import annotations

import asyncio
import logging
import os
import time
from dataclasses import dataclass, field

from pybernetes.client.api import ENDPOINTSLICES, NODES, SECRETS, SERVICES, APIClient, Resource
from pybernetes.client.events import EventRecorder
from pybernetes.client.informer import Informer
from pybernetes.ingress import certs, routes
from pybernetes.ingress.endpoints import Address, ready_addresses
from pybernetes.ingress.nginx import ConfigError, Nginx
from pybernetes.ingress.nginx_conf import SAFE_PATH, Settings, render
from pybernetes.admission.default_ingress_class import (
    DEFAULT_ANNOTATION, LEGACY_CLASS_ANNOTATION, is_default)
from pybernetes.machinery.errors import StatusError

log = logging.getLogger("pybernetes.ingress")

INGRESSES = Resource("networking.k8s.io", "v1", "ingresses", "Ingress", True)
INGRESSCLASSES = Resource("networking.k8s.io", "v1", "ingressclasses", "IngressClass", False)
CONTROLLER = "pybernetes.io/ingress"
DEFAULT_CLASS = "pybernetes"
TLS_SECRETS = "type=kubernetes.io/tls"
RETRY = (0.5, 30.0)


@dataclass
class Options:
    state_dir: str
    settings: Settings
    class_name: str = DEFAULT_CLASS
    make_default_class: bool = True
    status_addresses: tuple[str, ...] = ()
    min_sync_period: float = 0.5
    extra: dict = field(default_factory=dict)


class IngressController:
    def __init__(self, client: APIClient, nginx: Nginx, options: Options) -> None:
        self.client, self.nginx, self.opts = client, nginx, options
        self.ingresses = Informer(client, INGRESSES)
        self.classes = Informer(client, INGRESSCLASSES)
        self.services = Informer(client, SERVICES)
        self.slices = Informer(client, ENDPOINTSLICES)
        self.secrets = Informer(client, SECRETS, field_selector=TLS_SECRETS)
        self.informers = (self.ingresses, self.classes, self.services, self.slices,
                          self.secrets)
        for inf in self.informers:
            inf.add_handler(self._changed, self._updated, self._changed)
        self._dirty = asyncio.Event()
        self._config = ""
        self._problems: set[tuple[str, str]] = set()   # reported once while they last
        self._synced: dict[str, str] = {}              # uid -> generation announced
        self.events = EventRecorder(client, "pybernetes-ingress",
                                    options.extra.get("node_name") or "")
        self.syncs = 0

    # -- events -------------------------------------------------------------------------
    def _changed(self, *_: object) -> None:
        self._dirty.set()

    def _updated(self, old: dict, new: dict) -> None:
        if old.get("metadata", {}).get("resourceVersion") != \
                new.get("metadata", {}).get("resourceVersion"):
            self._dirty.set()

    # -- main loop ----------------------------------------------------------------------
    async def run(self) -> None:
        await self.ensure_class()
        addresses = self.opts.status_addresses or await self._node_addresses()
        self.opts.status_addresses = addresses
        for inf in self.informers:
            await inf.start()
        try:
            for inf in self.informers:
                await inf.wait_synced(120)
            log.info("ingress: informers synced; class %s, status addresses %s",
                     self.opts.class_name, ",".join(addresses))
            await self._loop()
        finally:
            await self.events.flush()
            for inf in self.informers:
                await inf.stop()

    async def _loop(self) -> None:
        delay = RETRY[0]
        self._dirty.set()
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            started = time.monotonic()
            try:
                await self.sync()
                delay = RETRY[0]
            except (StatusError, OSError, ConfigError) as e:
                log.error("ingress: sync failed (retrying in %.1fs): %s", delay, e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, RETRY[1])
                self._dirty.set()
                continue
            rest = self.opts.min_sync_period - (time.monotonic() - started)
            if rest > 0:
                await asyncio.sleep(rest)    # changes in the meantime are synced together

    async def ensure_class(self) -> None:
        """The default IngressClass (created once, like k3s' traefik class; a user's edits
        to it are kept)."""
        if not self.opts.make_default_class:
            return
        body = {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
                "metadata": {"name": self.opts.class_name,
                             "annotations": {DEFAULT_ANNOTATION: "true"}},
                "spec": {"controller": CONTROLLER}}
        for attempt in range(30):
            try:
                await self.client.create(INGRESSCLASSES, body)
                log.info("ingress: created the default IngressClass %s", self.opts.class_name)
                return
            except StatusError as e:
                if e.code == 409:
                    return
                log.warning("ingress: cannot create IngressClass %s yet: %s",
                            self.opts.class_name, e)
            except OSError as e:
                log.warning("ingress: API server not reachable yet: %s", e)
            await asyncio.sleep(min(1 + attempt, 5))

    async def _node_addresses(self) -> tuple[str, ...]:
        """This node's InternalIP/ExternalIP (as ServiceLB reports), else the machine's
        primary address."""
        from pybernetes.kubelet.machine import primary_ip
        node_name = self.opts.extra.get("node_name") or ""
        if node_name:
            try:
                node = await self.client.get(NODES, node_name)
                addrs = [a["address"] for a in (node.get("status") or {}).get("addresses") or []
                         if a.get("type") in ("ExternalIP", "InternalIP") and a.get("address")]
                if addrs:
                    return tuple(dict.fromkeys(addrs))
            except (StatusError, OSError) as e:
                log.info("ingress: node %s not readable (%s); using this machine's address",
                         node_name, e)
        return (primary_ip(),)

    # -- one sync -----------------------------------------------------------------------
    def owned(self) -> list[dict]:
        """The Ingresses of our class (or of none, when our class is the default)."""
        ours = {c["metadata"]["name"] for c in self.classes.list()
                if (c.get("spec") or {}).get("controller") == CONTROLLER}
        default_ours = any(is_default(c) for c in self.classes.list()
                           if c["metadata"]["name"] in ours)
        out = []
        for ing in self.ingresses.list():
            if ing["metadata"].get("deletionTimestamp"):
                continue
            name = (ing.get("spec") or {}).get("ingressClassName")
            legacy = ((ing["metadata"].get("annotations") or {})
                      .get(LEGACY_CLASS_ANNOTATION))
            if name in ours or (name is None and legacy in ours) or \
                    (name is None and legacy is None and default_ours):
                out.append(ing)
        return out

    def endpoints(self, table: routes.RouteTable) -> dict[str, list[Address]]:
        out = {}
        for b in table.backends():
            svc = self.services.get(b.namespace, b.service)
            out[b.key] = ready_addresses(b, svc, self.slices.list(b.namespace))
        return out

    def certificates(self, table: routes.RouteTable) -> tuple[dict[tuple[str, str], str],
                                                               list[tuple[str, str]]]:
        """PEM files of the TLS Secrets the table names, and the problems found."""
        out: dict[tuple[str, str], str] = {}
        problems: list[tuple[str, str]] = []
        cert_dir = os.path.join(self.opts.state_dir, "certs")
        for vhost in table.hosts.values():
            if vhost.tls is None or vhost.tls in out:
                continue
            name = "/".join(vhost.tls)
            secret = self.secrets.get(*vhost.tls)
            if secret is None:
                problems.append((vhost.tls_source, f"TLS Secret {name} not found or not of type "
                                 f"kubernetes.io/tls; {vhost.host} gets the default certificate"))
                continue
            path, why = certs.write_secret(cert_dir, secret)
            if path is None:
                problems.append((vhost.tls_source, f"TLS Secret {name}: {why}; {vhost.host} "
                                 "gets the default certificate"))
                continue
            out[vhost.tls] = path
        return out, problems

    def _forget_certs(self, used: set[str]) -> None:
        """Remove key files no config names any more (a replaced or deleted Secret)."""
        cert_dir = os.path.join(self.opts.state_dir, "certs")
        try:
            names = os.listdir(cert_dir)
        except FileNotFoundError:
            return
        for name in names:
            path = os.path.join(cert_dir, name)
            if path not in used:
                try:
                    os.unlink(path)
                except OSError:
                    pass

    def _report(self, problems: list[tuple[str, str]], owned: list[dict]) -> None:
        """Log each problem once and tell its Ingress (a Warning Event, as kubectl
        describe shows); announce newly synced Ingress generations (Normal Sync)."""
        by_key = {f"{i['metadata'].get('namespace')}/{i['metadata']['name']}": i for i in owned}
        for source, text in problems:
            if (source, text) not in self._problems:
                log.warning("ingress: %s: %s", source, text)
                if source in by_key:
                    self.events.event(by_key[source], "Warning", "InvalidConfiguration", text)
        self._problems = set(problems)
        for ing in owned:
            md = ing["metadata"]
            gen = str(md.get("generation", ""))
            if self._synced.get(md.get("uid", "")) != gen:
                self._synced[md.get("uid", "")] = gen
                self.events.event(ing, "Normal", "Sync", "Scheduled for sync")

    async def sync(self) -> None:
        owned = self.owned()
        table = routes.build(owned)
        problems = list(table.problems)
        problems += [(r.source, f"path {r.path!r} has characters nginx cannot match; skipped")
                     for v in table.hosts.values() for r in v.routes
                     if not SAFE_PATH.match(r.path or "/")]
        pems, cert_problems = self.certificates(table)
        text = render(table, self.endpoints(table), pems, self.opts.settings)
        if text != self._config:
            await self.nginx.apply(text)
            self._config = text
            log.info("ingress: nginx configured: %d Ingresses, %d hosts, %d backends",
                     len(owned), len(table.hosts), len(table.backends()))
        self._forget_certs(set(pems.values()))
        self._report(problems + cert_problems, owned)
        self.syncs += 1
        await self.update_status(owned)

    async def update_status(self, owned: list[dict]) -> None:
        """Add this node's addresses to status.loadBalancer.ingress (kept sorted; other
        nodes' entries stay)."""
        for ing in owned:
            lb = ((ing.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
            have = {e.get("ip") for e in lb}
            missing = [a for a in self.opts.status_addresses if a not in have]
            if not missing:
                continue
            entries = lb + [{"ip": a} for a in missing]
            body = dict(ing, status={"loadBalancer": {"ingress": sorted(
                entries, key=lambda e: e.get("ip") or e.get("hostname") or "")}})
            try:
                await self.client.update_status(INGRESSES, body)
            except StatusError as e:
                if e.code not in (404, 409):
                    raise
                self._dirty.set()     # 409: the informer brings the new version; try again
