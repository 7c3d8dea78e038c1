"""core/v1 Event, stored in the form events.k8s.io/v1 reads through the two
conversion functions below (field mapping as upstream's events/v1 conversion)."""
from __future__ import annotations

from typing import Any

from ...machinery import errors
from ...machinery.errors import FieldError
from ...machinery.printing import get_path, since
from ..strategy import Column, Strategy
from .cells import meta

# core/v1 name -> events.k8s.io/v1 name (same value shapes)
_RENAMES = (("involvedObject", "regarding"), ("message", "note"),
            ("source", "deprecatedSource"), ("count", "deprecatedCount"),
            ("firstTimestamp", "deprecatedFirstTimestamp"),
            ("lastTimestamp", "deprecatedLastTimestamp"),
            ("reportingComponent", "reportingController"))
_SAME = ("eventTime", "series", "action", "related", "type", "reason", "reportingInstance")


def _present(value: Any) -> bool:
    return value not in (None, "", 0, {}, [])


def core_event_to_events_v1(obj: dict) -> dict:
    """A core/v1 Event as events.k8s.io/v1 serves it."""
    out: dict[str, Any] = {"kind": "Event", "apiVersion": "events.k8s.io/v1",
                           "metadata": obj.get("metadata", {}), "eventTime": obj.get("eventTime")}
    for core, v1 in _RENAMES:
        if _present(obj.get(core)):
            out[v1] = obj[core]
    for key in _SAME:
        if _present(obj.get(key)) and key != "eventTime":
            out[key] = obj[key]
    return out


def events_v1_to_core_event(obj: dict) -> dict:
    """An events.k8s.io/v1 Event in its core/v1 (stored) form."""
    out: dict[str, Any] = {"kind": "Event", "apiVersion": "v1",
                           "metadata": obj.get("metadata", {}),
                           "involvedObject": obj.get("regarding") or {},
                           "reportingComponent": obj.get("reportingController", ""),
                           "reportingInstance": obj.get("reportingInstance", ""),
                           "eventTime": obj.get("eventTime")}
    for core, v1 in _RENAMES:
        if core not in out and _present(obj.get(v1)):
            out[core] = obj[v1]
    for key in _SAME:
        if key not in out and _present(obj.get(key)):
            out[key] = obj[key]
    out.setdefault("firstTimestamp", None)
    out.setdefault("lastTimestamp", None)
    out.setdefault("source", {})
    return out


def format_source(ev: dict) -> str:
    """formatEventSource: component[, host] (reporting* when source is empty)."""
    component = get_path(ev, "source", "component") or ev.get("reportingComponent", "")
    host = get_path(ev, "source", "host") or ev.get("reportingInstance", "")
    return f"{component}, {host}" if host else component


def event_cells(ev: dict) -> list[Any]:
    first = since(ev.get("firstTimestamp")) if ev.get("firstTimestamp") else since(
        ev.get("eventTime"))
    last = since(ev.get("lastTimestamp")) if ev.get("lastTimestamp") else first
    count = ev.get("count") or 0
    if ev.get("series"):
        last = since(ev["series"].get("lastObservedTime"))
        count = ev["series"].get("count", 0)
    elif count == 0:
        count = 1
    inv = ev.get("involvedObject") or {}
    kind = (inv.get("kind") or "").lower()
    target = f"{kind}/{inv['name']}" if inv.get("name") else kind
    return [last, ev.get("type", ""), ev.get("reason", ""), target, inv.get("fieldPath", ""),
            format_source(ev), (ev.get("message") or "").strip(), first, count,
            meta(ev).get("name", "")]


class EventStrategy(Strategy):
    allow_create_on_update = True  # as upstream
    kind, plural = "Event", "events"
    short_names = ("ev",)
    storage_resource = "events"
    columns = (
        Column("Last Seen", "string", "", "The time of the last occurrence of the event"),
        Column("Type", "string", "", "Type of this event (Normal, Warning), new types could be "
               "added in the future"),
        Column("Reason", "string", "", "This should be a short, machine understandable string "
               "that gives the reason for the transition into the object's current status."),
        Column("Object", "string", "", "The object that this event is about"),
        Column("Subobject", "string", "", "The subobject that this event is about", 1),
        Column("Source", "string", "", "The component reporting this event. Should be a short "
               "machine understandable string.", 1),
        Column("Message", "string", "", "A human-readable description of the status of this "
               "operation."),
        Column("First Seen", "string", "", "The time at which the event was first recorded.", 1),
        Column("Count", "string", "", "The number of times this event has occurred.", 1),
        Column("Name", "string", "name", "The name of the event", 1),
    )

    def default(self, obj: dict) -> None:
        # core/v1 always serialises these (no omitempty upstream)
        obj.setdefault("involvedObject", {})
        obj.setdefault("source", {})
        obj.setdefault("firstTimestamp", None)
        obj.setdefault("lastTimestamp", None)
        obj.setdefault("eventTime", None)
        obj.setdefault("reportingComponent", "")
        obj.setdefault("reportingInstance", "")

    def validate(self, obj: dict) -> list[FieldError]:
        """Legacy events (no eventTime) must sit in their object's namespace; cluster
        objects' events in "default" (or none) as old clients put them there."""
        if obj.get("eventTime"):
            return []
        ns = meta(obj).get("namespace", "")
        inv_ns = get_path(obj, "involvedObject", "namespace", default="")
        if (inv_ns and inv_ns != ns) or (not inv_ns and ns not in ("", "default")):
            return [errors.invalid_value("involvedObject.namespace", inv_ns,
                                         "does not match event.namespace")]
        return []

    def table_row(self, obj: dict) -> list[Any]:
        return event_cells(obj)

    def field_labels(self, obj: dict) -> dict[str, str]:
        labels = super().field_labels(obj)
        inv = obj.get("involvedObject") or {}
        for key in ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion",
                    "fieldPath"):
            labels[f"involvedObject.{key}"] = inv.get(key, "")
        labels["reason"] = obj.get("reason", "")
        labels["reportingComponent"] = obj.get("reportingComponent", "")
        labels["source"] = get_path(obj, "source", "component", default="")
        labels["type"] = obj.get("type", "")
        return labels
