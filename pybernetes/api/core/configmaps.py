"""core/v1 ConfigMap."""
from __future__ import annotations

import base64
from typing import Any

from ...machinery import errors
from ...machinery import validation as v
from ...machinery.errors import FieldError
from ...machinery.printing import age
from ..strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from .cells import invalid_all, meta

MAX_SIZE = 1024 * 1024  # core.MaxSecretSize, shared by configmaps and secrets
IMMUTABLE_WHEN_SET = "field is immutable when `immutable` is set"


def too_long(path: str, limit: int = MAX_SIZE) -> FieldError:
    return FieldError("FieldValueTooLong", path, f"may not be more than {limit} bytes")


def binary_len(value: Any) -> int:
    try:
        return len(base64.b64decode(value or "", validate=False))
    except (ValueError, TypeError):
        return len(value or "")


def validate_immutable_data(obj: dict, old: dict, keys: tuple[str, ...]) -> list[FieldError]:
    """Once `immutable: true`, neither the flag nor the data may change."""
    out: list[FieldError] = []
    if not old.get("immutable"):
        return out
    if not obj.get("immutable"):
        out.append(errors.forbidden("immutable", IMMUTABLE_WHEN_SET))
    for key in keys:
        if (obj.get(key) or {}) != (old.get(key) or {}):
            out.append(errors.forbidden(key, IMMUTABLE_WHEN_SET))
    return out


class ConfigMapStrategy(Strategy):
    kind, plural = "ConfigMap", "configmaps"
    short_names = ("cm",)
    columns = (NAME_COLUMN,
               Column("Data", "string", "", "Data contains the configuration data."),
               AGE_COLUMN)

    def default(self, obj: dict) -> None:
        # SetDefaults_ConfigMap makes data non-nil; JSON drops the empty map (omitempty)
        pass

    def validate(self, obj: dict) -> list[FieldError]:
        out: list[FieldError] = []
        data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
        size = 0
        for key, value in data.items():
            out += invalid_all(f"data[{key}]", key, v.is_config_map_key(key))
            if key in binary:
                out.append(errors.invalid_value(f"data[{key}]", key,
                                                "duplicate of key present in binaryData"))
            size += len((value or "").encode())
        for key, value in binary.items():
            out += invalid_all(f"binaryData[{key}]", key, v.is_config_map_key(key))
            size += binary_len(value)
        if size > MAX_SIZE:
            out.append(too_long(""))
        return out

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        return self.validate(obj) + validate_immutable_data(obj, old, ("data", "binaryData"))

    def table_row(self, obj: dict) -> list[Any]:
        count = len(obj.get("data") or {}) + len(obj.get("binaryData") or {})
        return [meta(obj).get("name", ""), count, age(obj)]
