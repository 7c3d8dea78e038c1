"""core/v1 Secret: type rules as upstream ValidateSecret."""
from __future__ import annotations

import base64
import json
from typing import Any

from ...machinery import errors
from ...machinery import validation as v
from ...machinery.errors import FieldError
from ...machinery.printing import age
from ..strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from .cells import immutable, invalid_all, meta
from .configmaps import MAX_SIZE, binary_len, too_long, validate_immutable_data

SA_TOKEN = "kubernetes.io/service-account-token"
SA_NAME_KEY = "kubernetes.io/service-account.name"
REDACTED = "<secret contents redacted>"
# type -> keys that must be present in data
REQUIRED_KEYS = {
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
    "kubernetes.io/tls": ("tls.key", "tls.crt"),
}


def _decoded(value: Any) -> bytes:
    try:
        return base64.b64decode(value or "", validate=False)
    except (ValueError, TypeError):
        return b""


def _validate_json_key(data: dict, key: str) -> list[FieldError]:
    if key not in data:
        return []
    try:
        json.loads(_decoded(data[key]) or b"null")
    except ValueError as e:
        return [errors.invalid_value(f"data[{key}]", REDACTED, str(e))]
    return []


def _validate_type(obj: dict, data: dict) -> list[FieldError]:
    stype = obj.get("type", "")
    out: list[FieldError] = []
    if stype == SA_TOKEN:
        annotations = (obj.get("metadata") or {}).get("annotations") or {}
        if not annotations.get(SA_NAME_KEY):
            out.append(errors.required(f"metadata.annotations[{SA_NAME_KEY}]", ""))
    elif stype == "kubernetes.io/basic-auth":
        if "username" not in data and "password" not in data:
            out.append(errors.required("data[username]", ""))
            out.append(errors.required("data[password]", ""))
    for key in REQUIRED_KEYS.get(stype, ()):
        if key not in data:
            out.append(errors.required(f"data[{key}]", ""))
    if stype == "kubernetes.io/dockercfg":
        out += _validate_json_key(data, ".dockercfg")
    if stype == "kubernetes.io/dockerconfigjson":
        out += _validate_json_key(data, ".dockerconfigjson")
    return out


class SecretStrategy(Strategy):
    kind, plural = "Secret", "secrets"
    columns = (NAME_COLUMN,
               Column("Type", "string", "", "The type of the secret"),
               Column("Data", "string", "", "The number of entries in the secret"),
               AGE_COLUMN)

    def default(self, obj: dict) -> None:
        if not obj.get("type"):
            obj["type"] = "Opaque"
        # stringData is write-only: merged into data (upstream's conversion does this)
        string_data = obj.pop("stringData", None)
        if isinstance(string_data, dict):
            data = obj.setdefault("data", {}) or {}
            for key, value in string_data.items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data

    def validate(self, obj: dict) -> list[FieldError]:
        out: list[FieldError] = []
        data = obj.get("data") or {}
        size = 0
        for key, value in data.items():
            out += invalid_all(f"data[{key}]", key, v.is_config_map_key(key))
            size += binary_len(value)
        if size > MAX_SIZE:
            out.append(too_long("data"))
        return out + _validate_type(obj, data)

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        out = self.validate(obj)
        out += immutable("type", obj.get("type", ""), old.get("type", ""))
        return out + validate_immutable_data(obj, old, ("data",))

    def table_row(self, obj: dict) -> list[Any]:
        return [meta(obj).get("name", ""), obj.get("type", ""), len(obj.get("data") or {}),
                age(obj)]

    def field_labels(self, obj: dict) -> dict[str, str]:
        labels = super().field_labels(obj)
        labels["type"] = obj.get("type", "")
        return labels
