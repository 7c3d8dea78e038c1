"""pods/binding: the scheduler's way of assigning a pod to a node."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from ..machinery import errors
from ..machinery.printing import now_rfc3339
from .request_info import RequestInfo
from .resource_store import ResourceStore

if TYPE_CHECKING:
    from .rest import ResourceHandler


async def handle_binding(h: "ResourceHandler", request: web.Request, info: RequestInfo,
                         rs: ResourceStore, ns: str) -> web.Response:
    from .rest import context, json_response, read_body, reject_wrong_types
    body, _ = await read_body(request, h.api.config.max_request_bytes)
    if not isinstance(body, dict) or body.get("kind", "Binding") != "Binding":
        raise errors.bad_request("the body must be a Binding object")
    reject_wrong_types(body, "io.k8s.api.core.v1.Binding", "Binding", "v1")
    target = body.get("target") or {}
    node = target.get("name")
    if not node:
        raise errors.invalid("Binding", info.name, [errors.required("target.name")])
    ctx = context(request)

    async def mutate(pod: dict | None) -> dict | None:
        if pod is None:
            raise rs._not_found(info.name)
        md = pod["metadata"]
        want_uid = (body.get("metadata") or {}).get("uid")
        if want_uid and want_uid != md.get("uid"):
            raise errors.conflict("pods", info.name, "Precondition failed: UID in precondition: "
                                  f"{want_uid}, UID in object meta: {md.get('uid')}")
        if md.get("deletionTimestamp"):
            raise errors.conflict("pods", info.name, "pod is being deleted, cannot be assigned "
                                  "to a host")
        spec = pod.setdefault("spec", {})
        if spec.get("nodeName"):
            raise errors.conflict("pods", info.name, f"pod {info.name} is already assigned to "
                                  f"node \"{spec['nodeName']}\"")
        spec["nodeName"] = node
        for k, v in ((body.get("metadata") or {}).get("annotations") or {}).items():
            md.setdefault("annotations", {})[k] = v
        conds = pod.setdefault("status", {}).setdefault("conditions", [])
        conds[:] = [c for c in conds if c.get("type") != "PodScheduled"]
        conds.append({"type": "PodScheduled", "status": "True",
                      "lastProbeTime": None, "lastTransitionTime": now_rfc3339()})
        return pod

    await rs.guaranteed_update(ns, info.name, mutate, ctx)
    return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {},
                          "status": "Success", "code": 201}, 201)
