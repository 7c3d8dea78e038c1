"""The `scale` subresource: an autoscaling/v1 Scale view of a workload's replicas."""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from aiohttp import web

from ..api.strategy import AGE_COLUMN, NAME_COLUMN, ScaleSpec
from ..machinery import errors
from ..machinery.printing import age, get_path
from ..machinery.selectors import LabelSelector
from .request_info import RequestInfo
from .resource_store import ResourceStore

if TYPE_CHECKING:
    from .rest import ResourceHandler

SCALE_SCHEMA = "io.k8s.api.autoscaling.v1.Scale"


def to_scale(obj: dict, spec: ScaleSpec) -> dict:
    md = obj["metadata"]
    sel = get_path(obj, *spec.selector)
    if spec.selector_is_map:
        selector = str(LabelSelector.from_map(sel or {}))
    else:
        selector = str(LabelSelector.from_api(sel)) if sel else ""
    scale_md = {k: md[k] for k in ("name", "namespace", "uid", "resourceVersion",
                                   "creationTimestamp") if k in md}
    return {"kind": "Scale", "apiVersion": "autoscaling/v1", "metadata": scale_md,
            "spec": {"replicas": get_path(obj, *spec.spec_replicas, default=0)},
            "status": {"replicas": get_path(obj, *spec.status_replicas, default=0),
                       "selector": selector}}


# `kubectl get --subresource=scale` asks for a Table: NAME DESIRED AVAILABLE AGE, as upstream
SCALE_COLUMNS = [
    {"name": "Name", "type": "string", "format": "", "description": NAME_COLUMN.description,
     "priority": 0},
    {"name": "Desired", "type": "integer", "format": "",
     "description": "desired number of instances for the scaled object.", "priority": 0},
    {"name": "Available", "type": "integer", "format": "",
     "description": "actual number of observed instances of the scaled object.", "priority": 0},
    {"name": "Age", "type": "string", "format": "", "description": AGE_COLUMN.description,
     "priority": 0},
]


def _respond(request: web.Request, scale: dict) -> web.Response:
    """The Scale itself, or the one-row Table the client asked for."""
    from . import negotiation
    from .rest import json_response
    from .table import partial_metadata
    target = negotiation.negotiate(request.headers.get("Accept"))
    if target.form != "Table":
        return json_response(scale)
    include = request.query.get("includeObject", "Metadata")
    row: dict = {"cells": [scale["metadata"]["name"], scale["spec"]["replicas"],
                           scale["status"]["replicas"], age(scale)]}
    if include == "Object":
        row["object"] = scale
    elif include != "None":
        row["object"] = partial_metadata(scale, target.table_version)
    body = {"kind": "Table", "apiVersion": f"meta.k8s.io/{target.table_version}",
            "metadata": {"resourceVersion": scale["metadata"].get("resourceVersion", "")},
            "columnDefinitions": SCALE_COLUMNS, "rows": [row]}
    return json_response(body, target=target)


def _set_path(obj: dict, path: tuple[str, ...], value: object) -> None:
    for p in path[:-1]:
        obj = obj.setdefault(p, {})
    obj[path[-1]] = value


async def handle_scale(h: "ResourceHandler", request: web.Request, info: RequestInfo,
                       rs: ResourceStore, ns: str) -> web.Response:
    from .patching import apply_patch, patch_type
    from .rest import context, read_body, reject_wrong_types
    spec = rs.s.scale
    assert spec is not None
    if info.verb == "get":
        return _respond(request, to_scale(await rs.get(ns, info.name), spec))
    if info.verb not in ("update", "patch"):
        raise errors.method_not_allowed(info.verb)
    ptype = patch_type(request.headers.get("Content-Type")) if info.verb == "patch" else ""
    body, _ = await read_body(request, h.api.config.max_request_bytes)
    ctx = context(request)

    async def mutate(old: dict | None) -> dict | None:
        if old is None:
            raise rs._not_found(info.name)
        current = to_scale(old, spec)
        scale = apply_patch(current, ptype, body, SCALE_SCHEMA) if ptype else body
        if not isinstance(scale, dict):
            raise errors.bad_request("the body must be a Scale object")
        reject_wrong_types(scale, SCALE_SCHEMA, "Scale", "v1")
        want_rv = (scale.get("metadata") or {}).get("resourceVersion")
        if want_rv and want_rv != old["metadata"]["resourceVersion"]:
            raise errors.conflict(rs.s.plural, info.name, errors.STALE_UPDATE, rs.s.group)
        replicas = (scale.get("spec") or {}).get("replicas", 0)
        if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
            raise errors.invalid("Scale", info.name, [errors.invalid_value(
                "spec.replicas", replicas, "must be greater than or equal to 0")],
                "autoscaling")
        new = copy.deepcopy(old)
        _set_path(new, spec.spec_replicas, replicas)
        return await rs.prepare_update(new, old, ctx)

    obj, _ = await rs.guaranteed_update(ns, info.name, mutate, ctx)
    return _respond(request, to_scale(obj, spec))
