"""core/v1 ReplicationController."""
from __future__ import annotations

import copy
from typing import Any

from ...machinery import errors
from ...machinery import validation as v
from ...machinery.errors import FieldError
from ...machinery.printing import age, get_path
from .. import podspec
from ..strategy import AGE_COLUMN, NAME_COLUMN, Column, ScaleSpec, Strategy
from .cells import format_labels, meta, spec


def _go_map(m: dict) -> Any:
    from ..apps import GoValue, go_string_map
    return GoValue(go_string_map(m))


def containers_cells(template: dict | None) -> tuple[str, str]:
    containers = get_path(template or {}, "spec", "containers", default=[]) or []
    return (",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers))


def validate_rc_spec(s: dict) -> list[FieldError]:
    out: list[FieldError] = []
    selector = s.get("selector") or {}
    if not selector:
        out.append(errors.required("spec.selector", ""))
    out += v.validate_labels(selector, "spec.selector")
    for key in ("replicas", "minReadySeconds"):
        val = s.get(key)
        if isinstance(val, int) and val < 0:
            out.append(errors.invalid_value(f"spec.{key}", val, v.IS_NEGATIVE))
    tpl = s.get("template")
    if tpl is None:
        out.append(errors.required("spec.template", ""))
        return out
    labels = get_path(tpl, "metadata", "labels", default={}) or {}
    if selector and not all(labels.get(k) == val for k, val in selector.items()):
        out.append(errors.invalid_value("spec.template.metadata.labels", _go_map(labels),
                                        "`selector` does not match template `labels`"))
    out += podspec.validate_pod_template(tpl, "spec.template")
    policy = get_path(tpl, "spec", "restartPolicy", default="")
    if policy and policy != "Always":
        out.append(errors.not_supported("spec.template.spec.restartPolicy", policy, ["Always"]))
    if get_path(tpl, "spec", "activeDeadlineSeconds") is not None:
        out.append(errors.forbidden("spec.template.spec.activeDeadlineSeconds",
                                    "activeDeadlineSeconds in ReplicationController is not "
                                    "Supported"))
    return out


class ReplicationControllerStrategy(Strategy):
    kind, plural = "ReplicationController", "replicationcontrollers"
    short_names = ("rc",)
    categories = ("all",)
    subresources = ("status", "scale")
    scale = ScaleSpec(selector_is_map=True)
    tracks_generation = True
    columns = (
        NAME_COLUMN,
        Column("Desired", "integer", "", "Replicas is the number of desired replicas."),
        Column("Current", "integer", "", "Replicas is the most recently observed number of "
               "replicas."),
        Column("Ready", "integer", "", "The number of ready replicas for this replication "
               "controller."),
        AGE_COLUMN,
        Column("Containers", "string", "", "Names of each container in the template.", 1),
        Column("Images", "string", "", "Images referenced by each container in the template.", 1),
        Column("Selector", "string", "", "Selector is a label query over pods that should match "
               "the Replicas count.", 1),
    )

    def default(self, obj: dict) -> None:
        s = spec(obj)
        tpl = s.get("template")
        labels = get_path(tpl or {}, "metadata", "labels")
        if labels is not None:
            if not s.get("selector"):
                s["selector"] = copy.deepcopy(labels)
            md = obj.setdefault("metadata", {})
            if not md.get("labels"):
                md["labels"] = copy.deepcopy(labels)
        if s.get("replicas") is None:
            s["replicas"] = 1
        if isinstance(tpl, dict):
            podspec.default_pod_template(tpl)

    def initial_status(self, obj: dict) -> dict:
        return {"replicas": 0}

    def validate(self, obj: dict) -> list[FieldError]:
        return validate_rc_spec(obj.get("spec") or {})

    def validate_status_update(self, obj: dict, old: dict) -> list[FieldError]:
        out: list[FieldError] = []
        status = obj.get("status") or {}
        for key in ("replicas", "fullyLabeledReplicas", "readyReplicas", "availableReplicas",
                    "observedGeneration"):
            val = status.get(key)
            if isinstance(val, int) and val < 0:
                out.append(errors.invalid_value(f"status.{key}", val, v.IS_NEGATIVE))
        ready, avail = status.get("readyReplicas", 0), status.get("availableReplicas", 0)
        if ready > status.get("replicas", 0):
            out.append(errors.invalid_value("status.readyReplicas", ready,
                                            "cannot be greater than status.replicas"))
        if avail > ready:
            out.append(errors.invalid_value("status.availableReplicas", avail,
                                            "cannot be greater than readyReplicas"))
        return out

    def table_row(self, obj: dict) -> list[Any]:
        s, status = obj.get("spec") or {}, obj.get("status") or {}
        names, images = containers_cells(s.get("template"))
        return [meta(obj).get("name", ""), s.get("replicas", 0), status.get("replicas", 0),
                status.get("readyReplicas", 0), age(obj), names, images,
                format_labels(s.get("selector"))]

    def field_labels(self, obj: dict) -> dict[str, str]:
        labels = super().field_labels(obj)
        labels["status.replicas"] = str(get_path(obj, "status", "replicas", default=0))
        return labels
