"""policy/v1: poddisruptionbudgets."""
from __future__ import annotations

from typing import Any

from ..machinery import errors
from ..machinery.errors import FieldError
from ..machinery.printing import age
from .apps import GoValue, name_of, validate_int_or_percent
from .strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy

EVICTION_POLICIES = ["AlwaysAllow", "IfHealthyBudget"]


class PodDisruptionBudgetStrategy(Strategy):
    group, version = "policy", "v1"
    kind, plural = "PodDisruptionBudget", "poddisruptionbudgets"
    short_names = ("pdb",)
    subresources = ("status",)
    tracks_generation = True
    columns = (NAME_COLUMN,
               Column("Min Available", "string", "", "The minimum number of pods that must be "
                      "available simultaneously.  This can be either an integer or a string "
                      "specifying a percentage, e.g. \"28%\"."),
               Column("Max Unavailable", "string", "", "The maximum number of pods that may be "
                      "unavailable simultaneously.  This can be either an integer or a string "
                      "specifying a percentage, e.g. \"28%\"."),
               Column("Allowed Disruptions", "integer", "", "Calculated number of pods that may "
                      "be disrupted at this time."),
               AGE_COLUMN)

    def initial_status(self, obj: dict) -> dict | None:
        return {"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0,
                "expectedPods": 0}

    def validate(self, obj: dict) -> list[FieldError]:
        from ..machinery.selectors import validate_label_selector
        spec = obj.get("spec") or {}
        out: list[FieldError] = []
        min_a, max_u = spec.get("minAvailable"), spec.get("maxUnavailable")
        if min_a is not None and max_u is not None:
            out.append(errors.invalid_value("spec", GoValue("policy.PodDisruptionBudgetSpec{...}"),
                                            "minAvailable and maxUnavailable cannot be both set"))
        if min_a is not None:
            out += validate_int_or_percent(min_a, "spec.minAvailable")
        if max_u is not None:
            out += validate_int_or_percent(max_u, "spec.maxUnavailable")
        if isinstance(spec.get("selector"), dict):
            out += validate_label_selector(spec["selector"], "spec.selector")
        policy = spec.get("unhealthyPodEvictionPolicy")
        if policy is not None and policy not in EVICTION_POLICIES:
            out.append(errors.not_supported("spec.unhealthyPodEvictionPolicy", policy,
                                            EVICTION_POLICIES))
        return out

    def validate_status_update(self, obj: dict, old: dict) -> list[FieldError]:
        status = obj.get("status") or {}
        out: list[FieldError] = []
        for key in ("disruptionsAllowed", "currentHealthy", "desiredHealthy", "expectedPods"):
            v = status.get(key)
            if isinstance(v, int) and v < 0:
                out.append(errors.invalid_value(f"status.{key}", v,
                                                "must be greater than or equal to 0"))
        return out

    def table_row(self, obj: dict) -> list[Any]:
        spec = obj.get("spec") or {}
        min_a, max_u = spec.get("minAvailable"), spec.get("maxUnavailable")
        return [name_of(obj), "N/A" if min_a is None else str(min_a),
                "N/A" if max_u is None else str(max_u),
                (obj.get("status") or {}).get("disruptionsAllowed", 0), age(obj)]


def set_disruption_allowed_condition(pdb: dict, now: str) -> None:
    """Upstream's pdbhelper: DisruptionAllowed is True/SufficientPods while disruptions
    remain, else False/InsufficientPods; its transition time moves only when it flips.
    Shared by the eviction subresource and the disruption controller."""
    status = pdb.setdefault("status", {})
    allowed = (status.get("disruptionsAllowed") or 0) > 0
    want = {"type": "DisruptionAllowed", "status": "True" if allowed else "False",
            "observedGeneration": status.get("observedGeneration") or 0,
            "lastTransitionTime": now,
            "reason": "SufficientPods" if allowed else "InsufficientPods", "message": ""}
    conds = status.get("conditions") or []
    for i, c in enumerate(conds):
        if c.get("type") == "DisruptionAllowed":
            if c.get("status") == want["status"] and c.get("lastTransitionTime"):
                want["lastTransitionTime"] = c["lastTransitionTime"]
            conds[i] = want
            break
    else:
        conds.append(want)
    status["conditions"] = conds


def disruption_condition_current(pdb: dict) -> bool:
    """Does DisruptionAllowed already say what status.disruptionsAllowed says?"""
    md, status = pdb.get("metadata") or {}, pdb.get("status") or {}
    if (status.get("observedGeneration") or 0) != (md.get("generation") or 0):
        return False
    cond = next((c for c in status.get("conditions") or []
                 if c.get("type") == "DisruptionAllowed"), None)
    if cond is None:
        return False
    if (status.get("disruptionsAllowed") or 0) > 0:
        return cond.get("status") == "True" and cond.get("reason") == "SufficientPods"
    return cond.get("status") == "False" and cond.get("reason") == "InsufficientPods"


STRATEGIES = [PodDisruptionBudgetStrategy()]
