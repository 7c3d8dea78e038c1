"""core/v1 Namespace."""
from __future__ import annotations

import copy

from typing import Any

from ...machinery import errors
from ...machinery import validation as v
from ...machinery.errors import FieldError
from ...machinery.printing import age, get_path
from ..strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from .cells import meta, spec

FINALIZER = "kubernetes"
NAME_LABEL = "kubernetes.io/metadata.name"
STANDARD_FINALIZERS = {"kubernetes", "orphan", "foregroundDeletion"}


def validate_finalizer_name(name: str, path: str) -> list[FieldError]:
    out = [errors.invalid_value(path, name, m) for m in v.is_qualified_name(name)]
    if not out and name not in STANDARD_FINALIZERS and "/" not in name:
        out.append(errors.invalid_value(
            path, name, "name is neither a standard finalizer name nor is it fully qualified"))
    return out


class NamespaceStrategy(Strategy):
    kind, plural = "Namespace", "namespaces"
    namespaced = False
    short_names = ("ns",)
    subresources = ("status", "finalize")
    columns = (NAME_COLUMN,
               Column("Status", "string", "", "The status of the namespace"),
               AGE_COLUMN)

    @staticmethod
    def name_validator(name: str) -> list[str]:
        return v.is_dns1123_label(name)

    def default(self, obj: dict) -> None:
        name = meta(obj).get("name")
        if name:  # not for generateName-only requests (upstream: same)
            md = obj.setdefault("metadata", {})
            labels = md.get("labels") or {}
            labels[NAME_LABEL] = name
            md["labels"] = labels

    def prepare_for_create(self, obj: dict) -> None:
        super().prepare_for_create(obj)
        finalizers = spec(obj).get("finalizers") or []
        if FINALIZER not in finalizers:
            finalizers.append(FINALIZER)
        obj["spec"]["finalizers"] = finalizers

    def initial_status(self, obj: dict) -> dict:
        return {"phase": "Active"}

    def holds_deletion(self, obj: dict) -> bool:
        """A namespace lives on (Terminating) until its spec.finalizers are emptied."""
        return bool(spec(obj).get("finalizers"))

    def on_deletion_marked(self, obj: dict) -> None:
        obj.setdefault("status", {})["phase"] = "Terminating"

    def prepare_for_finalize_update(self, obj: dict, old: dict) -> None:
        """namespaces/finalize: only spec.finalizers may change."""
        fins = spec(obj).get("finalizers")
        for k in list(obj):
            if k not in ("metadata", "apiVersion", "kind"):
                del obj[k]
        for k, val in old.items():
            if k not in ("metadata", "apiVersion", "kind"):
                obj[k] = copy.deepcopy(val)
        obj.setdefault("spec", {})["finalizers"] = list(fins or [])

    def prepare_for_update(self, obj: dict, old: dict) -> None:
        super().prepare_for_update(obj, old)
        # spec.finalizers changes only through the finalize subresource
        fins = get_path(old, "spec", "finalizers")
        s = spec(obj)
        if fins is None:
            s.pop("finalizers", None)
        else:
            s["finalizers"] = list(fins)

    def validate(self, obj: dict) -> list[FieldError]:
        out: list[FieldError] = []
        for i, name in enumerate(get_path(obj, "spec", "finalizers", default=[]) or []):
            out += validate_finalizer_name(name, f"spec.finalizers[{i}]")
        return out

    def validate_status_update(self, obj: dict, old: dict) -> list[FieldError]:
        phase = get_path(obj, "status", "phase", default="")
        if not meta(obj).get("deletionTimestamp"):
            if phase != "Active":
                return [errors.invalid_value("status.Phase", phase,
                                             "may only be 'Active' if `deletionTimestamp` is empty")]
        elif phase != "Terminating":
            return [errors.invalid_value("status.Phase", phase,
                                         "may only be 'Terminating' if `deletionTimestamp` is not "
                                         "empty")]
        return []

    def table_row(self, obj: dict) -> list[Any]:
        return [meta(obj).get("name", ""), get_path(obj, "status", "phase", default=""), age(obj)]

    def field_labels(self, obj: dict) -> dict[str, str]:
        labels = super().field_labels(obj)
        labels["status.phase"] = get_path(obj, "status", "phase", default="")
        return labels
