"""core/v1 ResourceQuota."""
from __future__ import annotations

from typing import Any

from ...machinery import errors
from ...machinery.errors import FieldError
from ...machinery.printing import age, get_path
from ..podspec import default_resource_list, quantity_value
from ..strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from .cells import meta

SCOPES = ["BestEffort", "CrossNamespacePodAffinity", "NotBestEffort", "NotTerminating",
          "PriorityClass", "Terminating", "VolumeAttributesClass"]


def validate_resource_list(resources: Any, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    for name, q in (resources or {}).items():
        val = quantity_value(q)
        if val is None:
            out.append(errors.invalid_value(f"{path}[{name}]", q, "must be a valid quantity"))
        elif val < 0:
            out.append(errors.invalid_value(f"{path}[{name}]", str(q),
                                            "must be greater than or equal to 0"))
    return out


def quota_cells(obj: dict) -> tuple[str, str]:
    """REQUEST / LIMIT cells: "name: used/hard" from status, limits.* in the second."""
    hard = get_path(obj, "status", "hard", default={}) or {}
    used = get_path(obj, "status", "used", default={}) or {}
    requests, limits = [], []
    for name in sorted(hard):
        cell = f"{name}: {used.get(name, '0')}/{hard[name]}"
        (limits if name.startswith("limits.") else requests).append(cell)
    return ", ".join(requests), ", ".join(limits)


class ResourceQuotaStrategy(Strategy):
    kind, plural = "ResourceQuota", "resourcequotas"
    short_names = ("quota",)
    subresources = ("status",)
    # v1.33 moved Age last (kubernetes#129419)
    columns = (NAME_COLUMN,
               Column("Request", "string", "", "Request represents a minimum amount of cpu/memory "
                      "that a container may consume."),
               Column("Limit", "string", "", "Limits control the maximum amount of cpu/memory "
                      "that a container may use independent of contention on the node."),
               AGE_COLUMN)

    def default(self, obj: dict) -> None:
        default_resource_list(get_path(obj, "spec", "hard"))

    def initial_status(self, obj: dict) -> dict:
        return {}

    def validate(self, obj: dict) -> list[FieldError]:
        s = obj.get("spec") or {}
        out = validate_resource_list(s.get("hard"), "spec.hard")
        for i, scope in enumerate(s.get("scopes") or []):
            if scope not in SCOPES:
                out.append(errors.not_supported(f"spec.scopes[{i}]", scope, SCOPES))
        return out

    def validate_status_update(self, obj: dict, old: dict) -> list[FieldError]:
        status = obj.get("status") or {}
        return (validate_resource_list(status.get("hard"), "status.hard")
                + validate_resource_list(status.get("used"), "status.used"))

    def table_row(self, obj: dict) -> list[Any]:
        request, limit = quota_cells(obj)
        return [meta(obj).get("name", ""), request, limit, age(obj)]
