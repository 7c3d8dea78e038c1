"""Small helpers the core/v1 strategies share: Go-style printer cells and checks."""
from __future__ import annotations

import copy
from typing import Any

from ...machinery import errors
from ...machinery.errors import FieldError
from ...machinery.validation import FIELD_IMMUTABLE


def meta(obj: dict) -> dict:
    return obj.get("metadata") or {}


def spec(obj: dict) -> dict:
    s = obj.get("spec")
    if not isinstance(s, dict):
        s = obj["spec"] = {}
    return s


def set_default(obj: dict, key: str, value: Any) -> None:
    if obj.get(key) in (None, ""):
        obj[key] = copy.deepcopy(value)


def none_if_empty(value: Any) -> Any:
    """kubectl prints "<none>" for an empty string cell."""
    return value if value not in (None, "") else "<none>"


def format_labels(labels: dict | None) -> str:
    """labels.FormatLabels: sorted k=v joined by ",", "<none>" when empty."""
    if not labels:
        return "<none>"
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def immutable(path: str, new: Any, old: Any) -> list[FieldError]:
    """ValidateImmutableField."""
    if new == old:
        return []
    return [errors.invalid_value(path, new if not isinstance(new, (dict, list)) else str(new),
                                 FIELD_IMMUTABLE)]


def invalid_all(path: str, value: Any, msgs: list[str]) -> list[FieldError]:
    return [errors.invalid_value(path, value, m) for m in msgs]


ACCESS_MODE_SHORT = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
                     "ReadWriteOncePod": "RWOP"}


def access_modes(modes: list[str] | None) -> str:
    """GetAccessModesAsString: the short forms, in a fixed order, comma-joined."""
    modes = modes or []
    return ",".join(short for mode, short in ACCESS_MODE_SHORT.items() if mode in modes)
