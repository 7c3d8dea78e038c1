"""autoscaling v2 (stored, preferred) and v1 horizontalpodautoscalers.

Both versions share one storage key; the stored form is v2. v1 sees the CPU
utilization metric as `targetCPUUtilizationPercentage`; everything v1 cannot say
(other metrics, behavior, conditions, current metrics) rides in annotations so a
v1 round trip loses nothing (upstream does the same with its alpha annotations,
though it writes them in the older v1 metric shape; we keep the v2 shape).
"""
from __future__ import annotations

import copy
from typing import Any

import orjson

from ..machinery import errors
from ..machinery.errors import FieldError
from ..machinery.printing import age
from .apps import name_of, set_default, spec_of
from .strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy

METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/metrics"
CURRENT_METRICS_ANNOTATION = "autoscaling.alpha.kubernetes.io/current-metrics"
CONDITIONS_ANNOTATION = "autoscaling.alpha.kubernetes.io/conditions"
BEHAVIOR_ANNOTATION = "autoscaling.alpha.kubernetes.io/behavior"
_ANNOTATIONS = (METRICS_ANNOTATION, CURRENT_METRICS_ANNOTATION, CONDITIONS_ANNOTATION,
                BEHAVIOR_ANNOTATION)
METRIC_TYPES = ["ContainerResource", "External", "Object", "Pods", "Resource"]
DEFAULT_CPU_UTILIZATION = 80

SCALE_UP_DEFAULT = {"stabilizationWindowSeconds": 0, "selectPolicy": "Max",
                    "policies": [{"type": "Pods", "value": 4, "periodSeconds": 15},
                                 {"type": "Percent", "value": 100, "periodSeconds": 15}]}
SCALE_DOWN_DEFAULT = {"stabilizationWindowSeconds": 300, "selectPolicy": "Max",
                      "policies": [{"type": "Percent", "value": 100, "periodSeconds": 15}]}


def cpu_metric(utilization: int) -> dict:
    return {"type": "Resource", "resource": {"name": "cpu", "target": {
        "type": "Utilization", "averageUtilization": utilization}}}


def _is_cpu_utilization(m: dict) -> bool:
    res = m.get("resource") or {}
    return m.get("type") == "Resource" and res.get("name") == "cpu" and \
        (res.get("target") or {}).get("type") == "Utilization"


def default_v2(obj: dict) -> None:
    spec = spec_of(obj)
    set_default(spec, "minReplicas", 1)
    if not spec.get("metrics"):
        spec["metrics"] = [cpu_metric(DEFAULT_CPU_UTILIZATION)]
    behavior = spec.get("behavior")
    if isinstance(behavior, dict):
        for key, defaults in (("scaleUp", SCALE_UP_DEFAULT), ("scaleDown", SCALE_DOWN_DEFAULT)):
            rules = behavior.get(key)
            if not isinstance(rules, dict):
                behavior[key] = copy.deepcopy(defaults)
                continue
            for k, v in defaults.items():
                set_default(rules, k, v)


# ----- conversion ------------------------------------------------------------------
def _annotations(obj: dict) -> dict:
    return obj.setdefault("metadata", {}).setdefault("annotations", {})


def _drop_empty_annotations(obj: dict) -> None:
    md = obj.get("metadata") or {}
    if md.get("annotations") == {}:
        del md["annotations"]


def v1_to_v2(obj: dict) -> dict:
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v2"
    ann = _annotations(out)
    spec = out.setdefault("spec", {})
    metrics = orjson.loads(ann.pop(METRICS_ANNOTATION)) if METRICS_ANNOTATION in ann else []
    cpu = spec.pop("targetCPUUtilizationPercentage", None)
    if cpu is not None:
        metrics = [cpu_metric(cpu)] + [m for m in metrics if not _is_cpu_utilization(m)]
    if metrics:
        spec["metrics"] = metrics
    if BEHAVIOR_ANNOTATION in ann:
        spec["behavior"] = orjson.loads(ann.pop(BEHAVIOR_ANNOTATION))
    status = out.get("status")
    if isinstance(status, dict):
        out["status"] = _status_v1_to_v2(status, ann)
    else:
        ann.pop(CURRENT_METRICS_ANNOTATION, None)
        ann.pop(CONDITIONS_ANNOTATION, None)
    _drop_empty_annotations(out)
    return out


def _status_v1_to_v2(status: dict, ann: dict) -> dict:
    out = {k: v for k, v in status.items() if k != "currentCPUUtilizationPercentage"}
    current = orjson.loads(ann.pop(CURRENT_METRICS_ANNOTATION)) \
        if CURRENT_METRICS_ANNOTATION in ann else []
    cpu = status.get("currentCPUUtilizationPercentage")
    if cpu is not None:
        current = [{"type": "Resource", "resource": {"name": "cpu", "current": {
            "averageUtilization": cpu}}}] + [m for m in current if not _is_cpu_current(m)]
    if current:
        out["currentMetrics"] = current
    if CONDITIONS_ANNOTATION in ann:
        out["conditions"] = orjson.loads(ann.pop(CONDITIONS_ANNOTATION))
    return out


def _is_cpu_current(m: dict) -> bool:
    res = m.get("resource") or {}
    return m.get("type") == "Resource" and res.get("name") == "cpu" and \
        "averageUtilization" in (res.get("current") or {})


def v2_to_v1(obj: dict) -> dict:
    out = copy.deepcopy(obj)
    out["apiVersion"] = "autoscaling/v1"
    spec = out.setdefault("spec", {})
    metrics = spec.pop("metrics", None) or []
    cpu = next((m for m in metrics if _is_cpu_utilization(m)), None)
    others = [m for m in metrics if m is not cpu]
    ann = _annotations(out)
    if cpu is not None:
        spec["targetCPUUtilizationPercentage"] = cpu["resource"]["target"].get("averageUtilization")
    if others:
        ann[METRICS_ANNOTATION] = orjson.dumps(others).decode()
    behavior = spec.pop("behavior", None)
    if behavior is not None:
        ann[BEHAVIOR_ANNOTATION] = orjson.dumps(behavior).decode()
    status = out.get("status")
    if isinstance(status, dict):
        out["status"] = _status_v2_to_v1(status, ann)
    _drop_empty_annotations(out)
    return out


def _status_v2_to_v1(status: dict, ann: dict) -> dict:
    out = {k: v for k, v in status.items() if k not in ("currentMetrics", "conditions")}
    out.setdefault("currentReplicas", 0)
    out.setdefault("desiredReplicas", 0)
    current = status.get("currentMetrics") or []
    cpu = next((m for m in current if _is_cpu_current(m)), None)
    if cpu is not None:
        out["currentCPUUtilizationPercentage"] = cpu["resource"]["current"]["averageUtilization"]
    others = [m for m in current if m is not cpu]
    if others:
        ann[CURRENT_METRICS_ANNOTATION] = orjson.dumps(others).decode()
    if status.get("conditions"):
        ann[CONDITIONS_ANNOTATION] = orjson.dumps(status["conditions"]).decode()
    return out


# ----- validation ------------------------------------------------------------------
def validate_hpa_spec(spec: dict) -> list[FieldError]:
    out: list[FieldError] = []
    ref = spec.get("scaleTargetRef") or {}
    for key in ("kind", "name"):
        if not ref.get(key):
            out.append(errors.required(f"spec.scaleTargetRef.{key}", ""))
    min_r, max_r = spec.get("minReplicas"), spec.get("maxReplicas")
    if isinstance(min_r, int) and min_r < 1:
        out.append(errors.invalid_value("spec.minReplicas", min_r,
                                        "must be greater than or equal to 1"))
    if max_r is None:
        out.append(errors.required("spec.maxReplicas", ""))
    elif isinstance(max_r, int):
        if max_r < 1:
            out.append(errors.invalid_value("spec.maxReplicas", max_r, "must be greater than 0"))
        if isinstance(min_r, int) and max_r < min_r:
            out.append(errors.invalid_value("spec.maxReplicas", max_r,
                                            "must be greater than or equal to `minReplicas`"))
    for i, m in enumerate(spec.get("metrics") or []):
        out += _validate_metric(m, f"spec.metrics[{i}]")
    return out


_SOURCE_KEY = {"Resource": "resource", "Pods": "pods", "Object": "object",
               "External": "external", "ContainerResource": "containerResource"}


def _validate_metric(m: dict, path: str) -> list[FieldError]:
    kind = m.get("type")
    if kind not in METRIC_TYPES:
        return [errors.not_supported(f"{path}.type", kind, METRIC_TYPES)]
    key = _SOURCE_KEY[kind]
    source = m.get(key)
    if not isinstance(source, dict):
        return [errors.required(f"{path}.{key}", "must populate information for the given "
                                                 "metric source")]
    target = source.get("target") or {}
    ttype = target.get("type")
    if ttype not in ("Utilization", "Value", "AverageValue"):
        return [errors.not_supported(f"{path}.{key}.target.type", ttype,
                                     ["AverageValue", "Utilization", "Value"])]
    util = target.get("averageUtilization")
    if isinstance(util, int) and util < 1:
        return [errors.invalid_value(f"{path}.{key}.target.averageUtilization", util,
                                     "must be greater than 0")]
    return []


# ----- printing --------------------------------------------------------------------
def _quantity_text(v: Any) -> str:
    return "<unknown>" if v is None else str(v)


def _metric_text(spec: dict, status: dict | None) -> str:
    kind = spec.get("type")
    key = _SOURCE_KEY.get(kind or "")
    if key is None:
        return "<unknown type>"
    source = spec.get(key) or {}
    target = source.get("target") or {}
    current = ((status or {}).get(key) or {}).get("current") or {}
    if kind in ("Resource", "ContainerResource"):
        name = source.get("name", "")
        if target.get("averageValue") is not None:
            return f"{name}: {_quantity_text(current.get('averageValue'))}/{target['averageValue']}"
        cur = current.get("averageUtilization")
        cur_txt = f"{cur}%" if cur is not None else "<unknown>"
        tgt = target.get("averageUtilization")
        tgt_txt = f"{tgt}%" if tgt is not None else "<auto>"
        return f"{name}: {cur_txt}/{tgt_txt}"
    if kind == "Pods":
        return f"{_quantity_text(current.get('averageValue'))}/{target.get('averageValue')}"
    if target.get("averageValue") is not None:
        return f"{_quantity_text(current.get('averageValue'))}/{target['averageValue']} (avg)"
    return f"{_quantity_text(current.get('value'))}/{target.get('value')}"


def format_hpa_metrics(specs: list[dict], statuses: list[dict]) -> str:
    if not specs:
        return "<none>"
    texts = [_metric_text(s, statuses[i] if i < len(statuses) else None)
             for i, s in enumerate(specs)]
    if len(texts) > 2:
        return f"{', '.join(texts[:2])} + {len(texts) - 2} more..."
    return ", ".join(texts)


HPA_COLUMNS = (NAME_COLUMN,
               Column("Reference", "string", "", "reference to scaled resource"),
               Column("Targets", "string", "", "the state of the metrics"),
               Column("MinPods", "string", "", "minReplicas is the lower limit for the number of "
                      "replicas to which the autoscaler can scale down.  It defaults to 1 pod.  "
                      "minReplicas is allowed to be 0 if the alpha feature gate HPAScaleToZero is "
                      "enabled and at least one Object or External metric is configured.  Scaling "
                      "is active as long as at least one metric value is available."),
               Column("MaxPods", "integer", "", "maxReplicas is the upper limit for the number of "
                      "replicas to which the autoscaler can scale up. It cannot be less that "
                      "minReplicas."),
               Column("Replicas", "integer", "", "currentReplicas is current number of replicas of "
                      "pods managed by this autoscaler, as last seen by the autoscaler."),
               AGE_COLUMN)


def hpa_row(v2: dict) -> list[Any]:
    spec, status = v2.get("spec") or {}, v2.get("status") or {}
    ref = spec.get("scaleTargetRef") or {}
    min_r = spec.get("minReplicas")
    return [name_of(v2), f"{ref.get('kind', '')}/{ref.get('name', '')}",
            format_hpa_metrics(spec.get("metrics") or [], status.get("currentMetrics") or []),
            "<unset>" if min_r is None else str(min_r), spec.get("maxReplicas", 0),
            status.get("currentReplicas", 0), age(v2)]


class _HPA(Strategy):
    group = "autoscaling"
    kind, plural = "HorizontalPodAutoscaler", "horizontalpodautoscalers"
    short_names = ("hpa",)
    categories = ("all",)
    subresources = ("status",)
    storage_resource = "horizontalpodautoscalers"
    columns = HPA_COLUMNS


class HPAV2Strategy(_HPA):
    version = "v2"

    def default(self, obj: dict) -> None:
        default_v2(obj)

    def initial_status(self, obj: dict) -> dict | None:
        return {"desiredReplicas": 0}

    def validate(self, obj: dict) -> list[FieldError]:
        return validate_hpa_spec(obj.get("spec") or {})

    def table_row(self, obj: dict) -> list[Any]:
        return hpa_row(obj)


class HPAV1Strategy(_HPA):
    version = "v1"
    preferred = False

    def default(self, obj: dict) -> None:
        set_default(spec_of(obj), "minReplicas", 1)

    def initial_status(self, obj: dict) -> dict | None:
        return {"currentReplicas": 0, "desiredReplicas": 0}

    def validate(self, obj: dict) -> list[FieldError]:
        spec = obj.get("spec") or {}
        out = validate_hpa_spec(v1_to_v2(obj).get("spec") or {})
        cpu = spec.get("targetCPUUtilizationPercentage")
        if isinstance(cpu, int) and cpu < 1:
            out = [e for e in out if "averageUtilization" not in e.field]
            out.append(errors.invalid_value("spec.targetCPUUtilizationPercentage", cpu,
                                            "must be greater than 0"))
        return out

    def to_storage(self, obj: dict) -> dict:
        stored = v1_to_v2(obj)
        default_v2(stored)
        return stored

    def from_storage(self, obj: dict) -> dict:
        return v2_to_v1(obj)

    def table_row(self, obj: dict) -> list[Any]:
        return hpa_row(v1_to_v2(obj))


STRATEGIES = [HPAV2Strategy(), HPAV1Strategy()]
