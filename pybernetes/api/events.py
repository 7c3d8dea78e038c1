"""events.k8s.io/v1 events: a second view of core/v1 events.

Both share the `/registry/events/` key; the stored form is core/v1 Event. Core
is listed first in discovery, so `kubectl get events` (and `ev`) keep resolving to
core events; this group is what client-go's new event recorder writes to.
"""
from __future__ import annotations

from typing import Any

from ..machinery import errors, validation
from ..machinery.errors import FieldError
from .strategy import Column, Strategy

EVENT_TYPES = ("Normal", "Warning")


def _core_strategy() -> Strategy | None:
    from .registry import registry
    return registry().get("", "v1", "events")


def _to_core(obj: dict) -> dict:
    from .core.events import events_v1_to_core_event
    return events_v1_to_core_event(obj)


def _from_core(obj: dict) -> dict:
    from .core.events import core_event_to_events_v1
    return core_event_to_events_v1(obj)


def _max_len(obj: dict, key: str, limit: int) -> list[FieldError]:
    value = obj.get(key) or ""
    if len(value) > limit:
        return [errors.invalid_value(key, "", f"can have at most {limit} characters")]
    return []


def validate_events_v1(obj: dict) -> list[FieldError]:
    """events.k8s.io's stricter create rules (new-style events must say who and what)."""
    out: list[FieldError] = []
    if not obj.get("eventTime"):
        out.append(errors.required("eventTime", ""))
    kind = obj.get("type", "")
    if kind not in EVENT_TYPES:
        out.append(errors.invalid_value("type", "", f"has invalid value: {kind}"))
    series = obj.get("series")
    if isinstance(series, dict):
        if (series.get("count") or 0) < 2:
            out.append(errors.invalid_value("series.count", "", "should be at least 2"))
        if not series.get("lastObservedTime"):
            out.append(errors.required("series.lastObservedTime", ""))
    controller = obj.get("reportingController") or ""
    if not controller:
        out.append(errors.required("reportingController", ""))
    else:
        out += [errors.invalid_value("reportingController", controller, m)
                for m in validation.is_qualified_name(controller)]
    for key in ("reportingInstance", "action", "reason"):
        if not obj.get(key):
            out.append(errors.required(key, ""))
        out += _max_len(obj, key, 128)
    out += _max_len(obj, "note", 1024)
    return out


class EventStrategy(Strategy):
    allow_create_on_update = True  # as upstream
    group, version = "events.k8s.io", "v1"
    kind, plural = "Event", "events"
    short_names = ("ev",)
    storage_resource = "events"

    @property
    def columns(self) -> tuple[Column, ...]:  # type: ignore[override]
        core = _core_strategy()
        return core.columns if core is not None else Strategy.columns

    def validate(self, obj: dict) -> list[FieldError]:
        return validate_events_v1(obj)

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        out = []
        for key in ("reportingController", "reportingInstance", "action", "reason", "type",
                    "regarding", "related", "eventTime"):
            if obj.get(key) != old.get(key):
                out.append(errors.invalid_value(key, obj.get(key) if isinstance(obj.get(key), str)
                                                else "", "field is immutable"))
        return out + _max_len(obj, "note", 1024)

    def to_storage(self, obj: dict) -> dict:
        return _to_core(obj)

    def from_storage(self, obj: dict) -> dict:
        return _from_core(obj)

    def table_row(self, obj: dict) -> list[Any]:
        core = _core_strategy()
        if core is None:
            return super().table_row(obj)
        return core.table_row(_to_core(obj))

    def field_labels(self, obj: dict) -> dict[str, str]:
        core = _core_strategy()
        if core is None:
            return super().field_labels(obj)
        return core.field_labels(_to_core(obj))


STRATEGIES = [EventStrategy()]
