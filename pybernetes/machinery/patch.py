"""PATCH semantics: JSON patch (RFC 6902), merge patch (RFC 7386) and Kubernetes'
strategic merge patch.

Strategic merge patch follows upstream apimachinery's `strategicpatch` apply
rules (MergeParallelList + IgnoreUnmatchedNulls, as the API server uses them),
reading `x-kubernetes-patch-strategy` / `x-kubernetes-patch-merge-key` from the
v1.33 schemas. The functions mutate and return `doc`; callers pass a copy.
"""
from __future__ import annotations

import copy
from typing import Any

from . import schema as sch
from .jsonvalues import clone
from .errors import StatusError, bad_request

# ----- JSON patch (RFC 6902) ------------------------------------------------------------------


_REJECTED = "the server rejected our request due to an error in our request"


class _PatchFailed(Exception):
    pass


def _rejected(cause: str) -> StatusError:
    """What kube-apiserver answers when a JSON patch does not apply."""
    return StatusError(422, "Invalid", _REJECTED, {"causes": [{"message": cause}]})


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise _PatchFailed("invalid path")
    if path == "":
        return []
    if not path.startswith("/"):
        raise _PatchFailed(f"JSON pointer must be empty or start with a \"/\": {path}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _container(doc: Any, parts: list[str]) -> tuple[Any, str] | None:
    """The object/array holding the last token of `parts`, or None when the path is missing."""
    node = doc
    for tok in parts[:-1]:
        if isinstance(node, dict):
            if tok not in node:
                return None
            node = node[tok]
        elif isinstance(node, list):
            i = _index(tok, len(node) - 1)
            if i is None:
                return None
            node = node[i]
        else:
            return None
    if not isinstance(node, (dict, list)):
        return None
    return node, parts[-1]


def _index(tok: str, maximum: int) -> int | None:
    if not tok.isdigit() or (len(tok) > 1 and tok[0] == "0"):
        return None
    i = int(tok)
    return i if i <= maximum else None


def _get(con: Any, key: str) -> tuple[bool, Any]:
    if isinstance(con, dict):
        return (key in con, con.get(key))
    i = _index(key, len(con) - 1)
    return (False, None) if i is None else (True, con[i])


def _add(con: Any, key: str, value: Any) -> None:
    if isinstance(con, dict):
        con[key] = value
        return
    if key == "-":
        con.append(value)
        return
    i = _index(key, len(con))
    if i is None:
        raise _PatchFailed(f"Unable to access invalid index: {key}: invalid index referenced")
    con.insert(i, value)


def _remove(con: Any, key: str, path: str) -> Any:
    if isinstance(con, dict):
        if key not in con:
            raise _PatchFailed(f"error in remove for path: '{path}': Unable to remove nonexistent "
                               f"key: {key}: missing value")
        return con.pop(key)
    i = _index(key, len(con) - 1)
    if i is None:
        raise _PatchFailed(f"error in remove for path: '{path}': Unable to access invalid index: "
                           f"{key}: invalid index referenced")
    return con.pop(i)


def _apply_op(doc: Any, op: Any) -> Any:
    if not isinstance(op, dict):
        raise _PatchFailed("invalid operation")
    kind, path = op.get("op"), op.get("path")
    parts = _pointer(path)
    if kind in ("add", "replace", "test") and "value" not in op:
        raise _PatchFailed(f"{kind} operation does not apply: missing value")
    if not parts:  # the whole document
        if kind in ("add", "replace"):
            return copy.deepcopy(op["value"])
        if kind == "test":
            if doc != op["value"]:
                raise _PatchFailed(f"testing value {path} failed: test failed")
            return doc
    found = _container(doc, parts) if parts else None
    if kind == "add":
        if found is None:
            raise _PatchFailed(f'add operation does not apply: doc is missing path: "{path}": '
                               "missing value")
        _add(*found, copy.deepcopy(op["value"]))
    elif kind == "remove":
        if found is None:
            raise _PatchFailed(f'remove operation does not apply: doc is missing path: "{path}": '
                               "missing value")
        _remove(*found, path)
    elif kind == "replace":
        if found is None:
            raise _PatchFailed(f"replace operation does not apply: doc is missing path: {path}: "
                               "missing value")
        ok, _ = _get(*found)
        if not ok:
            raise _PatchFailed(f"replace operation does not apply: doc is missing key: {path}: "
                               "missing value")
        con, key = found
        if isinstance(con, dict):
            con[key] = copy.deepcopy(op["value"])
        else:
            con[int(key)] = copy.deepcopy(op["value"])
    elif kind == "test":
        ok, current = _get(*found) if found else (False, None)
        if not ok or current != op["value"] or _types_differ(current, op["value"]):
            raise _PatchFailed(f"testing value {path} failed: test failed")
    elif kind in ("move", "copy"):
        doc = _move_or_copy(doc, kind, op.get("from"), path, found)
    else:
        raise _PatchFailed(f"Unexpected kind: {kind}")
    return doc


def _types_differ(a: Any, b: Any) -> bool:
    return isinstance(a, bool) != isinstance(b, bool)


def _move_or_copy(doc: Any, kind: str, frm: Any, path: str, found: Any) -> Any:
    src_parts = _pointer(frm)
    src = _container(doc, src_parts) if src_parts else None
    ok, value = _get(*src) if src else (False, None)
    if not src_parts:
        ok, value = True, doc
    if not ok:
        raise _PatchFailed(f"{kind} operation does not apply: doc is missing from path: {frm}: "
                           "missing value")
    if kind == "move":
        if isinstance(path, str) and path.startswith(frm + "/"):
            raise _PatchFailed(f"move operation does not apply: {frm} is a prefix of {path}")
        if src:
            _remove(*src, frm)
        found = _container(doc, _pointer(path)) if _pointer(path) else None
    else:
        value = copy.deepcopy(value)
    if not _pointer(path):
        return value
    if found is None:
        raise _PatchFailed(f'{kind} operation does not apply: doc is missing destination path: '
                           f'{path}: missing value')
    _add(*found, value)
    return doc


def json_patch(doc: Any, ops: list) -> Any:
    """RFC 6902: all operations apply, or a 422 like kube-apiserver's."""
    if not isinstance(ops, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    try:
        for op in ops:
            doc = _apply_op(doc, op)
    except _PatchFailed as e:
        raise _rejected(str(e)) from None
    return doc


# ----- merge patch (RFC 7386) -----------------------------------------------------------------


def merge_patch(doc: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(doc, dict):
        doc = {}
    for k, v in patch.items():
        if v is None:
            doc.pop(k, None)
        else:
            doc[k] = merge_patch(doc.get(k), v)
    return doc


# ----- strategic merge patch ------------------------------------------------------------------

DIRECTIVE = "$patch"
RETAIN_KEYS = "$retainKeys"
SET_ORDER = "$setElementOrder/"
DELETE_PRIMITIVE = "$deleteFromPrimitiveList/"


class _SMPError(Exception):
    def __init__(self, message: str, code: int = 500):
        super().__init__(message)
        self.code = code


_BAD_PRIMITIVE = "invalid patch format of primitive list"
_BAD_RETAIN = "invalid patch format of retainKeys"
_BAD_ORDER = "invalid patch format of setElementOrder list"


class _Meta:
    """Patch metadata at one point of the schema (None node = unknown: no strategy)."""

    __slots__ = ("node",)

    def __init__(self, node: dict | None):
        self.node = sch.resolve(node) if node else None

    def field(self, key: str) -> tuple["_Meta", list[str], str]:
        """Sub-metadata of field `key`, its patch strategies and merge key."""
        if self.node is None:
            return _Meta(None), [], ""
        prop = sch.property_schema(self.node, key)
        if prop is None:
            return _Meta(None), [], ""
        strategies = [s for s in (prop.get("x-kubernetes-patch-strategy") or "").split(",") if s]
        merge_key = prop.get("x-kubernetes-patch-merge-key") or ""
        sub = sch.resolve(prop)
        if sch.plain_type(sub) == "array":
            return _Meta(sch.items_schema(sub)), strategies, merge_key
        return _Meta(sub), strategies, merge_key


def _strategy(strategies: list[str]) -> str:
    """The non-retainKeys strategy ("merge", "replace" or "")."""
    rest = [s for s in strategies if s != "retainKeys"]
    if len(strategies) > 2 or len(rest) > 1:
        raise _SMPError(f"unexpected patch strategy: [{' '.join(strategies)}]")
    return rest[0] if rest else ""


def strategic_merge_patch(doc: dict, patch: dict, schema_name: str) -> dict:
    """Apply a strategic merge patch to `doc` (the JSON form of `schema_name`)."""
    try:
        # the body is consumed by the merge: work on a copy (bodies are JSON: clone is exact)
        return _merge_map(doc, clone(patch), _Meta(sch.definition(schema_name)))
    except _SMPError as e:
        if e.code == 400:
            raise bad_request(str(e)) from None
        if e.code == 422:
            raise StatusError(422, "Invalid", str(e)) from None
        # upstream answers 500 for the remaining malformed patches; a client's bad patch
        # must never look like a server fault here, so they are 400s
        raise bad_request(str(e)) from None


def _merge_map(original: Any, patch: dict, meta: _Meta) -> dict:
    if DIRECTIVE in patch:
        d = patch[DIRECTIVE]
        if d == "replace":
            del patch[DIRECTIVE]
            return _strip(patch)
        if d == "delete":
            return {}
        raise _SMPError(f"unknown patch type: {d} in map: {_go_map(patch)}")
    if not isinstance(original, dict):
        original = {}
    _apply_retain_keys(original, patch)
    _apply_set_order(original, patch, meta)
    for k, pv in list(patch.items()):
        delete_list = False
        if k.startswith("$deleteFromPrimitiveList"):
            k = _directive_key(k, DELETE_PRIMITIVE, _BAD_PRIMITIVE)
            delete_list = True
        if pv is None:
            original.pop(k, None)
            continue
        if k not in original or type(original[k]) is not type(pv) \
                or not isinstance(pv, (dict, list)):
            if delete_list:
                continue
            stripped = _strip_value(pv)
            if stripped is _DROP:
                original.pop(k, None)
            else:
                original[k] = stripped
            continue
        sub, strategies, merge_key = meta.field(k)
        strategy = _strategy(strategies)
        if isinstance(pv, dict):
            original[k] = _strip(pv) if strategy == "replace" else _merge_map(original[k], pv, sub)
        elif strategy == "merge" or delete_list:
            original[k] = _merge_list(original[k], pv, sub, merge_key, delete_list)
        else:
            original[k] = _strip_value(pv)
    return original


def _directive_key(key: str, prefix: str, error: str) -> str:
    head, sep, rest = key.partition("/")
    if not sep or head + "/" != prefix:
        raise _SMPError(error, 400)
    return rest


def _apply_retain_keys(original: dict, patch: dict) -> None:
    if RETAIN_KEYS not in patch:
        return
    keep = patch.pop(RETAIN_KEYS)
    if not isinstance(keep, list):
        raise _SMPError(_BAD_RETAIN, 400)
    allowed = set(k for k in keep if isinstance(k, str))
    for k, v in patch.items():
        if v is None or k.startswith(DELETE_PRIMITIVE[:-1]) or k.startswith(SET_ORDER[:-1]):
            continue
        if k not in allowed:
            raise _SMPError(_BAD_RETAIN, 400)
    for k in list(original):
        if k not in allowed:
            del original[k]


def _apply_set_order(original: dict, patch: dict, meta: _Meta) -> None:
    """`$setElementOrder/<list>`: merge that list, then order it as the directive says."""
    for key in [k for k in patch if k.startswith("$setElementOrder")]:
        order = patch.pop(key)
        if not isinstance(order, list):
            raise _SMPError(f"expected a []interface {{}}, but received a {_go_kind(order)}")
        list_key = _directive_key(key, SET_ORDER, _BAD_ORDER)
        sub, strategies, merge_key = meta.field(list_key)
        strategy = _strategy(strategies)
        in_orig, in_patch = list_key in original, list_key in patch
        orig_list = original.get(list_key) if in_orig else None
        patch_list = patch.get(list_key) if in_patch else None
        if in_orig and not isinstance(orig_list, list):
            raise _SMPError(f"expected a []interface {{}}, but received a {_go_kind(orig_list)}")
        if in_patch and not isinstance(patch_list, list):
            raise _SMPError(f"expected a []interface {{}}, but received a {_go_kind(patch_list)}")
        _check_order(patch_list or [], order, merge_key)
        if in_orig and not in_patch:
            merged = orig_list
        elif in_patch and not in_orig:
            merged = _strip_value(patch_list)
        elif in_orig and in_patch:
            merged = (_merge_list(orig_list, patch_list, sub, merge_key, False)
                      if strategy == "merge" else _strip_value(patch_list))
        else:
            continue
        assert isinstance(merged, list)
        in_order = _partition(merged, order, merge_key)
        original[list_key] = _normalize(in_order[0], in_order[1], order, orig_list or [], merge_key)
        patch.pop(list_key, None)


def _check_order(patch_list: list, order: list, merge_key: str) -> None:
    """Items of the patch list must appear in `order`, in the same relative order."""
    if not order or not patch_list:
        return
    items = [p for p in patch_list if not (merge_key and isinstance(p, dict)
                                            and p.get(DIRECTIVE) == "delete")]
    pi = oi = 0
    while pi < len(items) and oi < len(order):
        if isinstance(items[pi], dict) and DIRECTIVE in items[pi]:
            pi += 1
            continue
        if _key_of(items[pi], merge_key) == _key_of(order[oi], merge_key):
            pi += 1
        oi += 1
    if pi < len(items):
        raise _SMPError(f"The order in patch list:\n{patch_list}\n doesn't match "
                        f"$setElementOrder list:\n{order}\n")


_MISSING = object()


def _key_of(item: Any, merge_key: str) -> Any:
    """Identity of a list item: its merge key value for maps, itself otherwise."""
    if merge_key:
        if not isinstance(item, dict):
            return _MISSING
        v = item.get(merge_key, _MISSING)
    else:
        v = item
    return (type(v) is bool, v) if isinstance(v, (bool, int, float, str)) else v


def _elem_kind(*lists: list) -> type | None:
    kind = None
    for lst in lists:
        for v in lst:
            t = type(v)
            if kind is None:
                if t is list:
                    raise _SMPError("lists of lists are not supported", 422)
                kind = t
            elif t is not kind and not (t in (int, float) and kind in (int, float)):
                raise _SMPError(f"list element types are not identical: {lists}")
    return kind


def _merge_list(original: list, patch: list, meta: _Meta, merge_key: str,
                delete_list: bool) -> list:
    if not original and not patch:
        return original
    kind = _elem_kind(original, patch)
    if kind is not dict:
        if delete_list:
            drop = {_key_of(v, "") for v in patch}
            return [v for v in original if _key_of(v, "") not in drop]
        merged = _dedupe(original + patch)
        merge_key = ""
    else:
        if not merge_key:
            raise _SMPError("cannot merge lists without merge key")
        original, patch = _special_elements(original, patch, merge_key)
        merged = _merge_maps_by_key(original, patch, meta, merge_key)
    in_patch, server_only = _partition(merged, patch, merge_key)
    return _normalize(in_patch, server_only, patch, original, merge_key)


def _dedupe(items: list) -> list:
    seen: set = set()
    out = []
    for v in items:
        k = _key_of(v, "")
        try:
            if k in seen:
                continue
            seen.add(k)
        except TypeError:  # unhashable (shouldn't happen for scalars)
            if any(k == _key_of(o, "") for o in out):
                continue
        out.append(v)
    return out


def _special_elements(original: list, patch: list, merge_key: str) -> tuple[list, list]:
    """Apply `$patch: delete` / `replace` elements; returns (original, plain patch items)."""
    plain = []
    replace = False
    for v in patch:
        if DIRECTIVE not in v:
            plain.append(v)
            continue
        d = v[DIRECTIVE]
        if d == "delete":
            if merge_key not in v:
                raise _SMPError(_no_merge_key(v, merge_key))
            key = _key_of(v, merge_key)
            original = [o for o in original if _key_of(o, merge_key) != key]
        elif d == "replace":
            replace = True
        elif d == "merge":
            raise _SMPError("merging lists cannot yet be specified in the patch")
        else:
            raise _SMPError(f"unknown patch type: {d} in map: {_go_map(v)}")
    if replace:
        return [_strip(p) for p in plain], []
    return original, plain


def _merge_maps_by_key(original: list, patch: list, meta: _Meta, merge_key: str) -> list:
    original = list(original)
    for item in patch:
        if merge_key not in item:
            raise _SMPError(_no_merge_key(item, merge_key))
        key = _key_of(item, merge_key)
        for i, o in enumerate(original):
            if not isinstance(o, dict):
                raise _SMPError(f"value for key {i} is not a map")
            if merge_key in o and _key_of(o, merge_key) == key:
                original[i] = _merge_map(o, item, meta)
                break
        else:
            original.append(_strip(item))
    return original


def _partition(merged: list, by: list, merge_key: str) -> tuple[list, list]:
    keys = {_key_of(v, merge_key) for v in by}
    inside, outside = [], []
    for v in merged:
        if merge_key and (not isinstance(v, dict) or merge_key not in v):
            raise _SMPError(_no_merge_key(v, merge_key))
        (inside if _key_of(v, merge_key) in keys else outside).append(v)
    return inside, outside


def _normalize(patch_items: list, server_only: list, patch_order: list, server_order: list,
               merge_key: str) -> list:
    """Order patch items by the patch, server-only items by the live list, then interleave
    them keeping both relative orders (upstream's normalizeElementOrder)."""
    def positions(order: list) -> dict:
        pos: dict = {}
        for i, v in enumerate(order):
            pos.setdefault(_key_of(v, merge_key), i)
        return pos

    ppos, spos = positions(patch_order), positions(server_order)
    patch_items = _sort_by(patch_items, ppos, merge_key)
    server_only = _sort_by(server_only, spos, merge_key)
    out: list = []
    i = j = 0
    while i < len(server_only) or j < len(patch_items):
        if i >= len(server_only):
            out.append(patch_items[j])
            j += 1
        elif j >= len(patch_items):
            out.append(server_only[i])
            i += 1
        else:
            li = spos.get(_key_of(server_only[i], merge_key))
            ri = spos.get(_key_of(patch_items[j], merge_key))
            if li is not None and ri is not None and li < ri:
                out.append(server_only[i])
                i += 1
            else:
                out.append(patch_items[j])
                j += 1
    return out


def _sort_by(items: list, pos: dict, merge_key: str) -> list:
    deletes = []
    if merge_key:
        deletes = [v for v in items if isinstance(v, dict) and v.get(DIRECTIVE) == "delete"]
        items = [v for v in items if not (isinstance(v, dict) and v.get(DIRECTIVE) == "delete")]
    known = [v for v in items if _key_of(v, merge_key) in pos]
    unknown = [v for v in items if _key_of(v, merge_key) not in pos]
    known.sort(key=lambda v: pos[_key_of(v, merge_key)])
    return known + unknown + deletes


_DROP = object()


def _strip_value(v: Any) -> Any:
    """A patch value taken as-is: directives removed, nulls inside maps dropped."""
    if isinstance(v, dict):
        if DIRECTIVE in v:
            return _DROP
        return _strip(v)
    if isinstance(v, list):
        out = []
        for item in v:
            s = _strip_value(item)
            if s is not _DROP:
                out.append(s)
        return out
    return v


def _strip(m: dict) -> dict:
    out = {}
    for k, v in m.items():
        if v is None or _is_directive_key(k):
            continue
        s = _strip_value(v)
        if s is not _DROP:
            out[k] = s
    return out


def _is_directive_key(k: str) -> bool:
    return k in (DIRECTIVE, RETAIN_KEYS) or k.startswith((SET_ORDER, DELETE_PRIMITIVE))


def _no_merge_key(m: Any, merge_key: str) -> str:
    return f"map: {_go_map(m)} does not contain declared merge key: {merge_key}"


def _go_kind(v: Any) -> str:
    if isinstance(v, dict):
        return "map"
    if isinstance(v, list):
        return "slice"
    if isinstance(v, str):
        return "string"
    if isinstance(v, bool):
        return "bool"
    return "float64" if isinstance(v, (int, float)) else "nil"


def _go_map(m: Any) -> str:
    """Go's %v of a map[string]interface{} (sorted keys), for error texts."""
    if isinstance(m, dict):
        return "map[" + " ".join(f"{k}:{_go_map(m[k])}" for k in sorted(m)) + "]"
    if isinstance(m, list):
        return "[" + " ".join(_go_map(v) for v in m) + "]"
    if m is None:
        return "<nil>"
    if isinstance(m, bool):
        return "true" if m else "false"
    return str(m)
