"""The /openapi/v2 and /openapi/v3 documents.

Schemas come from the v1.33 definitions shipped by kubernetes-validate
(pybernetes.machinery.schema), converted back from that package's JSON-schema
form to OpenAPI; paths and operations are generated from the registry. kubectl
reads v3 for `explain`, for `--validate=strict` (it looks for a `fieldValidation`
parameter on the PATCH operation carrying the kind's GVK) and for client-side
apply (the patch media types tell it a strategic merge patch is accepted).

Every document is built once, on first use, and served as cached bytes. v3
group-version documents are addressed by hash; a request naming the current
hash may be cached forever by the client.
"""
from __future__ import annotations

import functools
import hashlib
import time
from email.utils import formatdate
from typing import Any, Iterable

import orjson
from aiohttp import web

from ..api.strategy import Registry, Strategy
from ..machinery import schema
from ..machinery.errors import StatusError
from ..machinery.protobuf import encode_bytes_field as _len, encode_varint as _varint
from .discovery import CachedDocuments, subresource_info

META = "io.k8s.apimachinery.pkg.apis.meta.v1."
STATUS, DELETE_OPTIONS, PATCH = META + "Status", META + "DeleteOptions", META + "Patch"
WATCH_EVENT = META + "WatchEvent"
INT_OR_STRING = "io.k8s.apimachinery.pkg.util.intstr.IntOrString"
QUANTITY = "io.k8s.apimachinery.pkg.api.resource.Quantity"
PROTOBUF = "application/vnd.kubernetes.protobuf"
OBJECT_MEDIA = ("application/json", "application/yaml", PROTOBUF)
LIST_MEDIA = OBJECT_MEDIA + ("application/json;stream=watch", PROTOBUF + ";stream=watch")
PATCH_MEDIA = ("application/apply-patch+yaml", "application/json-patch+json",
               "application/merge-patch+json", "application/strategic-merge-patch+json")
# Subresources reached through `connect` (streams, proxies) are not described.
CONNECT_SUBRESOURCES = {"exec", "attach", "portforward", "proxy"}

# Types the package renders as `oneOf`. OpenAPI v2 (and kubectl's v2 readers) know them
# as strings; v3 keeps the alternatives, as upstream, so `kubectl explain` names them.
INT_OR_STRING_DOC = "An int or a string: a number of items or a percentage like \"50%\"."
QUANTITY_DOC = "A fixed-point number with an optional SI or binary suffix, e.g. \"100m\", \"1.5Gi\", \"2\"."
V2_SCALARS = {
    INT_OR_STRING: {"description": INT_OR_STRING_DOC, "type": "string", "format": "int-or-string"},
    QUANTITY: {"description": QUANTITY_DOC, "type": "string"},
}
V3_SCALARS = {
    INT_OR_STRING: {"description": INT_OR_STRING_DOC, "format": "int-or-string",
                    "oneOf": [{"type": "integer"}, {"type": "string"}]},
    QUANTITY: {"description": QUANTITY_DOC, "oneOf": [{"type": "string"}, {"type": "number"}]},
}


# ----- schema conversion -------------------------------------------------------------

def _convert(node: Any, ref_prefix: str, v3: bool) -> Any:
    """One JSON-schema node of the package -> OpenAPI (v2 or v3)."""
    if isinstance(node, list):
        return [_convert(x, ref_prefix, v3) for x in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$ref":
            out[key] = ref_prefix + schema.ref_name(value)
        elif key == "type" and isinstance(value, list):
            plain = schema.plain_type(node)
            if plain:
                out[key] = plain
        elif key == "properties":
            out[key] = {name: _convert(p, ref_prefix, v3) for name, p in value.items()}
        elif key in ("enum", "required") or key.startswith("x-kubernetes-"):
            out[key] = value
        else:
            out[key] = _convert(value, ref_prefix, v3)
    if v3 and "$ref" in out and len(out) > 1:  # v3 forbids siblings of $ref: wrap as upstream
        out["allOf"] = [{"$ref": out.pop("$ref")}]
    return out


def _convert_definition(name: str, node: dict, ref_prefix: str, v3: bool) -> dict:
    scalars = V3_SCALARS if v3 else V2_SCALARS
    if name in scalars:
        return orjson.loads(orjson.dumps(scalars[name]))  # a private copy
    out = _convert(node, ref_prefix, v3)
    for prop in ("apiVersion", "kind"):  # the package pins these with an enum; upstream does not
        p = out.get("properties", {}).get(prop)
        if p is not None:
            p.pop("enum", None)
    return out


@functools.cache
def v2_definitions() -> dict[str, dict]:
    return {n: _convert_definition(n, d, "#/definitions/", False) for n, d in schema.definitions().items()}


@functools.cache
def v3_schemas() -> dict[str, dict]:
    return {n: _convert_definition(n, d, "#/components/schemas/", True)
            for n, d in schema.definitions().items()}


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield schema.ref_name(v)
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for x in node:
            yield from _refs(x)


def reachable(roots: Iterable[str]) -> list[str]:
    """Definition names reachable from `roots` through $refs (sorted)."""
    defs = schema.definitions()
    seen: set[str] = set()
    todo = [r for r in roots if r in defs]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo.extend(r for r in _refs(defs[name]) if r in defs and r not in seen)
    return sorted(seen)


# ----- operations --------------------------------------------------------------------

def _op_group(group: str) -> str:
    """`rbac.authorization.k8s.io` -> `RbacAuthorization`; "" -> `Core` (operationId words)."""
    if not group:
        return "Core"
    return "".join(w[:1].upper() + w[1:] for w in group.removesuffix(".k8s.io").split("."))


def _tag(group: str, version: str) -> str:
    name = group.removesuffix(".k8s.io").replace(".", "_") if group else "core"
    return f"{name}_{version}"


def _gvk(group: str, version: str, kind: str) -> dict:
    return {"group": group, "version": version, "kind": kind}


PARAM_DOCS: dict[str, tuple[str, str]] = {
    "pretty": ("string", "If 'true', the output is pretty printed."),
    "dryRun": ("string", "When present, the request is processed but not persisted. "
                         "The only valid value is All."),
    "fieldManager": ("string", "A name for the actor making the change, recorded in managedFields."),
    "fieldValidation": ("string", "How to treat unknown or duplicate fields in the object: "
                                  "Ignore, Warn (the default) or Strict."),
    "force": ("boolean", "Apply requests only: take ownership of conflicting fields."),
    "allowWatchBookmarks": ("boolean", "Ask for BOOKMARK events in a watch."),
    "continue": ("string", "The continue token from a previous, limited list."),
    "fieldSelector": ("string", "Restrict the list to objects whose fields match."),
    "labelSelector": ("string", "Restrict the list to objects whose labels match."),
    "limit": ("integer", "The most items to return; the rest is reached with `continue`."),
    "resourceVersion": ("string", "Which version of the data to serve (see resourceVersionMatch)."),
    "resourceVersionMatch": ("string", "How resourceVersion is applied: Exact or NotOlderThan."),
    "sendInitialEvents": ("boolean", "With watch: start with synthetic ADDED events for the current state."),
    "timeoutSeconds": ("integer", "Close the list/watch call after this many seconds."),
    "watch": ("boolean", "Watch for changes and stream them as events."),
    "gracePeriodSeconds": ("integer", "Seconds before the object is deleted; 0 deletes immediately."),
    "ignoreStoreReadErrorWithClusterBreakingPotential": (
        "boolean", "Delete an object that cannot be decoded from storage (dangerous)."),
    "orphanDependents": ("boolean", "Deprecated: use propagationPolicy."),
    "propagationPolicy": ("string", "Garbage collection of dependents: Orphan, Background or Foreground."),
    "container": ("string", "The container whose log to stream (optional with a single container)."),
    "follow": ("boolean", "Keep streaming the log as it grows."),
    "previous": ("boolean", "The log of the previous, terminated container instance."),
    "sinceSeconds": ("integer", "Only lines newer than this many seconds."),
    "tailLines": ("integer", "Only this many lines from the end of the log."),
    "timestamps": ("boolean", "Prefix every line with an RFC3339 timestamp."),
}
LIST_PARAMS = ("allowWatchBookmarks", "continue", "fieldSelector", "labelSelector", "limit",
               "resourceVersion", "resourceVersionMatch", "sendInitialEvents", "timeoutSeconds", "watch")
WRITE_PARAMS = ("dryRun", "fieldManager", "fieldValidation")
DELETE_PARAMS = ("dryRun", "gracePeriodSeconds", "ignoreStoreReadErrorWithClusterBreakingPotential",
                 "orphanDependents", "propagationPolicy")


class _Builder:
    """Paths of one strategy, in v2 or v3 form."""

    def __init__(self, v3: bool):
        self.v3 = v3
        self.prefix = "#/components/schemas/" if v3 else "#/definitions/"

    def ref(self, name: str | None) -> dict:
        return {"$ref": self.prefix + name} if name else {"type": "object"}

    def param(self, name: str, where: str = "query", required: bool = False) -> dict:
        typ, doc = PARAM_DOCS.get(name, ("string", f"{name} of the object"))
        p: dict[str, Any] = {"name": name, "in": where, "description": doc}
        if where == "path" or required:
            p["required"] = True
        if self.v3:
            p["schema"] = {"type": typ, "uniqueItems": True}
        else:
            p["type"], p["uniqueItems"] = typ, True
        return p

    def body(self, schema_name: str | None, media: Iterable[str] = ("*/*",),
             required: bool = True) -> dict:
        if self.v3:
            return {"requestBody": {"content": {m: {"schema": self.ref(schema_name)} for m in media},
                                    "required": required}}
        return {"parameters": [{"name": "body", "in": "body", "required": required,
                                "schema": self.ref(schema_name)}], "consumes": list(media)}

    def responses(self, codes: dict[str, str], schema_name: str | None,
                  media: Iterable[str] = OBJECT_MEDIA) -> dict:
        out = {}
        for code, text in codes.items():
            if self.v3:
                out[code] = {"description": text,
                             "content": {m: {"schema": self.ref(schema_name)} for m in media}}
            else:
                out[code] = {"description": text, "schema": self.ref(schema_name)}
        out["401"] = {"description": "Unauthorized"}
        if not self.v3:
            return {"responses": out, "produces": list(media)}
        return {"responses": out}

    def operation(self, op_id: str, action: str, gvk: dict, tag: str, params: Iterable[str],
                  description: str, **parts: Any) -> dict:
        op: dict[str, Any] = {"tags": [tag], "description": description, "operationId": op_id}
        plist = [self.param(p) for p in params]
        for extra in parts.values():  # body parameters (v2) go first, as upstream
            for k, v in extra.items():
                if k == "parameters":
                    plist = v + plist
                else:
                    op[k] = v
        if plist:
            op["parameters"] = plist
        if not self.v3:
            op["schemes"] = ["https"]
        op["x-kubernetes-action"] = action
        op["x-kubernetes-group-version-kind"] = gvk
        return op


def _definition(group: str, version: str, kind: str) -> str | None:
    return schema.definition_name_for(group, version, kind)


def custom_name(s: Strategy) -> str:
    """Upstream's name for a custom resource's schema: reversed group, version, kind."""
    return ".".join(reversed(s.group.split("."))) + f".{s.version}.{s.kind}"


def custom_definition(s: Strategy, v3: bool) -> dict | None:
    """The schema of a resource that brings its own (a CRD's structural schema, OpenAPI v3
    form, as `openapi_schema` on its strategy), with the parts every object has."""
    raw = getattr(s, "openapi_schema", None)
    if not raw:
        return None
    node = orjson.loads(orjson.dumps(raw))  # a private copy
    prefix = "#/components/schemas/" if v3 else "#/definitions/"
    props = node.setdefault("properties", {})
    for field in ("apiVersion", "kind"):
        props.setdefault(field, {"type": "string"})
    meta = {"$ref": prefix + META + "ObjectMeta"}
    props["metadata"] = {"allOf": [meta]} if v3 else meta
    node["type"] = "object"
    node["x-kubernetes-group-version-kind"] = [_gvk(s.group, s.version, s.kind)]
    return node


def _object_definition(s: Strategy) -> str | None:
    if getattr(s, "openapi_schema", None):
        return custom_name(s)
    return _definition(s.group, s.version, s.kind)


def _is_custom(s: Strategy) -> bool:
    """Custom resources (CRDs) take no strategic merge patch."""
    return bool(getattr(s, "crd", None) or getattr(s, "custom", False)
                or getattr(s, "openapi_schema", None))


def _patch_media(s: Strategy) -> tuple[str, ...]:
    return tuple(m for m in PATCH_MEDIA if not (_is_custom(s) and "strategic" in m))


def strategy_paths(s: Strategy, b: _Builder) -> dict[str, dict]:
    """Collection, item and subresource paths of one resource."""
    g, v, kind = s.group, s.version, s.kind
    gvk, tag = _gvk(g, v, kind), _tag(g, v)
    obj, lst = _object_definition(s), _definition(g, v, kind + "List")
    base = f"/apis/{g}/{v}" if g else f"/api/{v}"
    scope = "Namespaced" if s.namespaced else ""
    word = f"{_op_group(g)}{v[:1].upper()}{v[1:]}{scope}{kind}"
    ns_param = [b.param("namespace", "path")] if s.namespaced else []
    coll = f"{base}/namespaces/{{namespace}}/{s.plural}" if s.namespaced else f"{base}/{s.plural}"
    verbs = set(s.verbs)
    out: dict[str, dict] = {}

    item_ops: dict[str, Any] = {}
    coll_ops: dict[str, Any] = {}
    if "list" in verbs:
        coll_ops["get"] = b.operation(f"list{word}", "list", gvk, tag, LIST_PARAMS,
                                      f"list or watch objects of kind {kind}",
                                      r=b.responses({"200": "OK"}, lst, LIST_MEDIA))
    if "create" in verbs:
        coll_ops["post"] = b.operation(f"create{word}", "post", gvk, tag, WRITE_PARAMS,
                                       f"create a {kind}", body=b.body(obj),
                                       r=b.responses({"200": "OK", "201": "Created",
                                                      "202": "Accepted"}, obj))
    if "deletecollection" in verbs:
        coll_ops["delete"] = b.operation(f"deleteCollection{word}", "deletecollection", gvk, tag,
                                         DELETE_PARAMS + LIST_PARAMS, f"delete collection of {kind}",
                                         body=b.body(DELETE_OPTIONS, required=False),
                                         r=b.responses({"200": "OK"}, STATUS))
    if "get" in verbs:
        item_ops["get"] = b.operation(f"read{word}", "get", gvk, tag, (), f"read the specified {kind}",
                                      r=b.responses({"200": "OK"}, obj))
    if "update" in verbs:
        item_ops["put"] = b.operation(f"replace{word}", "put", gvk, tag, WRITE_PARAMS,
                                      f"replace the specified {kind}", body=b.body(obj),
                                      r=b.responses({"200": "OK", "201": "Created"}, obj))
    if "delete" in verbs:
        item_ops["delete"] = b.operation(f"delete{word}", "delete", gvk, tag, DELETE_PARAMS,
                                         f"delete a {kind}", body=b.body(DELETE_OPTIONS, required=False),
                                         r=b.responses({"200": "OK", "202": "Accepted"}, STATUS))
    if "patch" in verbs:
        item_ops["patch"] = b.operation(f"patch{word}", "patch", gvk, tag, WRITE_PARAMS + ("force",),
                                        f"partially update the specified {kind}",
                                        body=b.body(PATCH, _patch_media(s)),
                                        r=b.responses({"200": "OK", "201": "Created"}, obj))
    pretty = [b.param("pretty")]
    if coll_ops:
        out[coll] = {**coll_ops, "parameters": ns_param + pretty}
    if item_ops:
        out[coll + "/{name}"] = {**item_ops, "parameters": [b.param("name", "path")] + ns_param + pretty}
    if s.namespaced and "list" in verbs:
        all_ns = f"list{_op_group(g)}{v[:1].upper()}{v[1:]}{kind}ForAllNamespaces"
        out[f"{base}/{s.plural}"] = {
            "get": b.operation(all_ns, "list", gvk, tag, LIST_PARAMS, f"list or watch objects of kind {kind}",
                               r=b.responses({"200": "OK"}, lst, LIST_MEDIA)),
            "parameters": pretty}
    for sub in s.subresources:
        ops = _subresource_ops(s, sub, b, word, tag)
        if ops:
            out[f"{coll}/{{name}}/{sub}"] = {**ops, "parameters": [b.param("name", "path")] + ns_param + pretty}
    return out


def _subresource_ops(s: Strategy, sub: str, b: _Builder, word: str, tag: str) -> dict:
    if sub in CONNECT_SUBRESOURCES:
        return {}
    g, v, kind, verbs = subresource_info(s, sub)
    gvk = _gvk(g, v, kind)
    name = _object_definition(s) if kind == s.kind and (g, v) == (s.group, s.version) \
        else _definition(g, v, kind)
    title = sub[:1].upper() + sub[1:]
    ops: dict[str, Any] = {}
    if sub == "log":
        return {"get": b.operation(f"read{word}Log", "get", _gvk(s.group, s.version, s.kind), tag,
                                   ("container", "follow", "previous", "sinceSeconds", "tailLines",
                                    "timestamps"), f"read log of the specified {s.kind}",
                                   r=b.responses({"200": "OK"}, None, ("text/plain",)))}
    if "get" in verbs:
        ops["get"] = b.operation(f"read{word}{title}", "get", gvk, tag, (),
                                 f"read {sub} of the specified {s.kind}", r=b.responses({"200": "OK"}, name))
    if "update" in verbs:
        ops["put"] = b.operation(f"replace{word}{title}", "put", gvk, tag, WRITE_PARAMS,
                                 f"replace {sub} of the specified {s.kind}", body=b.body(name),
                                 r=b.responses({"200": "OK", "201": "Created"}, name))
    if "patch" in verbs:
        ops["patch"] = b.operation(f"patch{word}{title}", "patch", gvk, tag, WRITE_PARAMS + ("force",),
                                   f"partially update {sub} of the specified {s.kind}",
                                   body=b.body(PATCH, _patch_media(s)),
                                   r=b.responses({"200": "OK", "201": "Created"}, name))
    if "create" in verbs:
        ops["post"] = b.operation(f"create{word}{title}", "post", gvk, tag, WRITE_PARAMS,
                                  f"create {sub} of a {s.kind}", body=b.body(name),
                                  r=b.responses({"200": "OK", "201": "Created", "202": "Accepted"}, name))
    return ops


# ----- documents ---------------------------------------------------------------------

def _info() -> dict:
    return {"title": "Kubernetes", "version": schema.KUBE_VERSION}


def _customs(strategies: Iterable[Strategy], v3: bool) -> dict[str, dict]:
    out = {}
    for s in strategies:
        if (d := custom_definition(s, v3)) is not None:
            out[custom_name(s)] = d
    return out


def _roots(strategies: Iterable[Strategy]) -> set[str]:
    """Definitions a set of resources needs: kinds, lists, subresource kinds, meta types."""
    roots = {STATUS, DELETE_OPTIONS, PATCH, WATCH_EVENT, META + "ObjectMeta"}
    for s in strategies:
        for k in (s.kind, s.kind + "List"):
            if name := _definition(s.group, s.version, k):
                roots.add(name)
        for sub in s.subresources:
            g, v, kind, _ = subresource_info(s, sub)
            if name := _definition(g, v, kind):
                roots.add(name)
    return roots


def v2_document(registry: Registry) -> dict:
    b = _Builder(False)
    paths: dict[str, dict] = {}
    for s in registry.strategies:
        paths.update(strategy_paths(s, b))
    return {
        "swagger": "2.0",
        "info": _info(),
        "paths": dict(sorted(paths.items())),
        "definitions": {**v2_definitions(), **_customs(registry.strategies, False)},
        "securityDefinitions": {"BearerToken": {"description": "Bearer Token authentication",
                                                "type": "apiKey", "name": "authorization", "in": "header"}},
        "security": [{"BearerToken": []}],
    }


def v3_document(registry: Registry, group: str, version: str) -> dict:
    b = _Builder(True)
    strategies = registry.in_group_version(group, version)
    paths: dict[str, dict] = {}
    for s in strategies:
        paths.update(strategy_paths(s, b))
    all_schemas = v3_schemas()
    return {
        "openapi": "3.0.0",
        "info": _info(),
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {**{n: all_schemas[n] for n in reachable(_roots(strategies))},
                        **_customs(strategies, True)},
            "securitySchemes": {"BearerToken": {"type": "apiKey", "description": "Bearer Token authentication",
                                                "name": "authorization", "in": "header"}},
        },
    }


def v3_path(group: str, version: str) -> str:
    """The index key of a group-version: `api/v1`, `apis/apps/v1`."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


class OpenAPIDocuments(CachedDocuments):
    """Encoded documents of one registry, built once on first use."""

    @functools.cached_property
    def v2_doc(self) -> dict:
        return v2_document(self.registry)

    @functools.cached_property
    def v2(self) -> tuple[bytes, str]:
        body = orjson.dumps(self.v2_doc)
        return body, hashlib.sha512(body).hexdigest().upper()

    @functools.cached_property
    def v2_protobuf(self) -> tuple[bytes, str]:
        body = v2_protobuf(self.v2_doc)
        return body, hashlib.sha512(body).hexdigest().upper()

    @functools.cached_property
    def v3(self) -> dict[str, tuple[bytes, str]]:
        """index path -> (document bytes, hash)."""
        out = {}
        for g, versions in self.registry.groups().items():
            for v in versions:
                body = orjson.dumps(v3_document(self.registry, g, v))
                out[v3_path(g, v)] = (body, hashlib.sha512(body).hexdigest().upper())
        return out

    @functools.cached_property
    def v3_index(self) -> tuple[bytes, str]:
        paths = {p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={h}"} for p, (_, h) in sorted(self.v3.items())}
        body = orjson.dumps({"paths": paths})
        return body, hashlib.sha512(body).hexdigest().upper()


# ----- v2 as protobuf (gnostic openapi.v2.Document) ---------------------------------------
# client-go fetches /openapi/v2 only as protobuf (kubectl 1.27 `explain`, and v2-based
# validation/patching). A small encoder of the message subset our documents use; field
# numbers are those of gnostic's OpenAPIv2.proto. Extension values travel as YAML text
# (JSON is valid YAML), which is how client-go reads them back.

PROTOBUF_V2 = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf"
PROTOBUF_V2_ALIASES = (PROTOBUF_V2, "application/com.github.proto-openapi.spec.v2.v1.0+protobuf")


def _str(field: int, value: str) -> bytes:
    return _len(field, value.encode()) if value else b""


def _bool(field: int, value: bool) -> bytes:
    return _varint(field << 3) + b"\x01" if value else b""


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value) if value else b""


def _any(value: Any) -> bytes:
    """openapi.v2.Any with its `yaml` text."""
    return _str(2, orjson.dumps(value).decode())


def _extensions(field: int, node: dict) -> bytes:
    return b"".join(_len(field, _str(1, k) + _len(2, _any(v)))
                    for k, v in node.items() if k.startswith("x-"))


def _pb_schema(node: dict) -> bytes:
    out = [_str(1, node.get("$ref", "")), _str(2, node.get("format", "")),
           _str(3, node.get("title", "")), _str(4, node.get("description", ""))]
    out += [_int(11, node.get("maxLength", 0)), _int(12, node.get("minLength", 0)),
            _str(13, node.get("pattern", "")), _int(14, node.get("maxItems", 0)),
            _int(15, node.get("minItems", 0)), _bool(16, node.get("uniqueItems", False))]
    out += [_str(19, r) for r in node.get("required", ())]
    out += [_len(20, _any(v)) for v in node.get("enum", ())]
    ap = node.get("additionalProperties")
    if isinstance(ap, dict):
        out.append(_len(21, _len(1, _pb_schema(ap))))
    elif isinstance(ap, bool):
        out.append(_len(21, _varint(2 << 3) + (b"\x01" if ap else b"\x00")))
    if node.get("type"):
        types = node["type"] if isinstance(node["type"], list) else [node["type"]]
        out.append(_len(22, b"".join(_str(1, t) for t in types)))
    if isinstance(node.get("items"), dict):
        out.append(_len(23, _len(1, _pb_schema(node["items"]))))
    out += [_len(24, _pb_schema(x)) for x in node.get("allOf", ())]
    if node.get("properties"):
        out.append(_len(25, b"".join(_len(1, _str(1, k) + _len(2, _pb_schema(v)))
                                     for k, v in node["properties"].items())))
    out.append(_bool(27, node.get("readOnly", False)))
    out.append(_extensions(31, node))
    return b"".join(out)


def _pb_parameter(p: dict) -> bytes:
    """ParametersItem{parameter: Parameter{body | non_body{query | path}}}."""
    if p["in"] == "body":
        body = (_str(1, p.get("description", "")) + _str(2, p["name"]) + _str(3, "body")
                + _bool(4, p.get("required", False)) + _len(5, _pb_schema(p["schema"])))
        param = _len(1, body)
    else:
        common = (_bool(1, p.get("required", False)) + _str(2, p["in"])
                  + _str(3, p.get("description", "")) + _str(4, p["name"]))
        if p["in"] == "path":  # PathParameterSubSchema: type=5, unique_items=19
            sub = _len(4, common + _str(5, p.get("type", "")) + _bool(19, p.get("uniqueItems", False)))
        else:  # QueryParameterSubSchema: type=6, unique_items=20
            sub = _len(3, common + _str(6, p.get("type", "")) + _bool(20, p.get("uniqueItems", False)))
        param = _len(2, sub)
    return _len(1, param)


def _pb_operation(op: dict) -> bytes:
    out = [b"".join(_str(1, t) for t in op.get("tags", ())), _str(3, op.get("description", "")),
           _str(5, op.get("operationId", "")),
           b"".join(_str(6, m) for m in op.get("produces", ())),
           b"".join(_str(7, m) for m in op.get("consumes", ())),
           b"".join(_len(8, _pb_parameter(p)) for p in op.get("parameters", ()))]
    codes = []
    for code, resp in op.get("responses", {}).items():
        r = _str(1, resp.get("description", ""))
        if "schema" in resp:
            r += _len(2, _len(1, _pb_schema(resp["schema"])))
        codes.append(_len(1, _str(1, code) + _len(2, _len(1, r))))
    out.append(_len(9, b"".join(codes)))
    out.append(b"".join(_str(10, x) for x in op.get("schemes", ())))
    out.append(_extensions(13, op))
    return b"".join(out)


PATH_ITEM_FIELDS = {"get": 2, "put": 3, "post": 4, "delete": 5, "options": 6, "head": 7, "patch": 8}


def _pb_path_item(item: dict) -> bytes:
    out = [_len(PATH_ITEM_FIELDS[m], _pb_operation(op)) for m, op in item.items() if m in PATH_ITEM_FIELDS]
    out += [_len(9, _pb_parameter(p)) for p in item.get("parameters", ())]
    return b"".join(out)


def v2_protobuf(doc: dict) -> bytes:
    """The gnostic protobuf encoding of a Swagger 2.0 document built by v2_document()."""
    info = doc["info"]
    out = [_str(1, doc["swagger"]), _len(2, _str(1, info["title"]) + _str(2, info["version"]))]
    out.append(_len(8, b"".join(_len(2, _str(1, path) + _len(2, _pb_path_item(item)))
                                for path, item in doc["paths"].items())))
    out.append(_len(9, b"".join(_len(1, _str(1, name) + _len(2, _pb_schema(d)))
                                for name, d in doc["definitions"].items())))
    for req in doc.get("security", ()):
        out.append(_len(12, b"".join(_len(1, _str(1, k) + _len(2, b"".join(_str(1, s) for s in v)))
                                     for k, v in req.items())))
    sec = []
    for name, d in doc.get("securityDefinitions", {}).items():
        api_key = _str(1, d["type"]) + _str(2, d["name"]) + _str(3, d["in"]) + _str(4, d.get("description", ""))
        sec.append(_len(1, _str(1, name) + _len(2, _len(2, api_key))))
    out.append(_len(13, b"".join(sec)))
    return b"".join(out)


# ----- serving -----------------------------------------------------------------------

def _media_types(accept: str | None) -> list[str]:
    """Acceptable media types, best first (q=0 dropped)."""
    items = []
    for i, raw in enumerate((accept or "*/*").split(",")):
        parts = [p.strip() for p in raw.split(";")]
        q = 1.0
        for p in parts[1:]:
            k, _, val = p.partition("=")
            if k.strip() == "q":
                try:
                    q = float(val)
                except ValueError:
                    q = 0.0
        if parts[0] and q > 0:
            items.append((-q, i, parts[0].lower()))
    return [m for _, _, m in sorted(items)]


def _choose(accept: str | None, protobuf: tuple[str, ...] = ()) -> str:
    """"json", or the protobuf media type asked for; 406 when neither is acceptable."""
    for media in _media_types(accept):
        if media in ("application/json", "application/*", "*/*"):
            return "json"
        if media in protobuf:
            return media
    accepted = ", ".join(("application/json",) + protobuf)
    raise StatusError(406, "NotAcceptable", f"only the following media types are accepted: {accepted}")


def _etag_matches(request: web.Request, etag: str) -> bool:
    return etag in (t.strip() for t in request.headers.get("If-None-Match", "").split(","))


def _serve(request: web.Request, body: bytes, digest: str, headers: dict[str, str] | None = None,
           content_type: str = "application/json") -> web.Response:
    etag = f'"{digest}"'
    h = {"ETag": etag, "Vary": "Accept", **(headers or {})}
    if _etag_matches(request, etag):
        return web.Response(status=304, headers=h)
    return web.Response(body=body, headers={**h, "Content-Type": content_type})


# The app's documents: `app[DOCUMENTS].invalidate()` after the registry changes.
DOCUMENTS = web.AppKey("openapi_documents", OpenAPIDocuments)


def add_routes(app: web.Application, registry: Registry) -> None:
    """Register /openapi/v2 and /openapi/v3[/<path>]; documents are built at first request."""
    docs = app[DOCUMENTS] = OpenAPIDocuments(registry)

    async def v2(request: web.Request) -> web.Response:
        form = _choose(request.headers.get("Accept"), PROTOBUF_V2_ALIASES)
        if form == "json":
            return _serve(request, *docs.v2)
        # "@" is not a token character: the dotted alias is what a MIME parser accepts
        return _serve(request, *docs.v2_protobuf, content_type=PROTOBUF_V2_ALIASES[1])

    async def v3_index(request: web.Request) -> web.Response:
        body, digest = docs.v3_index
        return _serve(request, body, digest)

    async def v3_group_version(request: web.Request) -> web.Response:
        path = request.match_info["path"].strip("/")
        found = docs.v3.get(path)
        if found is None:
            raise StatusError(404, "NotFound", "the server could not find the requested resource")
        _choose(request.headers.get("Accept"))
        body, digest = found
        wanted = request.query.get("hash")
        if wanted and wanted != digest:  # stale link: send the client to the current document
            raise web.HTTPMovedPermanently(f"/openapi/v3/{path}?hash={digest}")
        headers = {}
        if wanted:
            headers = {"Cache-Control": "public, immutable",
                       "Expires": formatdate(time.time() + 365 * 24 * 3600, usegmt=True)}
        return _serve(request, body, digest, headers)

    app.router.add_get("/openapi/v2", v2)
    app.router.add_get("/openapi/v3", v3_index)
    app.router.add_get("/openapi/v3/", v3_index)
    app.router.add_get("/openapi/v3/{path:.+}", v3_group_version)
