"""HTTP handlers for resource requests: turn a request into a ResourceStore call.

The path was parsed into a RequestInfo by the pipeline (app.py); this module
chooses the operation, reads options from the query and body, and encodes the
result in the form the client asked for (object, Table, PartialObjectMetadata).
"""
from __future__ import annotations

import copy
import dataclasses
from typing import TYPE_CHECKING, Any, Collection

from aiohttp import web

from ..api.strategy import Strategy
from ..machinery import errors, fieldvalidation, schema
from ..machinery.selectors import FieldSelector, LabelSelector
from ..machinery.streams import read_capped
from . import negotiation, table
from .negotiation import Target
from .request_info import RequestInfo
from .resource_store import Context, ListOptions, ResourceStore, scoped, unscope

if TYPE_CHECKING:
    from .state import APIState

NOT_FOUND_RESOURCE = "the server could not find the requested resource"
_BASIC_SUBRESOURCES = {"status", "scale", "binding", "finalize"}


def _404() -> errors.StatusError:
    return errors.StatusError(404, "NotFound", NOT_FOUND_RESOURCE, {})


def json_response(body: Any, status: int = 200, target: Target | None = None,
                  warnings: list[str] | None = None) -> web.Response:
    media = target.media if target else negotiation.JSON
    resp = web.Response(body=negotiation.encode(body, media), status=status,
                        content_type=media)
    for w in warnings or ():
        if w.isprintable():  # upstream drops a warning with control characters
            escaped = w.replace("\\", "\\\\").replace('"', '\\"')
            resp.headers.add("Warning", f'299 - "{escaped}"')
    return resp


# ----- options ------------------------------------------------------------------
def context(request: web.Request, body_options: dict | None = None) -> Context:
    q = request.query
    dry = q.getall("dryRun", [])
    if body_options and body_options.get("dryRun"):
        dry = dry + list(body_options["dryRun"])
    for d in dry:
        if d != "All":
            raise errors.bad_request(f'Invalid dry run value: {d!r}: supported values: "All"'
                                     .replace("'", '"'))
    from ..machinery import managed_fields
    manager = q.get("fieldManager", "")
    managed_fields.check_manager(manager, apply_patch=False)
    if not manager:   # upstream credits the user agent's product name
        manager = managed_fields.manager_from_user_agent(request.headers.get("User-Agent", ""))
    return Context(user=request["user"], dry_run=bool(dry), field_manager=manager)


def list_options(request: web.Request) -> ListOptions:
    q = request.query
    opts = ListOptions()
    if q.get("labelSelector"):
        opts.label_selector = LabelSelector.parse(q["labelSelector"])
    if q.get("fieldSelector"):
        opts.field_selector = FieldSelector.parse(q["fieldSelector"])
    try:
        opts.limit = max(int(q.get("limit") or 0), 0)  # like upstream, a negative limit is none
    except ValueError:
        raise errors.bad_request(f"limit: Invalid value: {q.get('limit')!r}: must be an integer")
    opts.continue_token = q.get("continue", "")
    opts.resource_version = q.get("resourceVersion", "")
    opts.resource_version_match = q.get("resourceVersionMatch", "")
    return opts


def check_field_selector(strategy: Strategy, opts: ListOptions) -> None:
    """Unknown fieldSelector keys are a 400, like upstream's field label conversion."""
    if opts.field_selector is None:
        return
    try:
        probe = strategy.field_labels({"metadata": {}, "spec": {}, "status": {}})
    except (KeyError, TypeError, AttributeError, IndexError):
        return  # a strategy that cannot describe its labels without an object: match as given
    allowed = set(probe)
    for key in opts.field_selector.keys():
        if key not in allowed:
            raise errors.bad_request(f'field label not supported: {key}')


def field_validation(request: web.Request, strategy: Strategy, obj: Any, raw: bytes | None,
                     ctx: Context, only: Collection[str] | None = None) -> None:
    """fieldValidation=Strict|Warn|Ignore against the v1.33 schema (Warn by default).
    Unknown fields are dropped in every mode, as upstream's typed decoding does.
    With `only`, just those top-level fields are looked at (see ResourceStore.check_body)."""
    mode = request.query.get("fieldValidation", "Warn")
    if mode not in ("Strict", "Warn", "Ignore"):
        raise errors.bad_request(f"fieldValidation: Invalid value: \"{mode}\": must be one of "
                                 "Ignore, Warn, or Strict")
    if not isinstance(obj, dict):
        return
    name = schema.definition_name_for(strategy.group, strategy.version, strategy.kind)
    if name is None:
        return
    part = scoped(obj, only)
    unknown = fieldvalidation.unknown_fields(part, name, prune=mode != "Strict")
    unscope(obj, part, only)
    if mode == "Ignore":
        return
    problems = [f"unknown field {errors.go_quote(p)}" for p in unknown]
    if raw is not None:
        problems += [f"duplicate field {errors.go_quote(p)}"
                     for p in fieldvalidation.duplicate_fields(raw)]
    if not problems:
        return
    if mode == "Strict":
        raise errors.bad_request(
            f'{strategy.kind} in version "{strategy.version}" cannot be handled as a '
            f"{strategy.kind}: strict decoding error: " + ", ".join(problems))
    ctx.warnings.extend(problems)


async def read_body(request: web.Request, limit: int) -> tuple[Any, bytes]:
    if request.content_length is not None and request.content_length > limit:
        raise errors.too_large()
    raw = await read_capped(request.content, limit)
    if len(raw) > limit:
        raise errors.too_large()
    return negotiation.decode_body(raw, request.headers.get("Content-Type")), raw


# ----- the handler -----------------------------------------------------------------
class ResourceHandler:
    def __init__(self, api: "APIState"):
        self.api = api

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        info: RequestInfo = request["info"]
        strategy = self.api.strategy(info.group, info.version, info.resource)
        if strategy is None:
            raise _404()
        if strategy.virtual:
            return await self._virtual(request, info, strategy)
        rs = self.api.resource(info.group, info.version, info.resource)
        assert rs is not None
        ns = info.namespace if strategy.namespaced else ""
        if not strategy.namespaced and info.namespace and info.resource != "namespaces":
            raise _404()
        if info.subresource:
            return await self._subresource(request, info, rs, ns)
        verb = info.verb
        if verb not in strategy.verbs or (verb in ("update", "patch") and not info.name):
            raise errors.method_not_allowed(verb)
        handler = getattr(self, "_" + verb, None)
        if handler is None:
            raise errors.method_not_allowed(verb)
        return await handler(request, info, rs, ns)

    # ----- reads --------------------------------------------------------------
    async def _get(self, request: web.Request, info: RequestInfo, rs: ResourceStore,
                   ns: str) -> web.Response:
        target = negotiation.negotiate(request.headers.get("Accept"))
        obj = await rs.get_for_read(ns, info.name)
        return self._render_one(rs.s, obj, target, request)

    def _render_one(self, s: Strategy, obj: dict, target: Target,
                    request: web.Request) -> web.Response:
        if target.form == "Table":
            include = request.query.get("includeObject", "Metadata")
            body = table.table(s, [obj], {"resourceVersion": obj["metadata"].get(
                "resourceVersion", "")}, include, target.table_version)
        elif target.form == "PartialObjectMetadata":
            body = table.partial_metadata(obj, target.table_version)
        else:
            body = obj
        return json_response(body, target=target)

    async def _list(self, request: web.Request, info: RequestInfo, rs: ResourceStore,
                    ns: str) -> web.Response:
        target = negotiation.negotiate(request.headers.get("Accept"))
        opts = list_options(request)
        check_field_selector(rs.s, opts)
        items, meta = await rs.list(ns, opts)
        if target.form == "Table":
            include = request.query.get("includeObject", "Metadata")
            body = table.table(rs.s, items, meta, include, target.table_version)
        elif target.form in ("PartialObjectMetadataList", "PartialObjectMetadata"):
            body = table.partial_list(items, meta, target.table_version)
        else:
            body = {"kind": rs.s.kind + "List", "apiVersion": rs.s.api_version(),
                    "metadata": meta, "items": items}
        return json_response(body, target=target)

    async def _watch(self, request: web.Request, info: RequestInfo, rs: ResourceStore,
                     ns: str) -> web.StreamResponse:
        from .watch import serve_watch
        target = negotiation.negotiate(request.headers.get("Accept"))
        opts = list_options(request)
        check_field_selector(rs.s, opts)
        if info.name:  # /watch/namespaces/x/pods/name: a watch on one object
            by_name = FieldSelector.parse(f"metadata.name={info.name}")
            opts.field_selector = by_name if opts.field_selector is None else \
                FieldSelector.parse(f"{opts.field_selector},metadata.name={info.name}")
        return await serve_watch(request, rs, ns, opts, target)

    # ----- writes --------------------------------------------------------------
    async def _create(self, request: web.Request, info: RequestInfo, rs: ResourceStore,
                      ns: str) -> web.Response:
        if info.name:
            raise errors.method_not_allowed("create")
        obj, raw = await read_body(request, self.api.config.max_request_bytes)
        ctx = context(request)
        field_validation(request, rs.s, obj, raw, ctx)
        target = negotiation.negotiate(request.headers.get("Accept"))
        created = await rs.create(ns, obj, ctx)
        return json_response(created, 201, target, ctx.warnings)

    async def _update(self, request: web.Request, info: RequestInfo, rs: ResourceStore,
                      ns: str, subresource: str = "") -> web.Response:
        obj, raw = await read_body(request, self.api.config.max_request_bytes)
        ctx = context(request)
        field_validation(request, rs.s, obj, raw, ctx)
        target = negotiation.negotiate(request.headers.get("Accept"))
        result, created = await rs.update(ns, info.name, obj, ctx, subresource)
        return json_response(result, 201 if created else 200, target, ctx.warnings)

    async def _patch(self, request: web.Request, info: RequestInfo, rs: ResourceStore,
                     ns: str, subresource: str = "") -> web.Response:
        from .patching import apply_patch, patch_type, touched_fields
        ptype = patch_type(request.headers.get("Content-Type"))
        patch, raw = await read_body(request, self.api.config.max_request_bytes)
        if ptype == "apply":
            from .apply import server_side_apply
            return await server_side_apply(self, request, info, rs, ns, subresource, patch, raw)
        touched = touched_fields(ptype, patch)
        ctx = context(request)
        target = negotiation.negotiate(request.headers.get("Accept"))
        name = info.name
        schema_name = schema.definition_name_for(rs.s.group, rs.s.version, rs.s.kind) or ""

        async def mutate(old: dict | None) -> dict | None:
            if old is None:
                raise rs._not_found(name)
            patched = apply_patch(old, ptype, patch, schema_name)
            # the stored object was checked when written: look only where the patch went
            field_validation(request, rs.s, patched, None, ctx, touched)
            patched = rs.check_body(patched, ns, name, touched)
            want_rv = patched["metadata"].get("resourceVersion")
            if want_rv and want_rv != old["metadata"].get("resourceVersion"):
                raise errors.conflict(rs.s.plural, name, errors.STALE_UPDATE, rs.s.group)
            return await rs.prepare_update(patched, old, ctx, subresource)

        result, _ = await rs.guaranteed_update(ns, name, mutate, ctx)
        # a warning may be recorded once per retry: keep each once
        return json_response(result, 200, target, list(dict.fromkeys(ctx.warnings)))

    async def _delete(self, request: web.Request, info: RequestInfo, rs: ResourceStore,
                      ns: str) -> web.Response:
        options = await delete_options(request, self.api.config.max_request_bytes)
        ctx = context(request, options)
        obj, deleted = await rs.delete(ns, info.name, options, ctx)
        if deleted:
            return json_response(rs.deleted_response(obj))
        return json_response(obj)

    async def _deletecollection(self, request: web.Request, info: RequestInfo,
                                rs: ResourceStore, ns: str) -> web.Response:
        options = await delete_options(request, self.api.config.max_request_bytes)
        ctx = context(request, options)
        opts = list_options(request)
        check_field_selector(rs.s, opts)
        opts.limit, opts.continue_token = 0, ""
        items, meta = await rs.list(ns, opts)
        gone = []
        for item in items:
            md = item["metadata"]
            try:
                obj, _ = await rs.delete(md.get("namespace", ""), md["name"], options, ctx)
                gone.append(obj)
            except errors.StatusError as e:
                if e.code != 404:
                    raise
        return json_response({"kind": rs.s.kind + "List", "apiVersion": rs.s.api_version(),
                              "metadata": meta, "items": gone})

    # ----- subresources ----------------------------------------------------------
    async def _subresource(self, request: web.Request, info: RequestInfo, rs: ResourceStore,
                           ns: str) -> web.StreamResponse:
        sub, verb = info.subresource, info.verb
        if sub not in rs.s.subresources:
            raise _404()
        if sub == "status":
            if verb == "get":
                return await self._get(request, info, rs, ns)
            if verb == "update":
                return await self._update(request, info, rs, ns, "status")
            if verb == "patch":
                return await self._patch(request, info, rs, ns, "status")
        elif sub == "finalize" and verb == "update":
            return await self._update(request, info, rs, ns, "finalize")
        elif sub == "approval":
            if verb == "get":
                return await self._get(request, info, rs, ns)
            if verb in ("update", "patch"):
                return await getattr(self, "_" + verb)(request, info, rs, ns, "approval")
        elif sub == "scale":
            from .scale import handle_scale
            return await handle_scale(self, request, info, rs, ns)
        elif sub == "binding" and verb == "create":
            from .binding import handle_binding
            return await handle_binding(self, request, info, rs, ns)
        elif sub == "eviction" and rs.s.kind == "Pod":
            from .eviction import handle_eviction
            return await handle_eviction(self, request, info, rs, ns)
        elif sub == "token" and rs.s.kind == "ServiceAccount":
            from .serviceaccount_tokens import handle_token_request
            return await handle_token_request(self, request, info, rs, ns)
        elif sub not in _BASIC_SUBRESOURCES:
            return await self._node_subresource(request, info, rs, ns)
        raise errors.method_not_allowed(verb)

    async def _node_subresource(self, request: web.Request, info: RequestInfo,
                                rs: ResourceStore, ns: str) -> web.StreamResponse:
        """log/exec/attach/portforward (and proxy, later): served by the pod's kubelet."""
        from .node_proxy import handle
        return await handle(self, request, info, rs, ns)

    async def _virtual(self, request: web.Request, info: RequestInfo,
                       strategy: Strategy) -> web.Response:
        if info.verb != "create":
            raise errors.method_not_allowed(info.verb)
        obj, _ = await read_body(request, self.api.config.max_request_bytes)
        if not isinstance(obj, dict):
            raise errors.bad_request(f"the body of the request must be a {strategy.kind} object")
        name = schema.definition_name_for(strategy.group, strategy.version, strategy.kind)
        if name:
            reject_wrong_types(obj, name, strategy.kind, strategy.version)
            fieldvalidation.zero_nulls(obj, name)
        if strategy.namespaced:  # (LocalSubjectAccessReview) the URL's namespace is its own
            if not info.namespace:
                raise _404()
            md = obj.setdefault("metadata", {})
            if not isinstance(md, dict) or md.setdefault("namespace", info.namespace) \
                    != info.namespace:
                raise errors.bad_request("the namespace of the provided object does not "
                                         "match the namespace sent on the request")
        user = request["user"]
        result = await strategy.handle_create(  # type: ignore[attr-defined]
            copy.deepcopy(obj), dataclasses.asdict(user), api=self.api)
        return json_response(result, 201)


async def delete_options(request: web.Request, limit: int) -> dict:
    """DeleteOptions from the body (kubectl sends them there) and the query."""
    options: dict[str, Any] = {}
    if request.can_read_body:
        raw = await read_capped(request.content, limit)
        if len(raw) > limit:
            raise errors.too_large()
        if raw.strip():
            body = negotiation.decode_body(raw, request.headers.get("Content-Type"))
            if not isinstance(body, dict):
                raise errors.bad_request("the body of a delete must be a DeleteOptions object")
            check_delete_options(body)
            options.update(body)
    q = request.query
    if "gracePeriodSeconds" in q:
        try:
            options["gracePeriodSeconds"] = int(q["gracePeriodSeconds"])
        except ValueError:
            raise errors.bad_request("gracePeriodSeconds must be an integer")
    if "propagationPolicy" in q:
        options["propagationPolicy"] = q["propagationPolicy"]
    if "orphanDependents" in q:
        options["orphanDependents"] = q["orphanDependents"].lower() == "true"
    policy = options.get("propagationPolicy")
    if policy is not None and policy not in ("Orphan", "Background", "Foreground"):
        raise errors.invalid("DeleteOptions", "", [errors.not_supported(
            "propagationPolicy", policy, ["Foreground", "Background", "Orphan"])])
    return options


def check_delete_options(body: dict) -> None:
    """Wrongly-typed DeleteOptions are a 400 (and delete nothing), like upstream's decoder."""
    reject_wrong_types(body, "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions",
                       "DeleteOptions", "v1")


def reject_wrong_types(body: Any, schema_name: str, kind: str, version: str) -> None:
    """400 for a body with values of the wrong JSON type, worded like upstream's decoder."""
    problems = fieldvalidation.type_errors(body, schema_name)
    if problems:
        raise errors.bad_request(f'{kind} in version "{version}" cannot be handled as a '
                                 f"{kind}: {problems[0]}")
