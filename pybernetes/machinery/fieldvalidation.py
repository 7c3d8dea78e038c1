"""Unknown and duplicate field detection for `fieldValidation=Strict|Warn`.

Paths are written like upstream's strict JSON decoder reports them:
`spec.containers[0].bogus` (no leading dot, `[i]` for list items, map keys as
dotted segments). Maps (additionalProperties), RawExtension / JSON values and
`x-kubernetes-preserve-unknown-fields` accept any key.
"""
from __future__ import annotations

import functools
import json
from typing import Any

import orjson

from . import schema as sch

# A compiled schema node: ("obj", {prop: node_id}) | ("map", node_id) | ("list", node_id) | ("any",)
_ANY = ("any",)


@functools.lru_cache(maxsize=None)
def _compiled(name: str) -> tuple:
    d = sch.definition(name)
    return _compile(d) if d is not None else _ANY


_by_id: dict[int, tuple] = {}


def _compile(node: dict | None) -> tuple:
    """Turn a schema node into a small tuple tree (lazily, via definition names)."""
    if node is None:
        return _ANY
    key = id(node)
    hit = _by_id.get(key)
    if hit is not None:
        return hit
    ref = node.get("$ref")
    if ref is None:
        all_of = node.get("allOf")
        if all_of and len(all_of) == 1:
            ref = all_of[0].get("$ref")
    if ref is not None:
        out: tuple = ("ref", sch.ref_name(ref))
    else:
        out = _compile_plain(node)
    _by_id[key] = out
    return out


def _compile_plain(node: dict) -> tuple:
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return _ANY
    t = sch.plain_type(node)
    if t == "array":
        return ("list", node.get("items"))
    props = node.get("properties")
    if props is not None:
        return ("obj", props)
    ap = node.get("additionalProperties")
    if isinstance(ap, dict):
        return ("map", ap)
    return _ANY


def _resolve(c: tuple) -> tuple:
    while c[0] == "ref":
        c = _compiled(c[1])
    return c


def unknown_fields(obj: Any, schema_name: str, prune: bool = False) -> list[str]:
    """Paths of fields `obj` carries that the schema of `schema_name` does not know.
    With prune=True they are also removed, as decoding into upstream's Go types drops
    them: an unknown field is never stored."""
    out: list[str] = []
    _walk(obj, _compiled(schema_name), "", out, prune)
    return out


def _walk(value: Any, c: tuple, path: str, out: list[str], prune: bool = False) -> None:
    c = _resolve(c)
    kind = c[0]
    if kind == "obj":
        if not isinstance(value, dict):
            return
        props = c[1]
        unknown = []
        for k, v in value.items():
            sub = props.get(k)
            p = f"{path}.{k}" if path else k
            if sub is None:
                out.append(p)
                unknown.append(k)
            elif isinstance(v, (dict, list)):
                _walk(v, _compile(sub), p, out, prune)
        if prune:
            for k in unknown:
                del value[k]
    elif kind == "list":
        if not isinstance(value, list):
            return
        item = _compile(c[1])
        if _resolve(item) is _ANY:
            return
        for i, v in enumerate(value):
            if isinstance(v, (dict, list)):
                _walk(v, item, f"{path}[{i}]", out, prune)
    elif kind == "map":
        if not isinstance(value, dict):
            return
        item = _compile(c[1])
        if _resolve(item) is _ANY:
            return
        for k, v in value.items():
            if isinstance(v, (dict, list)):
                _walk(v, item, f"{path}.{k}" if path else k, out, prune)


class _Obj(dict):
    __slots__ = ("dups",)


def _pairs(pairs: list) -> _Obj:
    d = _Obj()
    d.dups = []
    for k, v in pairs:
        if k in d and k not in d.dups:
            d.dups.append(k)
        d[k] = v
    return d


class _HasDuplicates(Exception):
    pass


def _check_pairs(pairs: list) -> None:
    if len(pairs) > 1 and len({k for k, _ in pairs}) != len(pairs):
        raise _HasDuplicates
    return None  # the structure itself is not needed: this pass only looks


# one decoder for the first pass (json.loads would build one per call)
_CHECK_PAIRS = json.JSONDecoder(object_pairs_hook=_check_pairs)


def _text(raw: bytes) -> str:
    """Bytes to text as json.loads does it (UTF-8/16/32 and a BOM detected)."""
    return raw.decode(json.detect_encoding(raw), "surrogatepass")


def duplicate_fields(raw_json: bytes) -> list[str]:
    """Paths of keys that appear twice in one JSON object of the request body."""
    if b'"' not in raw_json:
        return []
    try:  # a cheap pass first: bodies almost never repeat a key
        _CHECK_PAIRS.decode(_text(raw_json))
        return []
    except _HasDuplicates:
        pass
    except (ValueError, UnicodeDecodeError, RecursionError):
        return []
    try:
        doc = json.loads(raw_json, object_pairs_hook=_pairs)
    except (ValueError, UnicodeDecodeError):
        return []  # not JSON (YAML bodies are checked by their decoder)
    out: list[str] = []
    _dups(doc, "", out)
    return out


def _dups(value: Any, path: str, out: list[str]) -> None:
    if isinstance(value, _Obj):
        for k in value.dups:
            out.append(f"{path}.{k}" if path else k)
        for k, v in value.items():
            _dups(v, f"{path}.{k}" if path else k, out)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _dups(v, f"{path}[{i}]", out)


# ----- JSON type errors (what Go's decoder says about wrong JSON types) -----------------------

_GO_SCALAR = {"integer": "int64", "number": "float64", "boolean": "bool", "string": "string"}


def type_errors(obj: Any, schema_name: str) -> list[str]:
    """Upstream-like decode errors for values of the wrong JSON type, e.g.
    'json: cannot unmarshal string into Go struct field PodSpec.spec.containers.ports.containerPort
    of type int32'."""
    out: list[str] = []
    root = sch.definition(schema_name)
    if root is not None:
        _types(obj, root, schema_name.rsplit(".", 1)[-1], "", out)
    return out


def _json_kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object" if isinstance(v, dict) else "null"


def _type_ok(t: str, value: Any) -> bool:
    if t == "string":
        return isinstance(value, str)
    if t == "object":
        return isinstance(value, dict)
    if t == "array":
        return isinstance(value, list)
    if t == "boolean":
        return isinstance(value, bool)
    if t == "integer":
        return isinstance(value, (int, float)) and not isinstance(value, bool) and \
            float(value).is_integer()
    if t == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return True


class _TypeNode:
    """What the type check needs of one schema node, worked out once per node."""

    __slots__ = ("skip", "t", "own", "go", "props", "ap", "items")

    def __init__(self, node: dict):
        ref = node.get("$ref")
        self.own = sch.ref_name(ref).rsplit(".", 1)[-1] if ref else ""
        resolved = sch.resolve(node)
        t = sch.plain_type(resolved)
        self.skip = bool(resolved.get("x-kubernetes-preserve-unknown-fields") or
                         resolved.get("x-kubernetes-int-or-string") or
                         sch.any_of(resolved) or t is None)
        self.t = t or ""
        self.go = _go_type(resolved, t, self.own) if t else ""
        self.props: dict = resolved.get("properties") or {}
        ap = resolved.get("additionalProperties")
        self.ap: dict | None = ap if isinstance(ap, dict) else None
        items = resolved.get("items")
        self.items: dict | None = items if isinstance(items, dict) else None


_type_nodes: dict[int, _TypeNode] = {}


def _type_node(node: dict) -> _TypeNode:
    # schema nodes live as long as the process (definitions() is cached): id() is stable
    n = _type_nodes.get(id(node))
    if n is None:
        n = _type_nodes[id(node)] = _TypeNode(node)
    return n


def _types(value: Any, node: dict, struct: str, path: str, out: list[str]) -> None:
    """`struct` is the Go struct holding the field at `path` (upstream names the innermost)."""
    if value is None:
        return
    n = _type_node(node)
    if n.skip:
        return
    if not _type_ok(n.t, value):
        out.append(f"json: cannot unmarshal {_json_kind(value)} into Go struct field "
                   f"{struct}.{path} of type {n.go}")
        return
    if n.t == "object" and isinstance(value, dict):
        props, ap = n.props, n.ap
        inner = n.own or struct
        for k, v in value.items():
            if v is None:
                continue
            sub = props.get(k) or ap
            if sub is None:
                continue
            if isinstance(v, (dict, list)):
                _types(v, sub, inner, f"{path}.{k}" if path else k, out)
                continue
            sn = _type_node(sub)  # a scalar: checked here, without a call per leaf
            if not sn.skip and not _type_ok(sn.t, v):
                out.append(f"json: cannot unmarshal {_json_kind(v)} into Go struct field "
                           f"{inner}.{f'{path}.{k}' if path else k} of type {sn.go}")
    elif n.t == "array" and isinstance(value, list):
        items = n.items
        if items is not None:
            for v in value:
                _types(v, items, struct, path, out)


def _go_type(node: dict, t: str, ref_name: str) -> str:
    if ref_name:
        return "v1." + ref_name
    fmt = node.get("format")
    if t == "integer":
        return fmt if fmt in ("int32", "int64") else "int64"
    if t == "number":
        return "float64"
    if t == "array":
        return "[]" + _go_elem(node.get("items"))
    if t == "object":
        return "map[string]" + _go_elem(node.get("additionalProperties"))
    return _GO_SCALAR.get(t, t)


def _go_elem(node: Any) -> str:
    if not isinstance(node, dict):
        return "interface {}"
    if "$ref" in node:
        return "v1." + sch.ref_name(node["$ref"]).rsplit(".", 1)[-1]
    return _GO_SCALAR.get(sch.plain_type(node) or "", "interface {}")


def zero_nulls(obj: Any, schema_name: str) -> None:
    """Decode JSON nulls like upstream's Go decoder, in place: a null struct field is
    left unset (dropped) and a null list item or map value becomes its type's zero
    value, so strategies never see None where they expect a dict or a string."""
    root = sch.definition(schema_name)
    if root is None:
        return
    try:  # most objects hold no null at all: one C-speed encode tells (a string may say
        if b"null" not in orjson.dumps(obj):  # "null": then the walk just finds none)
            return
    except TypeError:
        pass
    _nulls(obj, root)


class _NullNode:
    """What the null pass needs of one schema node, worked out once per node."""

    __slots__ = ("open", "props", "ap", "items", "zero")

    def __init__(self, node: dict):
        resolved = sch.resolve(node)
        self.open = bool(resolved.get("x-kubernetes-preserve-unknown-fields"))
        self.props: dict = resolved.get("properties") or {}
        ap = resolved.get("additionalProperties")
        self.ap: dict | None = ap if isinstance(ap, dict) else None
        items = resolved.get("items")
        self.items: dict | None = items if isinstance(items, dict) else None
        if self.open or resolved.get("x-kubernetes-int-or-string") or sch.any_of(resolved):
            self.zero: Any = None
        else:
            self.zero = _ZERO.get(sch.plain_type(resolved) or "")


_null_nodes: dict[int, _NullNode] = {}


def _null_node(node: dict) -> _NullNode:
    n = _null_nodes.get(id(node))
    if n is None:
        n = _null_nodes[id(node)] = _NullNode(node)
    return n


_ZERO: dict[str, Any] = {"object": {}, "array": [], "string": "", "integer": 0, "number": 0,
                         "boolean": False}


def _zero(node: dict | None) -> Any:
    """A fresh zero value of the node's type (None: no zero, leave the null)."""
    if not isinstance(node, dict):
        return None
    z = _null_node(node).zero
    return type(z)() if isinstance(z, (dict, list)) else z


def _nulls(value: Any, node: dict) -> None:
    n = _null_node(node)
    if n.open:
        return
    if isinstance(value, dict):
        props, ap = n.props, n.ap
        for k in list(value):
            sub = props.get(k)
            if sub is None and ap is not None:
                if value[k] is None and (z := _zero(ap)) is not None:
                    value[k] = z
                sub = ap
            elif value[k] is None and sub is not None:
                del value[k]
                continue
            if sub is not None and isinstance(value[k], (dict, list)):
                _nulls(value[k], sub)
    elif isinstance(value, list):
        items = n.items
        if items is None:
            return
        for i, v in enumerate(value):
            if v is None and (z := _zero(items)) is not None:
                value[i] = v = z
            if isinstance(v, (dict, list)):
                _nulls(v, items)
