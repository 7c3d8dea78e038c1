"""Field paths and field sets, the vocabulary of server-side apply (structured-merge-diff).

A *path* is a tuple of serialized path elements, exactly as managedFields' FieldsV1 spells
them: `f:<field>` (struct field or map key), `k:{"name":"c"}` (item of a list keyed by
x-kubernetes-list-map-keys), `v:"x"` (item of a set list), `i:3` (item of an unkeyed
granular list). A *field set* is a frozenset of member paths.

How an object maps to a set follows upstream's schema rules (from the v1.33 OpenAPI
extensions): scalars, atomic lists (x-kubernetes-list-type: atomic, the default) and
atomic maps (x-kubernetes-map-type: atomic) are leaves; keyed and set lists contribute
one member per item plus the item's contents; map entries (additionalProperties) are
members themselves; struct fields are members only as leaves. Values the schema does not
describe are "deduced": objects are granular maps, lists atomic.
"""
from __future__ import annotations

import json
from typing import Any, Iterable

from . import schema as sch

Path = tuple[str, ...]
FieldSet = frozenset

# list-map key fields a client may leave out because they are defaulted (upstream's schema
# declares these defaults; ours does not carry them)
KEY_DEFAULTS = {"protocol": "TCP"}

_LEAF, _STRUCT, _MAP, _LIST_MAP, _LIST_SET, _LIST_ATOMIC, _DEDUCED = range(7)


class Node:
    """A resolved schema position: its kind and how to reach children."""

    __slots__ = ("kind", "schema", "keys", "_children", "_item")

    def __init__(self, schema: dict | None):
        self.schema = sch.resolve(schema) if schema else {}
        self.keys: tuple[str, ...] = ()
        self.kind = self._classify()
        self._children: dict[str, Node] = {}
        self._item: Node | None = None

    def _classify(self) -> int:
        s = self.schema
        if not s or s.get("x-kubernetes-preserve-unknown-fields"):
            return _DEDUCED
        if s.get("x-kubernetes-map-type") == "atomic":
            return _LEAF
        if "properties" in s:
            return _STRUCT
        if isinstance(s.get("additionalProperties"), dict):
            return _MAP
        if sch.plain_type(s) == "array":
            list_type = s.get("x-kubernetes-list-type")
            if list_type == "map" and s.get("x-kubernetes-list-map-keys"):
                self.keys = tuple(s["x-kubernetes-list-map-keys"])
                return _LIST_MAP
            return _LIST_SET if list_type == "set" else _LIST_ATOMIC
        if sch.plain_type(s) == "object" and not s.get("properties"):
            return _DEDUCED
        return _LEAF

    def field(self, name: str) -> "Node":
        child = self._children.get(name)
        if child is None:
            if self.kind == _STRUCT:
                prop = self.schema["properties"].get(name)
                child = _node(prop) if prop is not None else DEDUCED
            elif self.kind == _MAP:
                child = _node(self.schema["additionalProperties"])
            else:
                child = DEDUCED
            if self.kind != _DEDUCED:   # DEDUCED is shared by every unknown key
                self._children[name] = child
        return child

    def declared(self, name: str) -> bool:
        return self.kind == _STRUCT and name in self.schema["properties"]

    def item(self) -> "Node":
        if self._item is None:
            self._item = _node(self.schema.get("items")) if self.schema else DEDUCED
        return self._item

    def granular_map(self, value: Any) -> bool:
        return isinstance(value, dict) and self.kind in (_STRUCT, _MAP, _DEDUCED)

    def granular_list(self, value: Any) -> bool:
        return isinstance(value, list) and self.kind in (_LIST_MAP, _LIST_SET)


_NODES: dict[int, Node] = {}


def _node(schema: dict | None) -> Node:
    """Nodes are cached per schema dict (the definitions are loaded once and never change)."""
    if schema is None:
        return DEDUCED
    found = _NODES.get(id(schema))
    if found is None or found.schema is not sch.resolve(schema):
        found = _NODES[id(schema)] = Node(schema)
    return found


DEDUCED = Node(None)


def root(definition_name: str | None) -> Node:
    return _node(sch.definition(definition_name)) if definition_name else DEDUCED


# ----- path elements ------------------------------------------------------------------
def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def item_element(node: Node, item: Any, index: int) -> str:
    """The path element naming one list item."""
    if node.kind == _LIST_MAP and isinstance(item, dict):
        key = {k: item.get(k, KEY_DEFAULTS.get(k)) for k in sorted(node.keys)
               if k in item or k in KEY_DEFAULTS}
        return "k:" + _json(key)
    if node.kind == _LIST_SET:
        return "v:" + _json(item)
    return f"i:{index}"


def readable(path: Path) -> str:
    """A path as upstream prints it in conflicts: .spec.containers[name="c"].image"""
    out = []
    for pe in path:
        kind, text = pe[0], pe[2:]
        if kind == "f":
            out.append("." + text)
        elif kind == "k":
            fields = json.loads(text)
            out.append("[" + ",".join(f"{k}={_json(v)}" for k, v in fields.items()) + "]")
        elif kind == "v":
            out.append(f"[={text}]")
        else:
            out.append(f"[{text}]")
    return "".join(out)


def _items(node: Node, values: list) -> dict[str, Any]:
    """Items by path element; duplicates keep the first (upstream refuses to merge them)."""
    out: dict[str, Any] = {}
    for i, item in enumerate(values):
        out.setdefault(item_element(node, item, i), item)
    return out


# ----- object → set --------------------------------------------------------------------
def field_set(obj: Any, node: Node, prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    _collect(obj, node, prefix, out)
    return out


def _collect(value: Any, node: Node, path: Path, out: set[Path]) -> None:
    if node.granular_map(value):
        for key, child in value.items():
            child_path = path + ("f:" + key,)
            _collect(child, node.field(key), child_path, out)
            if child is None or child == {} or not node.declared(key):
                out.add(child_path)
    elif node.granular_list(value):
        for pe, item in _items(node, value).items():
            item_path = path + (pe,)
            _collect(item, node.item(), item_path, out)
            out.add(item_path)
    elif path:
        out.add(path)


# ----- comparison ----------------------------------------------------------------------
class Comparison:
    __slots__ = ("added", "modified", "removed")

    def __init__(self) -> None:
        self.added: set[Path] = set()
        self.modified: set[Path] = set()
        self.removed: set[Path] = set()

    def empty(self) -> bool:
        return not (self.added or self.modified or self.removed)


_MISSING = object()


def compare(old: Any, new: Any, node: Node, prefix: Path = ()) -> Comparison:
    out = Comparison()
    _compare(old, new, node, prefix, out)
    return out


def _compare(old: Any, new: Any, node: Node, path: Path, out: Comparison) -> None:
    if old is _MISSING and new is _MISSING:
        return
    if _granular(old, new, node, dict):
        lhs = old if isinstance(old, dict) else {}
        rhs = new if isinstance(new, dict) else {}
        for key in {**lhs, **rhs}:
            _compare(lhs.get(key, _MISSING), rhs.get(key, _MISSING), node.field(key),
                     path + ("f:" + key,), out)
        if path and node.kind != _STRUCT:
            _presence(old, new, path, out)
    elif _granular(old, new, node, list):
        lhs = _items(node, old) if isinstance(old, list) else {}
        rhs = _items(node, new) if isinstance(new, list) else {}
        for pe in {**lhs, **rhs}:
            item_path = path + (pe,)
            _compare(lhs.get(pe, _MISSING), rhs.get(pe, _MISSING), node.item(), item_path, out)
            _presence(lhs.get(pe, _MISSING), rhs.get(pe, _MISSING), item_path, out)
    elif path:
        if old is _MISSING:
            out.added.add(path)
        elif new is _MISSING:
            out.removed.add(path)
        elif old != new:
            out.modified.add(path)


_GRANULAR = {dict: (_STRUCT, _MAP, _DEDUCED), list: (_LIST_MAP, _LIST_SET)}


def _granular(old: Any, new: Any, node: Node, kind: type) -> bool:
    """Both sides are of `kind` (or absent), at a granular position, and not both empty
    (an empty map or list on both sides compares as a leaf, as upstream's)."""
    if node.kind not in _GRANULAR[kind]:
        return False
    if old is _MISSING:
        return type(new) is kind and bool(new)
    if new is _MISSING:
        return type(old) is kind and bool(old)
    return type(old) is kind and type(new) is kind and bool(old or new)


def _presence(old: Any, new: Any, path: Path, out: Comparison) -> None:
    if old is _MISSING and new is not _MISSING:
        out.added.add(path)
    elif new is _MISSING and old is not _MISSING:
        out.removed.add(path)


# ----- merge (apply a configuration onto a live object) ----------------------------------
def merge(live: Any, config: Any, node: Node) -> Any:
    """`config` over `live`: leaves and atomic values from config, maps merged key by key,
    keyed/set lists merged item by item. A null in config removes the field."""
    if isinstance(live, dict) and isinstance(config, dict) and node.granular_map(config):
        out = dict(live)
        for key, value in config.items():
            if value is None:
                out.pop(key, None)
            elif key in live:
                out[key] = merge(live[key], value, node.field(key))
            else:
                out[key] = value
        return out
    if isinstance(live, list) and isinstance(config, list) and node.granular_list(config):
        return _merge_list(live, config, node)
    return config


def _merge_list(live: list, config: list, node: Node) -> list:
    """Items of config in config's order, each merged with its live twin; live-only items
    keep their place before the next item they preceded."""
    live_items, config_items = _items(node, live), _items(node, config)
    live_order = list(live_items)
    out, emitted = [], set()
    position = 0
    for pe, value in config_items.items():
        if pe in live_items:
            at = live_order.index(pe)
            for earlier in live_order[position:at]:
                if earlier not in config_items and earlier not in emitted:
                    out.append(live_items[earlier])
                    emitted.add(earlier)
            position = max(position, at + 1)
            out.append(merge(live_items[pe], value, node.item()))
        else:
            out.append(value)
        emitted.add(pe)
    out += [live_items[pe] for pe in live_order if pe not in emitted]
    return out


# ----- removal (pruning what an applier stopped applying) ---------------------------------
def remove(obj: Any, paths: Iterable[Path], node: Node) -> Any:
    """A copy of obj without the members at `paths` (fields, map entries, list items)."""
    tree: dict = {}
    for path in paths:
        branch = tree
        for pe in path[:-1]:
            branch = branch.setdefault(pe, {})
            if branch is True:
                break
        else:
            branch[path[-1]] = True
    return _remove(obj, tree, node) if tree else obj


def _remove(value: Any, tree: dict, node: Node) -> Any:
    if isinstance(value, dict):
        out = {}
        for key, child in value.items():
            sub = tree.get("f:" + key)
            if sub is True:
                continue
            out[key] = _remove(child, sub, node.field(key)) if sub else child
        return out
    if isinstance(value, list) and node.granular_list(value):
        out = []
        for i, item in enumerate(value):
            sub = tree.get(item_element(node, item, i))
            if sub is True:
                continue
            out.append(_remove(item, sub, node.item()) if sub else item)
        return out
    return value


# ----- FieldsV1 (the managedFields encoding) -------------------------------------------
def to_fields_v1(paths: Iterable[Path]) -> dict:
    tree: dict = {}
    members: set[Path] = set(paths)
    for path in members:
        branch = tree
        for pe in path:
            branch = branch.setdefault(pe, {})
    return _render(tree, (), members)


def _render(tree: dict, path: Path, members: set[Path]) -> dict:
    out: dict = {}
    if path and tree and path in members:
        out["."] = {}
    for pe in sorted(tree):
        out[pe] = _render(tree[pe], path + (pe,), members)
    return out


def from_fields_v1(fields: Any, prefix: Path = ()) -> set[Path]:
    """The member paths of a FieldsV1 object; ValueError when it is malformed."""
    if not isinstance(fields, dict):
        raise ValueError("fieldsV1 must be an object")
    out: set[Path] = set()
    for pe, child in fields.items():
        if pe == ".":
            if prefix:
                out.add(prefix)
            continue
        if len(pe) < 2 or pe[1] != ":" or pe[0] not in "fkvi":
            raise ValueError(f"unknown path element {pe!r}")
        if not isinstance(child, dict):
            raise ValueError(f"value of {pe!r} must be an object")
        path = prefix + (pe,)
        if child:
            out |= from_fields_v1(child, path)
        else:
            out.add(path)
    return out


# ----- editing FieldsV1 in place (a write changes a few paths of big sets) -----------------
def copy_fields_v1(fields: dict) -> dict:
    return {pe: copy_fields_v1(child) for pe, child in fields.items()}


def fields_v1_add(fields: dict, path: Path) -> None:
    """Make `path` a member of the FieldsV1 tree (a private copy: it is edited in place)."""
    branch, last = fields, len(path) - 1
    for i, pe in enumerate(path):
        child = branch.get(pe)
        if child is None:
            child = branch[pe] = {}
        elif child == {} and i < last:
            child["."] = {}   # a leaf member that now gets children stays a member
        branch = child
    if branch and "." not in branch:
        branch["."] = {}


def fields_v1_has(fields: dict, path: Path) -> bool:
    branch = fields
    for pe in path:
        branch = branch.get(pe)
        if branch is None:
            return False
    return branch == {} or "." in branch


def fields_v1_remove(fields: dict, path: Path) -> bool:
    """Drop `path`'s membership (members below it stay); True if it was a member."""
    trail, branch = [], fields
    for pe in path:
        child = branch.get(pe)
        if child is None:
            return False
        trail.append((branch, pe))
        branch = child
    if "." in branch:
        del branch["."]
        if branch:
            return True   # still the parent of members
    elif branch:
        return False      # a parent of members, never a member itself
    # nothing left at path: unlink it, and parents that only held it
    for parent, pe in reversed(trail):
        del parent[pe]
        if parent is fields:
            break
        if list(parent) == ["."]:
            parent.clear()    # only its own membership left: written as a leaf
            break
        if parent:
            break
    return True
