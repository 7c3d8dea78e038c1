"""What configMap, secret, downwardAPI and projected volumes contain: each source
becomes a payload (relative path → bytes + mode) for the AtomicWriter, with items,
modes and optional handled as upstream's plugins do."""
from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from pybernetes.kubelet.env import (ConfigError, ObjectLookup, PodContext, field_ref_value,
                                    resource_field_value)
from pybernetes.kubelet.volumes.atomic_writer import FileProjection
from pybernetes.kubelet.volumes.errors import VolumeError

DEFAULT_MODE = 0o644
DEFAULT_TOKEN_EXPIRATION = 3600

# (audience, expirationSeconds) → token; the kubelet asks the API (TokenRequest)
TokenProvider = Callable[[str, int], Awaitable[str]]


@dataclass
class TokenRecord:
    """A projected service account token this pod holds (refresh before it expires)."""

    volume: str
    path: str
    audience: str
    expiration_seconds: int


@dataclass
class Payload:
    files: dict[str, FileProjection] = field(default_factory=dict)
    tokens: list[TokenRecord] = field(default_factory=list)


def _b64(v: object) -> bytes:
    try:
        return base64.b64decode(str(v or ""))
    except ValueError:
        return b""


def object_files(kind: str, obj: dict) -> dict[str, bytes]:
    """Every key of a ConfigMap (data + binaryData) or Secret (data) as bytes."""
    if kind == "configmap":
        out = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        out.update({k: _b64(v) for k, v in (obj.get("binaryData") or {}).items()})
        return out
    return {k: _b64(v) for k, v in (obj.get("data") or {}).items()}


_MISSING_KEY = {"configmap": "configmap references non-existent config key: {}",
                "secret": "references non-existent secret key: {}"}


async def object_payload(volume: str, kind: str, source: dict, namespace: str,
                         lookup: ObjectLookup, default_mode: int) -> dict[str, FileProjection]:
    name = source.get("name") or source.get("secretName") or ""
    optional = bool(source.get("optional"))
    obj = await lookup(kind, namespace, name)
    if obj is None:
        if optional:
            return {}
        raise VolumeError(volume, f'{kind} "{name}" not found')
    data = object_files(kind, obj)
    items = source.get("items")
    if not items:
        return {k: FileProjection(v, default_mode) for k, v in data.items()}
    out = {}
    for item in items:
        key = item.get("key", "")
        if key not in data:
            if optional:
                continue
            raise VolumeError(volume, _MISSING_KEY[kind].format(key))
        mode = item.get("mode")
        out[item.get("path") or key] = FileProjection(data[key], default_mode if mode is None
                                                      else int(mode))
    return out


def downward_payload(volume: str, pod: dict, items: list[dict], ctx: PodContext,
                     default_mode: int) -> dict[str, FileProjection]:
    out = {}
    for item in items or []:
        try:
            if item.get("fieldRef"):
                value = field_ref_value(pod, item["fieldRef"].get("fieldPath", ""), ctx)
            elif item.get("resourceFieldRef"):
                value = resource_field_value(pod, item["resourceFieldRef"], "", ctx)
            else:
                continue
        except ConfigError as e:
            raise VolumeError(volume, str(e)) from None
        mode = item.get("mode")
        out[item.get("path", "")] = FileProjection(value.encode(), default_mode if mode is None
                                                   else int(mode))
    return out


async def projected_payload(volume: str, pod: dict, source: dict, lookup: ObjectLookup,
                            ctx: PodContext, tokens: TokenProvider | None) -> Payload:
    mode = source.get("defaultMode")
    mode = DEFAULT_MODE if mode is None else int(mode)
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    out = Payload()
    for src in source.get("sources") or []:
        if src.get("configMap") is not None:
            out.files.update(await object_payload(volume, "configmap", src["configMap"], ns,
                                                  lookup, mode))
        elif src.get("secret") is not None:
            out.files.update(await object_payload(volume, "secret", src["secret"], ns, lookup,
                                                  mode))
        elif src.get("downwardAPI") is not None:
            out.files.update(downward_payload(volume, pod, src["downwardAPI"].get("items") or [],
                                              ctx, mode))
        elif src.get("serviceAccountToken") is not None:
            sat = src["serviceAccountToken"]
            rec = TokenRecord(volume, sat.get("path", "token"), sat.get("audience") or "",
                              int(sat.get("expirationSeconds") or DEFAULT_TOKEN_EXPIRATION))
            if tokens is None:
                raise VolumeError(volume, "no token provider for serviceAccountToken")
            token = await tokens(rec.audience, rec.expiration_seconds)
            out.files[rec.path] = FileProjection(token.encode(), mode)
            out.tokens.append(rec)
    return out


async def volume_payload(volume: dict, pod: dict, lookup: ObjectLookup, ctx: PodContext,
                         tokens: TokenProvider | None) -> Payload | None:
    """The payload of a projecting volume; None for other volume kinds."""
    name = volume.get("name", "")
    ns = (pod.get("metadata") or {}).get("namespace") or "default"
    for key, kind in (("configMap", "configmap"), ("secret", "secret")):
        src = volume.get(key)
        if src is not None:
            mode = src.get("defaultMode")
            mode = DEFAULT_MODE if mode is None else int(mode)
            return Payload(await object_payload(name, kind, src, ns, lookup, mode))
    if volume.get("downwardAPI") is not None:
        src = volume["downwardAPI"]
        mode = src.get("defaultMode")
        return Payload(downward_payload(name, pod, src.get("items") or [], ctx,
                                        DEFAULT_MODE if mode is None else int(mode)))
    if volume.get("projected") is not None:
        return await projected_payload(name, pod, volume["projected"], lookup, ctx, tokens)
    return None
