"""apps/v1: deployments, replicasets, statefulsets, daemonsets, controllerrevisions.

Also home of the small helpers the other workload groups (batch, policy) share:
int-or-percent checks, selector/template checks, Go-style value rendering for
error messages and the CONTAINERS/IMAGES/SELECTOR printer cells.
"""
from __future__ import annotations

import copy
import re
from typing import Any

from ..machinery import errors
from ..machinery.errors import FieldError
from ..machinery.printing import age, get_path
from .strategy import AGE_COLUMN, NAME_COLUMN, Column, ScaleSpec, Strategy

IMMUTABLE = "field is immutable"


# ----- helpers shared by the workload groups ---------------------------------------
class GoValue:
    """A bad value already rendered the way Go's %#v prints it (errors.py prints str())."""

    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        return self.text


def go_string_map(m: dict | None) -> str:
    if m is None:
        return "map[string]string(nil)"
    inner = ", ".join(f'"{k}":"{v}"' for k, v in sorted(m.items()))
    return "map[string]string{" + inner + "}"


def go_label_selector(sel: dict | None) -> GoValue:
    if sel is None:
        return GoValue("null")
    exprs = sel.get("matchExpressions")
    if exprs:
        parts = []
        for e in exprs:
            vals = ", ".join(f'"{v}"' for v in e.get("values") or [])
            vals_txt = f"[]string{{{vals}}}" if e.get("values") else "[]string(nil)"
            parts.append(f'v1.LabelSelectorRequirement{{Key:"{e.get("key", "")}", '
                         f'Operator:"{e.get("operator", "")}", Values:{vals_txt}}}')
        exprs_txt = "[]v1.LabelSelectorRequirement{" + ", ".join(parts) + "}"
    else:
        exprs_txt = "[]v1.LabelSelectorRequirement(nil)"
    return GoValue(f"v1.LabelSelector{{MatchLabels:{go_string_map(sel.get('matchLabels'))}, "
                   f"MatchExpressions:{exprs_txt}}}")


def immutable(path: str, value: Any) -> FieldError:
    if isinstance(value, dict):
        value = GoValue(str(value))
    return errors.invalid_value(path, value, IMMUTABLE)


def non_negative(obj: dict, key: str, path: str) -> list[FieldError]:
    v = obj.get(key)
    if isinstance(v, int) and not isinstance(v, bool) and v < 0:
        return [errors.invalid_value(path, v, "must be greater than or equal to 0")]
    return []


def positive(obj: dict, key: str, path: str) -> list[FieldError]:
    v = obj.get(key)
    if isinstance(v, int) and not isinstance(v, bool) and v <= 0:
        return [errors.invalid_value(path, v, "must be greater than 0")]
    return []


_PERCENT = re.compile(r"^[0-9]+%$")


def int_or_percent_value(v: Any) -> tuple[int, bool] | None:
    """(number, is_percent) of an IntOrString, None when it is neither."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v, False
    if isinstance(v, str) and _PERCENT.match(v):
        return int(v[:-1]), True
    return None


def validate_int_or_percent(v: Any, path: str) -> list[FieldError]:
    """Positive-or-zero int, or a percent string no greater than 100%."""
    if isinstance(v, str) and not _PERCENT.match(v):
        return [errors.invalid_value(path, v, "a valid percent string must be a numeric string "
                                     "followed by an ending '%' (e.g. '1%',  or '93%', regex used "
                                     "for validation is '[0-9]+%')")]
    parsed = int_or_percent_value(v)
    if parsed is None:
        return []
    n, pct = parsed
    out: list[FieldError] = []
    if n < 0:
        out.append(errors.invalid_value(path, v, "must be greater than or equal to 0"))
    if pct and n > 100:
        out.append(errors.invalid_value(path, v, "must not be greater than 100%"))
    return out


def validate_selector(sel: Any, path: str, what: str) -> list[FieldError]:
    """Required, well-formed and non-empty (the apps/v1 and batch rule)."""
    if sel is None:
        return [errors.required(path, "")]
    from ..machinery.selectors import validate_label_selector
    out = list(validate_label_selector(sel, path))
    if not sel.get("matchLabels") and not sel.get("matchExpressions"):
        out.append(errors.invalid_value(path, go_label_selector(sel),
                                        f"empty selector is invalid for {what}"))
    return out


def selector_matches(sel: dict, labels: dict | None) -> bool:
    from ..machinery.selectors import LabelSelector
    try:
        return LabelSelector.from_api(sel).matches(labels or {})
    except Exception:
        return False


def validate_template_labels(template: dict, sel: dict | None, path: str) -> list[FieldError]:
    """The selector must select the pods the template makes."""
    if not isinstance(sel, dict) or not (sel.get("matchLabels") or sel.get("matchExpressions")):
        return []
    labels = get_path(template, "metadata", "labels") or {}
    from ..machinery.validation import validate_labels
    out: list[FieldError] = []
    # malformed labels are reported by the template validator; only match good ones
    if not validate_labels(labels, f"{path}.labels") and not selector_matches(sel, labels):
        out.append(errors.invalid_value(f"{path}.metadata.labels", GoValue(go_string_map(labels)),
                                        "`selector` does not match template `labels`"))
    return out


def validate_pod_template(template: dict | None, path: str, restart_policies: tuple[str, ...]
                          ) -> list[FieldError]:
    """Template present, pod spec valid (core's validator), restartPolicy allowed."""
    if not isinstance(template, dict):
        return [errors.required(path, "")]
    out: list[FieldError] = []
    podspec = _podspec()
    validate_spec = getattr(podspec, "validate_pod_template_spec", None)
    if validate_spec is not None:
        out += validate_spec(template, path)
    policy = get_path(template, "spec", "restartPolicy", default="") or "Always"
    if policy not in restart_policies:
        out.append(errors.not_supported(f"{path}.spec.restartPolicy", policy,
                                        list(restart_policies)))
    return out


def _podspec() -> Any:
    """core's pod-spec module (defaults + validation), None while it is not there."""
    import importlib
    try:
        return importlib.import_module(f"{__package__}.podspec")
    except ModuleNotFoundError as e:
        if e.name != f"{__package__}.podspec":
            raise
        return None


def default_template(template: Any) -> None:
    podspec = _podspec()
    if isinstance(template, dict) and podspec is not None:
        podspec.default_pod_template(template)


def format_selector(sel: dict | None) -> str:
    """metav1.FormatLabelSelector: "<none>" for nil/empty."""
    if not sel:
        return "<none>"
    from ..machinery.selectors import LabelSelector
    try:
        text = str(LabelSelector.from_api(sel))
    except Exception:
        return "<error>"
    return text or "<none>"


def container_cells(template: dict | None) -> list[str]:
    """CONTAINERS and IMAGES cells of a pod template (comma-joined)."""
    containers = get_path(template or {}, "spec", "containers", default=[]) or []
    return [",".join(c.get("name", "") for c in containers),
            ",".join(c.get("image", "") for c in containers)]


CONTAINERS_COLUMN = Column("Containers", "string", "", "Names of each container in the template.", 1)
IMAGES_COLUMN = Column("Images", "string", "", "Images referenced by each container in the template.", 1)


def selector_column(desc: str = "Label query over pods that should match the replica count.") -> Column:
    return Column("Selector", "string", "", desc, 1)


def name_of(obj: dict) -> str:
    return obj.get("metadata", {}).get("name", "")


def set_default(obj: dict, key: str, value: Any) -> None:
    if obj.get(key) is None:
        obj[key] = copy.deepcopy(value)


def spec_of(obj: dict) -> dict:
    spec = obj.get("spec")
    if not isinstance(spec, dict):
        spec = obj["spec"] = {}
    return spec


# ----- workloads shared validation -------------------------------------------------
def _validate_common_workload(spec: dict, what: str) -> list[FieldError]:
    out = validate_selector(spec.get("selector"), "spec.selector", what)
    out += non_negative(spec, "replicas", "spec.replicas")
    out += non_negative(spec, "minReadySeconds", "spec.minReadySeconds")
    out += non_negative(spec, "revisionHistoryLimit", "spec.revisionHistoryLimit")
    template = spec.get("template")
    out += validate_pod_template(template, "spec.template", ("Always",))
    if isinstance(template, dict):
        out += validate_template_labels(template, spec.get("selector"), "spec.template")
        ads = get_path(template, "spec", "activeDeadlineSeconds")
        if ads is not None:
            out.append(errors.invalid_value("spec.template.spec.activeDeadlineSeconds", ads,
                                            f"activeDeadlineSeconds in {_ads_kind(what)} is not Supported"))
    return out


def _with_claim_volumes(spec: dict) -> dict:
    """The spec as its pods will be: each volumeClaimTemplate is a volume of the pod
    (the controller adds it), so a volumeMount may name it."""
    template = spec.get("template")
    claims = [get_path(t, "metadata", "name") for t in spec.get("volumeClaimTemplates") or []
              if isinstance(t, dict)]
    pod = template.get("spec") if isinstance(template, dict) else None
    if not isinstance(pod, dict) or not claims or not isinstance(pod.get("volumes", []), list):
        return spec
    have = {v.get("name") for v in pod.get("volumes") or [] if isinstance(v, dict)}
    extra = [{"name": c, "persistentVolumeClaim": {"claimName": c}}
             for c in claims if isinstance(c, str) and c not in have]
    pod = dict(pod, volumes=(pod.get("volumes") or []) + extra)
    return dict(spec, template=dict(template, spec=pod))


def _ads_kind(what: str) -> str:
    return {"deployment": "ReplicaSet", "replicaset": "ReplicaSet", "statefulset": "StatefulSet",
            "daemonset": "DaemonSet"}.get(what, what)


def _selector_immutable(obj: dict, old: dict) -> list[FieldError]:
    new_sel, old_sel = get_path(obj, "spec", "selector"), get_path(old, "spec", "selector")
    if new_sel != old_sel:
        return [errors.invalid_value("spec.selector", go_label_selector(new_sel), IMMUTABLE)]
    return []


APPS_SCALE = ScaleSpec()


class _Workload(Strategy):
    group = "apps"
    version = "v1"
    namespaced = True
    tracks_generation = True
    categories = ("all",)


# ----- Deployment ------------------------------------------------------------------
class DeploymentStrategy(_Workload):
    kind, plural = "Deployment", "deployments"
    short_names = ("deploy",)
    subresources = ("status", "scale")
    annotations_bump_generation = True  # upstream: a rollback annotation is a spec change
    scale = APPS_SCALE
    columns = (NAME_COLUMN,
               Column("Ready", "string", "", "Number of the pod with ready state"),
               Column("Up-to-date", "integer", "", "Total number of non-terminated pods targeted by "
                      "this deployment that have the desired template spec."),
               Column("Available", "integer", "", "Total number of available pods (ready for at "
                      "least minReadySeconds) targeted by this deployment."),
               AGE_COLUMN, CONTAINERS_COLUMN, IMAGES_COLUMN,
               selector_column("Label selector for pods. Existing ReplicaSets whose pods are "
                               "selected by this will be the ones affected by this deployment."))

    def default(self, obj: dict) -> None:
        spec = spec_of(obj)
        set_default(spec, "replicas", 1)
        strategy = spec.get("strategy")
        if not isinstance(strategy, dict):
            strategy = spec["strategy"] = {}
        set_default(strategy, "type", "RollingUpdate")
        if strategy["type"] == "RollingUpdate":
            ru = strategy.get("rollingUpdate")
            if not isinstance(ru, dict):
                ru = strategy["rollingUpdate"] = {}
            set_default(ru, "maxUnavailable", "25%")
            set_default(ru, "maxSurge", "25%")
        set_default(spec, "revisionHistoryLimit", 10)
        set_default(spec, "progressDeadlineSeconds", 600)
        default_template(spec.get("template"))

    def initial_status(self, obj: dict) -> dict | None:
        return {}

    def validate(self, obj: dict) -> list[FieldError]:
        spec = obj.get("spec") or {}
        out = _validate_common_workload(spec, "deployment")
        out += self._validate_strategy(spec.get("strategy") or {})
        pds = spec.get("progressDeadlineSeconds")
        out += non_negative(spec, "progressDeadlineSeconds", "spec.progressDeadlineSeconds")
        if isinstance(pds, int) and pds <= (spec.get("minReadySeconds") or 0):
            out.append(errors.invalid_value("spec.progressDeadlineSeconds", pds,
                                            "must be greater than minReadySeconds"))
        return out

    @staticmethod
    def _validate_strategy(strategy: dict) -> list[FieldError]:
        path = "spec.strategy"
        kind = strategy.get("type")
        if kind not in ("Recreate", "RollingUpdate"):
            return [errors.not_supported(f"{path}.type", kind, ["Recreate", "RollingUpdate"])]
        ru = strategy.get("rollingUpdate")
        if kind == "Recreate":
            if ru is not None:
                return [errors.forbidden(f"{path}.rollingUpdate",
                                         "may not be specified when strategy `type` is 'Recreate'")]
            return []
        if not isinstance(ru, dict):
            return [errors.required(f"{path}.rollingUpdate",
                                    "this should be defaulted and never be nil")]
        return validate_rolling_update(ru, f"{path}.rollingUpdate")

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        return self.validate(obj) + _selector_immutable(obj, old)

    def table_row(self, obj: dict) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        ready = f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}"
        return [name_of(obj), ready, status.get("updatedReplicas", 0),
                status.get("availableReplicas", 0), age(obj),
                *container_cells(spec.get("template")), format_selector(spec.get("selector"))]


def validate_rolling_update(ru: dict, path: str) -> list[FieldError]:
    """maxUnavailable/maxSurge: int-or-percent, not both zero, maxUnavailable <= 100%."""
    out: list[FieldError] = []
    mu, ms = ru.get("maxUnavailable"), ru.get("maxSurge")
    out += validate_int_or_percent(mu, f"{path}.maxUnavailable")
    out += validate_int_or_percent(ms, f"{path}.maxSurge")
    mu_v, ms_v = int_or_percent_value(mu), int_or_percent_value(ms)
    if mu_v is not None and ms_v is not None and mu_v[0] == 0 and ms_v[0] == 0:
        out.append(errors.invalid_value(f"{path}.maxUnavailable", mu,
                                        "may not be 0 when `maxSurge` is 0"))
    return out


# ----- ReplicaSet ------------------------------------------------------------------
class ReplicaSetStrategy(_Workload):
    kind, plural = "ReplicaSet", "replicasets"
    short_names = ("rs",)
    subresources = ("status", "scale")
    scale = APPS_SCALE
    columns = (NAME_COLUMN,
               Column("Desired", "integer", "", "Replicas is the number of desired pods."),
               Column("Current", "integer", "", "Replicas is the most recently observed number of "
                      "non-terminating pods."),
               Column("Ready", "integer", "", "The number of non-terminating pods targeted by this "
                      "ReplicaSet with a Ready Condition."),
               AGE_COLUMN, CONTAINERS_COLUMN, IMAGES_COLUMN,
               selector_column("Selector is a label query over pods that should match the replica "
                               "count."))

    def default(self, obj: dict) -> None:
        spec = spec_of(obj)
        set_default(spec, "replicas", 1)
        default_template(spec.get("template"))

    def initial_status(self, obj: dict) -> dict | None:
        return {"replicas": 0}

    def validate(self, obj: dict) -> list[FieldError]:
        return _validate_common_workload(obj.get("spec") or {}, "replicaset")

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        return self.validate(obj) + _selector_immutable(obj, old)

    def table_row(self, obj: dict) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        return [name_of(obj), spec.get("replicas", 0), status.get("replicas", 0),
                status.get("readyReplicas", 0), age(obj),
                *container_cells(spec.get("template")), format_selector(spec.get("selector"))]


# ----- StatefulSet -----------------------------------------------------------------
class StatefulSetStrategy(_Workload):
    kind, plural = "StatefulSet", "statefulsets"
    short_names = ("sts",)
    subresources = ("status", "scale")
    scale = APPS_SCALE
    columns = (NAME_COLUMN,
               Column("Ready", "string", "", "Number of the pod with ready state"),
               AGE_COLUMN, CONTAINERS_COLUMN, IMAGES_COLUMN)

    def default(self, obj: dict) -> None:
        spec = spec_of(obj)
        set_default(spec, "podManagementPolicy", "OrderedReady")
        us = spec.get("updateStrategy")
        if not isinstance(us, dict):
            us = spec["updateStrategy"] = {}
        set_default(us, "type", "RollingUpdate")
        if us["type"] == "RollingUpdate":
            ru = us.get("rollingUpdate")
            if not isinstance(ru, dict):
                ru = us["rollingUpdate"] = {}
            set_default(ru, "partition", 0)
        set_default(spec, "replicas", 1)
        set_default(spec, "revisionHistoryLimit", 10)
        policy = spec.get("persistentVolumeClaimRetentionPolicy")
        if not isinstance(policy, dict):
            policy = spec["persistentVolumeClaimRetentionPolicy"] = {}
        set_default(policy, "whenDeleted", "Retain")
        set_default(policy, "whenScaled", "Retain")
        default_template(spec.get("template"))
        for pvc in spec.get("volumeClaimTemplates") or []:
            if isinstance(pvc, dict):
                set_default(spec_of(pvc), "volumeMode", "Filesystem")
                status = pvc.setdefault("status", {})
                if isinstance(status, dict):
                    set_default(status, "phase", "Pending")

    def initial_status(self, obj: dict) -> dict | None:
        return {"replicas": 0, "availableReplicas": 0}

    def validate(self, obj: dict) -> list[FieldError]:
        spec = obj.get("spec") or {}
        out = _validate_common_workload(_with_claim_volumes(spec), "statefulset")
        pmp = spec.get("podManagementPolicy")
        if pmp not in ("OrderedReady", "Parallel"):
            out.append(errors.not_supported("spec.podManagementPolicy", pmp,
                                            ["OrderedReady", "Parallel"]))
        out += self._validate_update_strategy(spec.get("updateStrategy") or {})
        policy = spec.get("persistentVolumeClaimRetentionPolicy") or {}
        for key in ("whenDeleted", "whenScaled"):
            if policy.get(key) not in ("Retain", "Delete"):
                out.append(errors.not_supported(
                    f"spec.persistentVolumeClaimRetentionPolicy.{key}", policy.get(key),
                    ["Retain", "Delete"]))
        ordinals = spec.get("ordinals")
        if isinstance(ordinals, dict):
            out += non_negative(ordinals, "start", "spec.ordinals.start")
        return out

    @staticmethod
    def _validate_update_strategy(us: dict) -> list[FieldError]:
        kind, path = us.get("type"), "spec.updateStrategy"
        if kind not in ("OnDelete", "RollingUpdate"):
            return [errors.not_supported(f"{path}.type", kind, ["OnDelete", "RollingUpdate"])]
        ru = us.get("rollingUpdate")
        if kind == "OnDelete":
            if ru is not None:
                return [errors.invalid_value(f"{path}.rollingUpdate", GoValue(str(ru)),
                                             "only allowed for updateStrategy 'RollingUpdate'")]
            return []
        if isinstance(ru, dict):
            return non_negative(ru, "partition", f"{path}.rollingUpdate.partition")
        return []

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        out = self.validate(obj)
        new_spec, old_spec = obj.get("spec") or {}, old.get("spec") or {}
        mutable = ("replicas", "ordinals", "template", "updateStrategy",
                   "persistentVolumeClaimRetentionPolicy", "minReadySeconds",
                   "revisionHistoryLimit")
        rest_new = {k: v for k, v in new_spec.items() if k not in mutable}
        rest_old = {k: v for k, v in old_spec.items() if k not in mutable}
        if rest_new != rest_old:
            out.append(errors.forbidden(
                "spec", "updates to statefulset spec for fields other than 'replicas', 'ordinals', "
                "'template', 'updateStrategy', 'revisionHistoryLimit', "
                "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"))
        return out

    def table_row(self, obj: dict) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        ready = f"{status.get('readyReplicas', 0)}/{spec.get('replicas', 0)}"
        return [name_of(obj), ready, age(obj), *container_cells(spec.get("template"))]


# ----- DaemonSet -------------------------------------------------------------------
class DaemonSetStrategy(_Workload):
    kind, plural = "DaemonSet", "daemonsets"
    short_names = ("ds",)
    subresources = ("status",)
    columns = (NAME_COLUMN,
               Column("Desired", "integer", "", "The total number of nodes that should be running "
                      "the daemon pod (including nodes correctly running the daemon pod)."),
               Column("Current", "integer", "", "The number of nodes that are running at least 1 "
                      "daemon pod and are supposed to run the daemon pod."),
               Column("Ready", "integer", "", "numberReady is the number of nodes that should be "
                      "running the daemon pod and have one or more of the daemon pod running with "
                      "a Ready Condition."),
               Column("Up-to-date", "integer", "", "The total number of nodes that are running "
                      "updated daemon pod"),
               Column("Available", "integer", "", "The number of nodes that should be running the "
                      "daemon pod and have one or more of the daemon pod running and available "
                      "(ready for at least spec.minReadySeconds)"),
               Column("Node Selector", "string", "", "NodeSelector is a selector which must be true "
                      "for the pod to fit on a node. Selector which must match a node's labels for "
                      "the pod to be scheduled on that node. More info: https://kubernetes.io/docs/"
                      "concepts/configuration/assign-pod-node/"),
               AGE_COLUMN, CONTAINERS_COLUMN, IMAGES_COLUMN,
               selector_column("A label query over pods that are managed by the daemon set. Must "
                               "match in order to be controlled. It must match the pod template's "
                               "labels. More info: https://kubernetes.io/docs/concepts/overview/"
                               "working-with-objects/labels/#label-selectors"))

    def default(self, obj: dict) -> None:
        spec = spec_of(obj)
        us = spec.get("updateStrategy")
        if not isinstance(us, dict):
            us = spec["updateStrategy"] = {}
        set_default(us, "type", "RollingUpdate")
        if us["type"] == "RollingUpdate":
            ru = us.get("rollingUpdate")
            if not isinstance(ru, dict):
                ru = us["rollingUpdate"] = {}
            set_default(ru, "maxUnavailable", 1)
            set_default(ru, "maxSurge", 0)
        set_default(spec, "revisionHistoryLimit", 10)
        default_template(spec.get("template"))

    def initial_status(self, obj: dict) -> dict | None:
        return {"currentNumberScheduled": 0, "numberMisscheduled": 0,
                "desiredNumberScheduled": 0, "numberReady": 0}

    def validate(self, obj: dict) -> list[FieldError]:
        spec = obj.get("spec") or {}
        out = _validate_common_workload(spec, "daemonset")
        us = spec.get("updateStrategy") or {}
        kind = us.get("type")
        if kind not in ("OnDelete", "RollingUpdate"):
            out.append(errors.not_supported("spec.updateStrategy.type", kind,
                                            ["OnDelete", "RollingUpdate"]))
        elif kind == "RollingUpdate" and isinstance(us.get("rollingUpdate"), dict):
            out += validate_rolling_update(us["rollingUpdate"], "spec.updateStrategy.rollingUpdate")
        return out

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        return self.validate(obj) + _selector_immutable(obj, old)

    def table_row(self, obj: dict) -> list[Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        node_sel = get_path(spec, "template", "spec", "nodeSelector") or {}
        node_txt = ",".join(f"{k}={v}" for k, v in sorted(node_sel.items())) or "<none>"
        return [name_of(obj), status.get("desiredNumberScheduled", 0),
                status.get("currentNumberScheduled", 0), status.get("numberReady", 0),
                status.get("updatedNumberScheduled", 0), status.get("numberAvailable", 0),
                node_txt, age(obj), *container_cells(spec.get("template")),
                format_selector(spec.get("selector"))]


# ----- ControllerRevision ----------------------------------------------------------
class ControllerRevisionStrategy(Strategy):
    group, version = "apps", "v1"
    kind, plural = "ControllerRevision", "controllerrevisions"
    columns = (NAME_COLUMN,
               Column("Controller", "string", "", "Controller of the object"),
               Column("Revision", "integer", "", "Revision indicates the revision of the state "
                      "represented by Data."),
               AGE_COLUMN)

    def validate(self, obj: dict) -> list[FieldError]:
        if "revision" not in obj:
            return [errors.required("revision", "")]
        return non_negative(obj, "revision", "revision")

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        out = self.validate(obj)
        if obj.get("data") != old.get("data"):
            out.append(immutable("data", GoValue("runtime.RawExtension{...}")))
        return out

    def table_row(self, obj: dict) -> list[Any]:
        return [name_of(obj), controller_name(obj), obj.get("revision", 0), age(obj)]


def controller_name(obj: dict) -> str:
    """`<kind>.<group>/<name>` (lower-cased kind) of the controlling owner, or <none>."""
    for ref in obj.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            api_version = ref.get("apiVersion", "")
            grp = api_version.split("/")[0] if "/" in api_version else ""
            kind = ref.get("kind", "")
            gk = f"{kind}.{grp}" if grp else kind
            return f"{gk.lower()}/{ref.get('name', '')}" if gk else ref.get("name", "")
    return "<none>"


STRATEGIES = [DeploymentStrategy(), StatefulSetStrategy(), DaemonSetStrategy(),
              ReplicaSetStrategy(), ControllerRevisionStrategy()]
