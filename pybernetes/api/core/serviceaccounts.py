"""core/v1 ServiceAccount."""
from __future__ import annotations

from typing import Any

from ...machinery.printing import age
from ..strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from .cells import meta


class ServiceAccountStrategy(Strategy):
    kind, plural = "ServiceAccount", "serviceaccounts"
    short_names = ("sa",)
    subresources = ("token",)
    columns = (NAME_COLUMN,
               Column("Secrets", "string", "", "Secrets is a list of the secrets in the same "
                      "namespace that pods running using this ServiceAccount are allowed to use."),
               AGE_COLUMN)

    def table_row(self, obj: dict) -> list[Any]:
        return [meta(obj).get("name", ""), len(obj.get("secrets") or []), age(obj)]
