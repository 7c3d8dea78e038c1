"""Parse a request path into what is being asked for, like upstream's RequestInfoFactory.

    /api/v1/namespaces/default/pods/web/status
      -> api_prefix=api, group="", version=v1, namespace=default, resource=pods,
         name=web, subresource=status, verb from the method (+ ?watch)
"""
from __future__ import annotations

from dataclasses import dataclass

_NAMESPACE_SUBRESOURCES = ("status", "finalize")
_METHOD_VERBS = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}


@dataclass
class RequestInfo:
    is_resource_request: bool
    path: str
    verb: str
    api_prefix: str = ""  # "api" or "apis"
    group: str = ""
    version: str = ""
    namespace: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    parts: tuple[str, ...] = ()


def _truthy(v: str | None) -> bool:
    return v is not None and v.lower() in ("1", "true", "t", "yes", "y")


def parse(method: str, path: str, query: dict[str, str]) -> RequestInfo:
    """Anything that is not /api/... or /apis/<g>/<v>/... is a non-resource request."""
    verb_nr = method.lower()
    segs = [s for s in path.strip("/").split("/") if s != ""] if path.strip("/") else []
    if not segs or segs[0] not in ("api", "apis"):
        return RequestInfo(False, path, verb_nr)
    prefix = segs[0]
    rest = segs[1:]
    if prefix == "api":
        if len(rest) < 1:
            return RequestInfo(False, path, verb_nr)
        group, version, rest = "", rest[0], rest[1:]
    else:
        if len(rest) < 2:
            return RequestInfo(False, path, verb_nr)
        group, version, rest = rest[0], rest[1], rest[2:]
    if not rest:
        return RequestInfo(False, path, verb_nr)

    info = RequestInfo(True, path, "", prefix, group, version)
    watch_prefix = False
    if rest[0] == "watch":
        watch_prefix, rest = True, rest[1:]
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        info.namespace = rest[1]
        # /namespaces/<ns>/<resource>...; but /namespaces/<name>[/status|/finalize] is the
        # namespace object itself (upstream's namespaceSubresources)
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    info.parts = tuple(rest)
    if rest:
        info.resource = rest[0]
    if len(rest) >= 2:
        info.name = rest[1]
    if len(rest) >= 3:
        info.subresource = rest[2]
    # the namespaces resource: its name is the namespace too (for admission/authz)
    if info.resource == "namespaces" and info.name and not info.namespace:
        info.namespace = info.name

    if watch_prefix:
        info.verb = "watch"
    elif method == "GET" or method == "HEAD":
        if info.name:
            info.verb = "get"
        elif _truthy(query.get("watch")):
            info.verb = "watch"
        else:
            info.verb = "list"
    elif method == "DELETE" and not info.name:
        info.verb = "deletecollection"
    else:
        info.verb = _METHOD_VERBS.get(method, method.lower())
    return info
