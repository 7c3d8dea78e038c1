"""coordination.k8s.io/v1: leases (leader election and node heartbeats)."""
from __future__ import annotations

from typing import Any

from ..machinery.errors import FieldError
from ..machinery.printing import age
from .apps import name_of, non_negative, positive
from .strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy


class LeaseStrategy(Strategy):
    allow_create_on_update = True  # as upstream
    group, version = "coordination.k8s.io", "v1"
    kind, plural = "Lease", "leases"
    columns = (NAME_COLUMN,
               Column("Holder", "string", "", "HolderIdentity contains the identity of the holder "
                      "of a current lease. If Coordinated Leader Election is used, the holder "
                      "identity must be equal to the elected LeaseCandidate.metadata.name field."),
               AGE_COLUMN)

    def validate(self, obj: dict) -> list[FieldError]:
        spec = obj.get("spec") or {}
        out = positive(spec, "leaseDurationSeconds", "spec.leaseDurationSeconds")
        out += non_negative(spec, "leaseTransitions", "spec.leaseTransitions")
        return out

    def table_row(self, obj: dict) -> list[Any]:
        return [name_of(obj), (obj.get("spec") or {}).get("holderIdentity") or "", age(obj)]


STRATEGIES = [LeaseStrategy()]
