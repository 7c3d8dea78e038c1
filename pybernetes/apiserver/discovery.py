"""API discovery: the documents clients read to learn which resources exist.

Legacy documents (`/api`, `/api/v1`, `/apis`, `/apis/<g>`, `/apis/<g>/<v>`) and the
aggregated form (`apidiscovery.k8s.io` v2 / v2beta1 APIGroupDiscoveryList) that
kubectl asks for first on `/api` and `/apis`. The decoder a client uses is chosen
by the response Content-Type, so aggregated answers name the version served.

All documents depend only on the registry, so they are built once (at the first
request) and served as cached bytes.
"""
from __future__ import annotations

import base64
import functools
import hashlib
from dataclasses import dataclass

import orjson
from aiohttp import web

from ..api.strategy import Registry, Strategy
from ..machinery.errors import StatusError

DISCOVERY_GROUP = "apidiscovery.k8s.io"
AGGREGATED_VERSIONS = ("v2", "v2beta1")
STATUS_VERBS = ("get", "patch", "update")
PROXY_VERBS = ("create", "delete", "get", "patch", "update")


@dataclass(frozen=True)
class Subresource:
    """How a subresource is advertised: its kind (None: the parent's), where that
    kind lives when it is in another group-version, and its verbs."""

    kind: str | None
    verbs: tuple[str, ...]
    group: str | None = None
    version: str | None = None


# Upstream's advertised subresources (v1.33). `proxy` is handled separately: its kind
# is named after the parent (PodProxyOptions, NodeProxyOptions, ServiceProxyOptions).
SUBRESOURCES: dict[str, Subresource] = {
    "status": Subresource(None, STATUS_VERBS),
    "scale": Subresource("Scale", STATUS_VERBS, "autoscaling", "v1"),
    "binding": Subresource("Binding", ("create",), "", "v1"),
    "eviction": Subresource("Eviction", ("create",), "policy", "v1"),
    "log": Subresource(None, ("get",)),
    "exec": Subresource("PodExecOptions", ("create", "get"), "", "v1"),
    "attach": Subresource("PodAttachOptions", ("create", "get"), "", "v1"),
    "portforward": Subresource("PodPortForwardOptions", ("create", "get"), "", "v1"),
    "ephemeralcontainers": Subresource(None, STATUS_VERBS),
    "resize": Subresource(None, STATUS_VERBS),
    "finalize": Subresource(None, ("update",)),
    "approval": Subresource(None, STATUS_VERBS),
    "token": Subresource("TokenRequest", ("create",), "authentication.k8s.io", "v1"),
}


def subresource_info(strategy: Strategy, name: str) -> tuple[str, str, str, tuple[str, ...]]:
    """(group, version, kind, verbs) advertised for `<plural>/<name>`."""
    if name == "proxy":
        return strategy.group, strategy.version, f"{strategy.kind}ProxyOptions", PROXY_VERBS
    sub = SUBRESOURCES.get(name, Subresource(None, STATUS_VERBS))
    group = strategy.group if sub.group is None else sub.group
    version = strategy.version if sub.version is None else sub.version
    return group, version, sub.kind or strategy.kind, sub.verbs


def storage_version_hash(strategy: Strategy) -> str:
    """A stable opaque hash of the stored group/version/kind (8 bytes, base64), as upstream."""
    digest = hashlib.sha256(f"{strategy.group}/{strategy.version}/{strategy.kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


def _group_version(group: str, version: str) -> str:
    return f"{group}/{version}" if group else version


# ----- legacy documents -------------------------------------------------------------

def _legacy_resource(s: Strategy) -> dict:
    entry: dict = {
        "name": s.plural,
        "singularName": s.resource_singular(),
        "namespaced": s.namespaced,
        "kind": s.kind,
        "verbs": list(s.verbs),
    }
    if s.short_names:
        entry["shortNames"] = list(s.short_names)
    if s.categories:
        entry["categories"] = list(s.categories)
    if "watch" in s.verbs:  # only stored, watchable resources carry a storage hash
        entry["storageVersionHash"] = storage_version_hash(s)
    return entry


def _legacy_subresource(s: Strategy, name: str) -> dict:
    group, version, kind, verbs = subresource_info(s, name)
    entry: dict = {"name": f"{s.plural}/{name}", "singularName": "", "namespaced": s.namespaced,
                   "kind": kind, "verbs": list(verbs)}
    if (group, version) != (s.group, s.version):
        entry["group"], entry["version"] = group, version
    return entry


def resource_list(registry: Registry, group: str, version: str) -> dict:
    """APIResourceList of one group-version (resources and subresources sorted by name)."""
    entries = []
    for s in registry.in_group_version(group, version):
        entries.append(_legacy_resource(s))
        entries.extend(_legacy_subresource(s, sub) for sub in s.subresources)
    entries.sort(key=lambda e: e["name"])
    doc: dict = {"kind": "APIResourceList"}
    if group:  # upstream's /api/v1 list carries no apiVersion; group lists do
        doc["apiVersion"] = "v1"
    doc["groupVersion"] = _group_version(group, version)
    doc["resources"] = entries
    return doc


def _api_group(name: str, versions: list[str]) -> dict:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def group_list(registry: Registry) -> dict:
    groups = [_api_group(g, vs) for g, vs in registry.groups().items() if g]
    return {"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}


def api_versions(registry: Registry, server_address: str) -> dict:
    return {
        "kind": "APIVersions",
        "versions": registry.groups().get("", ["v1"]),
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}],
    }


# ----- aggregated documents ---------------------------------------------------------

def _response_kind(s: Strategy, group: str, version: str, kind: str) -> dict:
    # Upstream leaves group/version empty when they are the resource's own.
    if (group, version) == (s.group, s.version):
        group, version = "", ""
    return {"group": group, "version": version, "kind": kind}


def _aggregated_resource(s: Strategy) -> dict:
    entry: dict = {
        "resource": s.plural,
        "responseKind": _response_kind(s, s.group, s.version, s.kind),
        "scope": "Namespaced" if s.namespaced else "Cluster",
        "singularResource": s.resource_singular(),
        "verbs": list(s.verbs),
    }
    if s.short_names:
        entry["shortNames"] = list(s.short_names)
    if s.categories:
        entry["categories"] = list(s.categories)
    subs = []
    for name in sorted(s.subresources):
        group, version, kind, verbs = subresource_info(s, name)
        subs.append({"subresource": name, "responseKind": _response_kind(s, group, version, kind),
                     "verbs": list(verbs)})
    if subs:
        entry["subresources"] = subs
    return entry


def _aggregated_group(registry: Registry, group: str, versions: list[str]) -> dict:
    out = []
    for v in versions:
        resources = sorted((_aggregated_resource(s) for s in registry.in_group_version(group, v)),
                           key=lambda e: e["resource"])
        out.append({"version": v, "resources": resources, "freshness": "Current"})
    metadata: dict = {"creationTimestamp": None}
    if group:
        metadata["name"] = group
    return {"metadata": metadata, "versions": out}


def aggregated(registry: Registry, legacy: bool, version: str) -> dict:
    """APIGroupDiscoveryList for `/api` (legacy=True: the core group) or `/apis`."""
    items = [_aggregated_group(registry, g, vs) for g, vs in registry.groups().items()
             if (g == "") == legacy]
    return {"kind": "APIGroupDiscoveryList", "apiVersion": f"{DISCOVERY_GROUP}/{version}",
            "metadata": {}, "items": items}


def aggregated_content_type(version: str) -> str:
    return f"application/json;g={DISCOVERY_GROUP};v={version};as=APIGroupDiscoveryList"


# ----- content negotiation ----------------------------------------------------------

def _params(item: str) -> tuple[str, dict[str, str]]:
    parts = [p.strip() for p in item.split(";")]
    params = {}
    for p in parts[1:]:
        k, _, v = p.partition("=")
        params[k.strip().lower()] = v.strip()
    return parts[0].lower(), params


def _q(params: dict[str, str]) -> float:
    try:
        return float(params.get("q", "1"))
    except ValueError:
        return 0.0


def choose_form(accept: str | None) -> str | None:
    """The aggregated version asked for ("v2"/"v2beta1"), None for the legacy document.

    Alternatives are tried in order of q (stable for equal q); protobuf and
    unknown `as=` are skipped. Nothing acceptable: 406.
    """
    if not accept:
        return None
    items = [_params(i) for i in accept.split(",") if i.strip()]
    items = sorted((it for it in items if _q(it[1]) > 0), key=lambda it: -_q(it[1]))
    for media, params in items:
        if media not in ("application/json", "application/*", "*/*"):
            continue
        as_ = params.get("as")
        if as_ is None:
            return None
        if (as_ == "APIGroupDiscoveryList" and params.get("g") == DISCOVERY_GROUP
                and params.get("v") in AGGREGATED_VERSIONS):
            return params["v"]
    raise StatusError(406, "NotAcceptable",
                      "only the following media types are accepted: application/json, "
                      + ", ".join(aggregated_content_type(v) for v in AGGREGATED_VERSIONS))


# ----- serving ----------------------------------------------------------------------

@dataclass(frozen=True)
class Encoded:
    body: bytes
    etag: str  # quoted, as an HTTP entity tag


def _encode(doc: dict) -> Encoded:
    body = orjson.dumps(doc)
    return Encoded(body, '"' + hashlib.sha256(body).hexdigest().upper() + '"')


class CachedDocuments:
    """Documents derived from one registry: each a cached_property, built on first use."""

    def __init__(self, registry: Registry):
        self.registry = registry

    def invalidate(self) -> None:
        """Forget every built document: the registry changed (e.g. a CRD was established)."""
        for name, attr in vars(type(self)).items():
            if isinstance(attr, functools.cached_property):
                self.__dict__.pop(name, None)


class DiscoveryDocuments(CachedDocuments):
    """Every discovery document of one registry, encoded once on first use."""

    @functools.cached_property
    def groups(self) -> dict[str, list[str]]:
        return self.registry.groups()

    @functools.cached_property
    def group_list(self) -> bytes:
        return orjson.dumps(group_list(self.registry))

    @functools.cached_property
    def api_groups(self) -> dict[str, bytes]:
        return {g: orjson.dumps({"kind": "APIGroup", "apiVersion": "v1", **_api_group(g, vs)})
                for g, vs in self.groups.items() if g}

    @functools.cached_property
    def resource_lists(self) -> dict[tuple[str, str], bytes]:
        return {(g, v): orjson.dumps(resource_list(self.registry, g, v))
                for g, vs in self.groups.items() for v in vs}

    @functools.cached_property
    def aggregated(self) -> dict[tuple[bool, str], Encoded]:
        return {(legacy, v): _encode(aggregated(self.registry, legacy, v))
                for legacy in (True, False) for v in AGGREGATED_VERSIONS}


def _not_found() -> StatusError:
    return StatusError(404, "NotFound", "the server could not find the requested resource")


def _json(body: bytes) -> web.Response:
    return web.Response(body=body, content_type="application/json")


def _aggregated_response(request: web.Request, doc: Encoded, version: str) -> web.Response:
    headers = {"ETag": doc.etag, "Vary": "Accept", "Content-Type": aggregated_content_type(version)}
    if doc.etag in (t.strip() for t in request.headers.get("If-None-Match", "").split(",")):
        del headers["Content-Type"]
        return web.Response(status=304, headers=headers)
    return web.Response(body=doc.body, headers=headers)


# The app's documents: `app[DOCUMENTS].invalidate()` after the registry changes.
DOCUMENTS = web.AppKey("discovery_documents", DiscoveryDocuments)


def add_routes(app: web.Application, registry: Registry) -> None:
    """Register the discovery endpoints; documents are built at the first request."""
    docs = app[DOCUMENTS] = DiscoveryDocuments(registry)

    async def api(request: web.Request) -> web.Response:
        form = choose_form(request.headers.get("Accept"))
        if form:
            return _aggregated_response(request, docs.aggregated[(True, form)], form)
        return _json(orjson.dumps(api_versions(registry, request.host)))

    async def apis(request: web.Request) -> web.Response:
        form = choose_form(request.headers.get("Accept"))
        if form:
            return _aggregated_response(request, docs.aggregated[(False, form)], form)
        return _json(docs.group_list)

    async def core_version(request: web.Request) -> web.Response:
        body = docs.resource_lists.get(("", request.match_info["version"]))
        if body is None:
            raise _not_found()
        return _json(body)

    async def group(request: web.Request) -> web.Response:
        body = docs.api_groups.get(request.match_info["group"])
        if body is None:
            raise _not_found()
        return _json(body)

    async def group_version(request: web.Request) -> web.Response:
        key = (request.match_info["group"], request.match_info["version"])
        if not key[0] or (body := docs.resource_lists.get(key)) is None:
            raise _not_found()
        return _json(body)

    app.router.add_get("/api", api)
    app.router.add_get("/api/", api)
    app.router.add_get("/apis", apis)
    app.router.add_get("/apis/", apis)
    app.router.add_get("/api/{version}", core_version)
    app.router.add_get("/apis/{group}", group)
    app.router.add_get("/apis/{group}/{version}", group_version)
