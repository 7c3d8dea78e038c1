"""PATCH with application/apply-patch+yaml: server-side apply (`kubectl apply --server-side`,
client libraries' `apply`). The field ownership rules live in machinery/managed_fields;
this is the request side: options, the configuration's identity, create-or-update."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

from ..machinery import errors, managed_fields
from ..machinery.jsonvalues import clone
from . import negotiation

if TYPE_CHECKING:
    from .request_info import RequestInfo
    from .resource_store import ResourceStore
    from .rest import ResourceHandler


def _force(request: web.Request) -> bool:
    value = request.query.get("force", "false").lower()
    if value not in ("true", "false", "1", "0", ""):
        raise errors.bad_request(f'invalid value for force: "{value}" (want true or false)')
    return value in ("true", "1")


def _check_configuration(config: Any, rs: "ResourceStore", name: str) -> dict:
    if not isinstance(config, dict):
        raise errors.bad_request(f"the apply configuration must be a {rs.s.kind} object")
    if not config.get("apiVersion") or not config.get("kind"):
        raise errors.bad_request("apiVersion and kind must be set in an apply configuration")
    md = config.get("metadata")
    if not isinstance(md, dict) or not md.get("name"):
        raise errors.bad_request("metadata.name must be set in an apply configuration")
    if md["name"] != name:
        raise errors.bad_request("the name of the object (%s) does not match the name on the "
                                 "URL (%s)" % (md["name"], name))
    return config


async def server_side_apply(handler: "ResourceHandler", request: web.Request,
                            info: "RequestInfo", rs: "ResourceStore", ns: str,
                            subresource: str, config: Any, raw: bytes) -> web.Response:
    from .rest import context, field_validation, json_response
    if (request.headers.get("Content-Type") or "").startswith("application/apply-patch+cbor"):
        raise errors.StatusError(415, "UnsupportedMediaType",
                                 "apply configurations in CBOR are not supported: send "
                                 "application/apply-patch+yaml")
    if subresource:
        raise errors.method_not_allowed("apply")
    manager = request.query.get("fieldManager", "")
    managed_fields.check_manager(manager, apply_patch=True)
    force = _force(request)
    ctx = context(request)
    ctx.applied = True
    config = _check_configuration(config, rs, info.name)
    field_validation(request, rs.s, config, raw, ctx)
    rs.check_body(clone(config), ns, info.name)   # kind, version, namespace, JSON types
    want_rv = config["metadata"].get("resourceVersion")
    target = negotiation.negotiate(request.headers.get("Accept"))

    async def mutate(old: dict | None) -> dict | None:
        if old is None:
            raise _Gone()
        if want_rv and want_rv != old["metadata"].get("resourceVersion"):
            raise errors.conflict(rs.s.plural, info.name, errors.STALE_UPDATE, rs.s.group)
        new = managed_fields.apply(old, config, manager, rs.field_node, force)
        new = rs.check_body(new, ns, info.name)
        return await rs.prepare_update(new, old, ctx)

    for _ in range(3):   # create and delete may race with us; each retry re-reads
        if await rs.try_get(ns, info.name) is None:
            if want_rv:
                raise rs._not_found(info.name)
            new = managed_fields.apply(None, config, manager, rs.field_node, force)
            try:   # the full create: defaults, admission, allocations (a Service's IP)
                created = await rs.create(ns, new, ctx)
            except errors.StatusError as e:
                if e.reason == "AlreadyExists":
                    continue
                raise
            return json_response(created, 201, target, list(dict.fromkeys(ctx.warnings)))
        try:
            result, _ = await rs.guaranteed_update(ns, info.name, mutate, ctx)
        except _Gone:
            continue
        return json_response(result, 200, target, list(dict.fromkeys(ctx.warnings)))
    raise errors.conflict(rs.s.plural, info.name, errors.STALE_UPDATE, rs.s.group)


class _Gone(Exception):
    """The object went away between our read and the update: start over."""
