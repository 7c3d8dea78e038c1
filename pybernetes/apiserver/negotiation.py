"""Content negotiation: decode request bodies, choose and encode response forms."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import orjson
import yaml

from ..machinery import errors

JSON = "application/json"
YAML = "application/yaml"
PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "apply",
}


@dataclass(frozen=True)
class Target:
    """What the client asked the response to be."""

    form: str = "object"  # object | Table | PartialObjectMetadata | PartialObjectMetadataList
    media: str = JSON  # JSON or YAML
    table_version: str = "v1"


def _media_params(item: str) -> tuple[str, dict[str, str]]:
    parts = [p.strip() for p in item.split(";")]
    params = {}
    for p in parts[1:]:
        if "=" in p:
            k, v = p.split("=", 1)
            params[k.strip()] = v.strip()
    return parts[0].lower(), params


def negotiate(accept: str | None) -> Target:
    """Pick the first acceptable alternative (clients list them in preference order)."""
    if not accept:
        return Target()
    if len(accept) > 512:  # only short, repeated headers are worth remembering
        return _negotiate(accept)
    return _negotiate_cached(accept)


@functools.lru_cache(maxsize=256)
def _negotiate_cached(accept: str) -> Target:
    """Clients send the same few Accept headers on every request (a Target is frozen;
    a 406 is raised afresh each time, lru_cache keeps only answers)."""
    return _negotiate(accept)


def _negotiate(accept: str) -> Target:
    if not accept:
        return Target()
    for item in accept.split(","):
        media, params = _media_params(item)
        if params.get("q") == "0":
            continue
        as_ = params.get("as")
        if media in (JSON, "application/*", "*/*", YAML, "application/yaml"):
            enc = YAML if media == YAML else JSON
            if as_ is None:
                return Target("object", enc)
            if params.get("g") == "meta.k8s.io" and params.get("v") in ("v1", "v1beta1"):
                if as_ in ("Table", "PartialObjectMetadata", "PartialObjectMetadataList"):
                    return Target(as_, enc, params["v"])
            continue  # an `as=` we do not serve: try the next alternative
    raise errors.not_acceptable()


def decode_body(raw: bytes, content_type: str | None) -> Any:
    """JSON or YAML request body -> Python value; 400 with a clear message otherwise."""
    media = (content_type or JSON).split(";")[0].strip().lower()
    if not raw.strip():
        raise errors.bad_request("the request body is empty: send an object as JSON or YAML")
    if media in (JSON, "*/*", "") or media in PATCH_TYPES and not media.endswith("yaml"):
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise errors.bad_request(f"the body of the request could not be decoded as JSON: {e}")
    if media in (YAML, "application/x-yaml", "text/yaml", "application/apply-patch+yaml"):
        try:
            return _load_yaml(raw)
        except yaml.YAMLError as e:
            if "maximum nesting depth" in str(e):
                raise errors.bad_request("the body of the request could not be decoded as "
                                         "YAML: it is nested too deeply")
            raise errors.bad_request(f"the body of the request could not be decoded as YAML: {e}")
        except RecursionError:
            raise errors.bad_request("the body of the request could not be decoded as YAML: "
                                     "it is nested too deeply")
    if media == "application/vnd.kubernetes.protobuf":
        # kubectl >= 1.32 sends built-in types this way and never falls back to JSON
        from ..machinery import protobuf
        return protobuf.decode(raw)
    raise errors.unsupported_media_type(media)


# aliases let a small YAML document stand for a huge value ("billion laughs"); we refuse
# documents that expand to more nodes than this, before building any Python value
MAX_YAML_NODES = 1_000_000


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """YAML -> JSON values only: timestamps stay strings (as in kubectl's YAML-to-JSON),
    and !!binary, whose bytes have no JSON form, is refused. libyaml's parser where
    PyYAML has it: the pure-Python one spends seconds on a hostile `[[[[…` body before
    giving up, libyaml stops at its nesting limit at once."""


def _refuse_binary(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    raise yaml.constructor.ConstructorError(None, None, "!!binary values are not supported",
                                            node.start_mark)


_Loader.add_constructor("tag:yaml.org,2002:timestamp", yaml.SafeLoader.construct_yaml_str)
_Loader.add_constructor("tag:yaml.org,2002:binary", _refuse_binary)


def _load_yaml(raw: bytes) -> Any:
    loader = _Loader(raw)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        if _expanded_size(node, {}) > MAX_YAML_NODES:
            raise errors.bad_request("the body of the request could not be decoded as YAML: "
                                     "its aliases expand to too many nodes")
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, seen: dict[int, int]) -> int:
    """Node count with every alias expanded; memoised, so each node is visited once."""
    if id(node) in seen:
        if seen[id(node)] < 0:  # an alias inside its own anchor: no JSON value is cyclic
            raise errors.bad_request("the body of the request could not be decoded as YAML: "
                                     "an alias refers to its own anchor")
        return seen[id(node)]
    seen[id(node)] = -1
    size = 1
    if isinstance(node, yaml.SequenceNode):
        size += sum(_expanded_size(n, seen) for n in node.value)
    elif isinstance(node, yaml.MappingNode):
        size += sum(_expanded_size(k, seen) + _expanded_size(v, seen) for k, v in node.value)
    seen[id(node)] = size
    return size


def encode(value: Any, media: str = JSON) -> bytes:
    if media == YAML:
        return yaml.safe_dump(value, sort_keys=False, default_flow_style=False).encode()
    return orjson.dumps(value)
