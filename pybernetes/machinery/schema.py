"""Access to the upstream v1.33 type schemas shipped by `kubernetes-validate`.

One source of truth for: strict/warn field validation, strategic-merge-patch
merge keys, and the /openapi documents. Definitions are loaded once, lazily.
Their names are upstream's (`io.k8s.api.core.v1.Pod`); references look like
`#/$defs/<name>`. The package writes nullable types as `["string", "null"]`;
`plain_type()` gives back the single OpenAPI type.
"""
from __future__ import annotations

import functools
import os
from typing import Any

import orjson

KUBE_VERSION = "v1.33.0"


def _schema_dir() -> str:
    import kubernetes_validate
    base = os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema")
    return os.path.join(base, f"{KUBE_VERSION}-local")


@functools.cache
def definitions() -> dict[str, dict]:
    """All definitions, by upstream name."""
    with open(os.path.join(_schema_dir(), "_definitions.json"), "rb") as f:
        return orjson.loads(f.read())["$defs"]


def ref_name(ref: str) -> str:
    """`#/$defs/io.k8s.api.core.v1.Pod` or `/api/_definitions.json#/$defs/...` -> the name."""
    return ref.rsplit("/", 1)[-1]


def definition(name: str) -> dict | None:
    return definitions().get(name)


@functools.cache
def _gvk_index() -> dict[tuple[str, str, str], str]:
    out: dict[tuple[str, str, str], str] = {}
    for name, d in definitions().items():
        for gvk in d.get("x-kubernetes-group-version-kind", ()):
            out.setdefault((gvk["group"], gvk["version"], gvk["kind"]), name)
    return out


def definition_name_for(group: str, version: str, kind: str) -> str | None:
    """The definition name of a kind, e.g. ("apps","v1","Deployment") -> io.k8s.api.apps.v1.Deployment."""
    return _gvk_index().get((group, version, kind))


def resolve(node: dict) -> dict:
    """Follow a `$ref` (once, and through single-element allOf) to the referenced definition."""
    while True:
        if "$ref" in node:
            node = definitions().get(ref_name(node["$ref"]), {})
            continue
        all_of = node.get("allOf")
        if all_of and len(all_of) == 1:
            node = all_of[0]
            continue
        return node


def plain_type(node: dict) -> str | None:
    """The OpenAPI type of a node, with the package's `null` alternative removed."""
    t = node.get("type")
    if isinstance(t, list):
        rest = [x for x in t if x != "null"]
        return rest[0] if rest else None
    return t


def property_schema(node: dict, name: str) -> dict | None:
    """Schema of property `name` of an object schema (resolving refs), None if unknown."""
    node = resolve(node)
    props = node.get("properties")
    if props and name in props:
        return props[name]
    ap = node.get("additionalProperties")
    if isinstance(ap, dict):
        return ap
    return None


def items_schema(node: dict) -> dict | None:
    node = resolve(node)
    it = node.get("items")
    return it if isinstance(it, dict) else None


def is_open_object(node: dict) -> bool:
    """True when any key is allowed (maps, RawExtension, JSON, preserve-unknown-fields)."""
    node = resolve(node)
    if node.get("x-kubernetes-preserve-unknown-fields"):
        return True
    if "additionalProperties" in node and node["additionalProperties"] is not False:
        return True
    return "properties" not in node and plain_type(node) in (None, "object")


def any_of(node: dict) -> list[dict]:
    return node.get("oneOf") or node.get("anyOf") or []


def describe(node: dict) -> dict[str, Any]:
    """Debug helper: a node with its refs resolved one level."""
    return resolve(node)
