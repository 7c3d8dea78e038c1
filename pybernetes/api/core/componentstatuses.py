"""core/v1 ComponentStatus: read-only and virtual (nothing stored)."""
from __future__ import annotations

from typing import Any

from ..strategy import NAME_COLUMN, Column, Strategy
from .cells import meta

COMPONENTS = ("scheduler", "controller-manager", "etcd-0")


class ComponentStatusStrategy(Strategy):
    kind, plural = "ComponentStatus", "componentstatuses"
    namespaced = False
    short_names = ("cs",)
    verbs = ("get", "list")
    columns = (NAME_COLUMN,
               Column("Status", "string", "", "Status of the component conditions"),
               Column("Message", "string", "", "Message of the component conditions"),
               Column("Error", "string", "", "Error of the component conditions"))

    def virtual_list(self) -> list[dict]:
        # Static for now: later work makes these probe the real components' health.
        return [{"kind": "ComponentStatus", "apiVersion": "v1", "metadata": {"name": name},
                 "conditions": [{"type": "Healthy", "status": "True", "message": "ok"}]}
                for name in COMPONENTS]

    def table_row(self, obj: dict) -> list[Any]:
        status, message, error = "Unknown", "", ""
        for c in obj.get("conditions") or []:
            if c.get("type") == "Healthy":
                status = "Healthy" if c.get("status") == "True" else "Unhealthy"
                message, error = c.get("message", ""), c.get("error", "")
                break
        return [meta(obj).get("name", ""), status, message, error]
