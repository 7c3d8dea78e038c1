"""scheduling.k8s.io/v1: priorityclasses."""
from __future__ import annotations

from typing import Any

from ..machinery import errors
from ..machinery.errors import FieldError
from ..machinery.printing import age
from .apps import immutable, name_of, set_default
from .strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy

HIGHEST_USER_DEFINABLE_PRIORITY = 1_000_000_000
SYSTEM_CRITICAL_PRIORITY = 2 * HIGHEST_USER_DEFINABLE_PRIORITY
# the two classes the API server creates itself (upstream's SystemPriorityClasses)
SYSTEM_PRIORITY_CLASSES = {"system-node-critical": SYSTEM_CRITICAL_PRIORITY + 1000,
                           "system-cluster-critical": SYSTEM_CRITICAL_PRIORITY}
PREEMPTION_POLICIES = ["Never", "PreemptLowerPriority"]


def system_priority_classes() -> list[dict]:
    """The built-in classes, as the API server bootstraps them."""
    desc = {"system-node-critical": "Used for system critical pods that must not be moved from "
                                    "their current node.",
            "system-cluster-critical": "Used for system critical pods that must run in the "
                                       "cluster, but can be moved to another node if necessary."}
    return [{"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
             "metadata": {"name": name}, "value": value, "description": desc[name],
             "preemptionPolicy": "PreemptLowerPriority"}
            for name, value in SYSTEM_PRIORITY_CLASSES.items()]


class PriorityClassStrategy(Strategy):
    group, version = "scheduling.k8s.io", "v1"
    kind, plural = "PriorityClass", "priorityclasses"
    namespaced = False
    short_names = ("pc",)
    columns = (NAME_COLUMN,
               Column("Value", "integer", "", "value represents the integer value of this "
                      "priority class. This is the actual priority that pods receive when they "
                      "have the name of this class in their pod spec."),
               Column("Global-Default", "boolean", "", "globalDefault specifies whether this "
                      "PriorityClass should be considered as the default priority for pods that do "
                      "not have any priority class. Only one PriorityClass can be marked as "
                      "`globalDefault`. However, if more than one PriorityClasses exists with their "
                      "`globalDefault` field set to true, the smallest value of such global default "
                      "PriorityClasses will be used as the default priority."),
               AGE_COLUMN,
               Column("PreemptionPolicy", "string", "", "preemptionPolicy is the Policy for "
                      "preempting pods with lower priority. One of Never, PreemptLowerPriority. "
                      "Defaults to PreemptLowerPriority if unset."))

    def default(self, obj: dict) -> None:
        set_default(obj, "preemptionPolicy", "PreemptLowerPriority")

    def validate(self, obj: dict) -> list[FieldError]:
        out: list[FieldError] = []
        name = obj.get("metadata", {}).get("name", "")
        value = obj.get("value")
        if value is None:
            out.append(errors.required("value", ""))
        elif name in SYSTEM_PRIORITY_CLASSES:
            if value != SYSTEM_PRIORITY_CLASSES[name]:
                out.append(errors.forbidden("metadata.name",
                                            f"{name} is a system priority class name and must "
                                            f"have value {SYSTEM_PRIORITY_CLASSES[name]}"))
        else:
            if name.startswith("system-"):
                out.append(errors.invalid_value("metadata.name", name, "priority class names with "
                                                "'system-' prefix are reserved"))
            if isinstance(value, int) and value > HIGHEST_USER_DEFINABLE_PRIORITY:
                out.append(errors.forbidden("value", "maximum allowed value of a user defined "
                                            f"priority is {HIGHEST_USER_DEFINABLE_PRIORITY}"))
        policy = obj.get("preemptionPolicy")
        if policy not in PREEMPTION_POLICIES:
            out.append(errors.not_supported("preemptionPolicy", policy, PREEMPTION_POLICIES))
        return out

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        out = self.validate(obj)
        if obj.get("value") != old.get("value"):
            out.append(errors.forbidden("value", "may not be changed in an update."))
        if obj.get("preemptionPolicy") != old.get("preemptionPolicy"):
            out.append(immutable("preemptionPolicy", obj.get("preemptionPolicy")))
        return out

    def table_row(self, obj: dict) -> list[Any]:
        return [name_of(obj), obj.get("value", 0), bool(obj.get("globalDefault")), age(obj),
                obj.get("preemptionPolicy") or ""]


STRATEGIES = [PriorityClassStrategy()]
