"""core/v1 LimitRange."""
from __future__ import annotations

import copy
from typing import Any

from ...machinery import errors
from ...machinery.errors import FieldError
from ...machinery.printing import get_path
from ..podspec import default_resource_list, quantity_value
from ..strategy import NAME_COLUMN, Column, Strategy
from .cells import meta
from .resourcequotas import validate_resource_list

LIMIT_TYPES = ["Container", "PersistentVolumeClaim", "Pod"]


def default_limit_item(item: dict) -> None:
    """SetDefaults_LimitRangeItem: container defaults from max, requests from default/min."""
    if item.get("type") != "Container":
        return
    default = item.setdefault("default", {}) or {}
    request = item.setdefault("defaultRequest", {}) or {}
    for name, q in (item.get("max") or {}).items():
        default.setdefault(name, copy.deepcopy(q))
    for name, q in default.items():
        request.setdefault(name, copy.deepcopy(q))
    for name, q in (item.get("min") or {}).items():
        request.setdefault(name, copy.deepcopy(q))
    for key, value in (("default", default), ("defaultRequest", request)):
        if value:
            item[key] = value
        else:
            item.pop(key, None)  # an empty ResourceList is omitted on the wire


def _ordered(item: dict, path: str) -> list[FieldError]:
    """min <= defaultRequest <= default <= max for every resource."""
    out: list[FieldError] = []
    chain = ("min", "defaultRequest", "default", "max")
    for i, lo_key in enumerate(chain):
        for hi_key in chain[i + 1:]:
            for name, lo in (item.get(lo_key) or {}).items():
                hi = (item.get(hi_key) or {}).get(name)
                lo_v, hi_v = quantity_value(lo), quantity_value(hi)
                if hi is not None and lo_v is not None and hi_v is not None and lo_v > hi_v:
                    out.append(errors.invalid_value(
                        f"{path}.{lo_key}[{name}]", str(lo),
                        f"{lo_key} value {lo} is greater than {hi_key} value {hi}"))
    return out


class LimitRangeStrategy(Strategy):
    allow_create_on_update = True  # as upstream
    kind, plural = "LimitRange", "limitranges"
    short_names = ("limits",)
    columns = (NAME_COLUMN,
               Column("Created At", "date", "", "Date of creation of the LimitRange"))

    def default(self, obj: dict) -> None:
        for item in get_path(obj, "spec", "limits", default=[]) or []:
            if isinstance(item, dict):
                for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
                    default_resource_list(item.get(key))
                default_limit_item(item)

    def validate(self, obj: dict) -> list[FieldError]:
        out: list[FieldError] = []
        for i, item in enumerate(get_path(obj, "spec", "limits", default=[]) or []):
            path = f"spec.limits[{i}]"
            if item.get("type") not in LIMIT_TYPES:
                out.append(errors.not_supported(f"{path}.type", item.get("type", ""), LIMIT_TYPES))
            for key in ("max", "min", "default", "defaultRequest", "maxLimitRequestRatio"):
                out += validate_resource_list(item.get(key), f"{path}.{key}")
            out += _ordered(item, path)
        return out

    def table_row(self, obj: dict) -> list[Any]:
        return [meta(obj).get("name", ""), meta(obj).get("creationTimestamp", "")]
