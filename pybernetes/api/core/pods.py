"""core/v1 Pod: defaults, validation, update rules, table rows and field selectors."""
from __future__ import annotations

import copy
from typing import Any

from ...machinery import errors
from ...machinery.errors import FieldError
from ...machinery.printing import age, get_path, parse_time, since
from ...machinery.validation import is_dns1123_subdomain, is_valid_ip
from .. import podspec
from ..strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from .cells import meta, none_if_empty, spec

# Added by the DefaultTolerationSeconds admission plugin (kept in default() for now).
DEFAULT_TOLERATION_SECONDS = 300
DEFAULT_TOLERATION_KEYS = ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
NODE_UNREACHABLE_REASON = "NodeLost"
UPDATABLE_FIELDS = ("`spec.containers[*].image`", "`spec.initContainers[*].image`",
                    "`spec.activeDeadlineSeconds`",
                    "`spec.tolerations` (only additions to existing tolerations)",
                    "`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was "
                    "previously negative)")
POD_PHASES = ["Failed", "Pending", "Running", "Succeeded", "Unknown"]


def _tolerates_no_execute(tols: list[dict], key: str) -> bool:
    """Does an existing toleration already cover taint `key` with effect NoExecute?"""
    for t in tols:
        if t.get("effect") not in (None, "", "NoExecute"):
            continue
        if not t.get("key") and t.get("operator") == "Exists":
            return True
        if t.get("key") == key and t.get("operator", "Equal") == "Exists":
            return True
    return False


def add_default_tolerations(pod_spec: dict) -> None:
    tols = pod_spec.get("tolerations") or []
    for key in DEFAULT_TOLERATION_KEYS:
        if not _tolerates_no_execute(tols, key):
            tols.append({"key": key, "operator": "Exists", "effect": "NoExecute",
                         "tolerationSeconds": DEFAULT_TOLERATION_SECONDS})
    pod_spec["tolerations"] = tols


# ----- the Status column (upstream printPod) --------------------------------------------
def _terminated_reason(term: dict, prefix: str = "") -> str:
    if term.get("reason"):
        return prefix + term["reason"]
    if term.get("signal"):
        return f"{prefix}Signal:{term['signal']}"
    return f"{prefix}ExitCode:{term.get('exitCode', 0)}"


def _later(a: str, b: str | None) -> str:
    """The later of two RFC3339 stamps ("" = none)."""
    if not b:
        return a
    ta, tb = parse_time(a), parse_time(b)
    if ta is None or (tb is not None and tb > ta):
        return b
    return a


def _is_sidecar(pod: dict, name: str) -> bool:
    for c in get_path(pod, "spec", "initContainers", default=[]) or []:
        if c.get("name") == name:
            return c.get("restartPolicy") == "Always"
    return False


def _condition_true(pod: dict, ctype: str) -> bool:
    return any(c.get("type") == ctype and c.get("status") == "True"
               for c in get_path(pod, "status", "conditions", default=[]) or [])


class _PodCells:
    """Walks a pod's container statuses the way kubectl's printer does."""

    def __init__(self, pod: dict):
        self.pod = pod
        status = pod.get("status") or {}
        init_specs = get_path(pod, "spec", "initContainers", default=[]) or []
        self.total = len(get_path(pod, "spec", "containers", default=[]) or []) + sum(
            1 for c in init_specs if c.get("restartPolicy") == "Always")
        self.ready = 0
        self.restarts = 0
        self.last_restart = ""
        self.reason = status.get("reason") or status.get("phase") or ""
        for c in status.get("conditions") or []:
            if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
                self.reason = "SchedulingGated"
        initializing = self._init_containers(status, len(init_specs))
        if not initializing or _condition_true(pod, "Initialized"):
            self._containers(status)
        deleting = bool(meta(pod).get("deletionTimestamp"))
        if deleting and status.get("reason") == NODE_UNREACHABLE_REASON:
            self.reason = "Unknown"
        elif deleting and status.get("phase") not in ("Failed", "Succeeded"):
            self.reason = "Terminating"

    def _note_restarts(self, cs: dict) -> None:
        self.restarts += cs.get("restartCount", 0) or 0
        finished = get_path(cs, "lastState", "terminated", "finishedAt")
        self.last_restart = _later(self.last_restart, finished)

    def _init_containers(self, status: dict, count: int) -> bool:
        self.sidecar_restarts, self.sidecar_last = 0, ""
        for i, cs in enumerate(status.get("initContainerStatuses") or []):
            self._note_restarts(cs)
            if _is_sidecar(self.pod, cs.get("name", "")):
                self.sidecar_restarts += cs.get("restartCount", 0) or 0
                self.sidecar_last = _later(self.sidecar_last,
                                           get_path(cs, "lastState", "terminated", "finishedAt"))
            state = cs.get("state") or {}
            term, wait = state.get("terminated"), state.get("waiting")
            if term is not None and term.get("exitCode", 0) == 0:
                continue
            if _is_sidecar(self.pod, cs.get("name", "")) and cs.get("started"):
                if cs.get("ready"):
                    self.ready += 1
                continue
            if term is not None:
                self.reason = _terminated_reason(term, "Init:")
            elif wait is not None and wait.get("reason") and wait["reason"] != "PodInitializing":
                self.reason = "Init:" + wait["reason"]
            else:
                self.reason = f"Init:{i}/{count}"
            return True
        return False

    def _containers(self, status: dict) -> None:
        self.restarts, self.last_restart = self.sidecar_restarts, self.sidecar_last
        running = False
        for cs in reversed(status.get("containerStatuses") or []):
            self._note_restarts(cs)
            state = cs.get("state") or {}
            wait, term = state.get("waiting"), state.get("terminated")
            if wait is not None and wait.get("reason"):
                self.reason = wait["reason"]
            elif term is not None:
                self.reason = _terminated_reason(term)
            elif cs.get("ready") and state.get("running") is not None:
                running = True
                self.ready += 1
        if self.reason == "Completed" and running:
            self.reason = "Running" if _condition_true(self.pod, "Ready") else "NotReady"

    def restarts_cell(self) -> str:
        if self.restarts and self.last_restart:
            return f"{self.restarts} ({since(self.last_restart)} ago)"
        return str(self.restarts)


def readiness_gates_cell(pod: dict) -> str:
    gates = get_path(pod, "spec", "readinessGates", default=[]) or []
    if not gates:
        return "<none>"
    wanted = {g.get("conditionType") for g in gates}
    true = sum(1 for c in get_path(pod, "status", "conditions", default=[]) or []
               if c.get("type") in wanted and c.get("status") == "True")
    return f"{true}/{len(gates)}"


# ----- update rules ---------------------------------------------------------------------
def _munged_spec(new: dict, old: dict) -> dict:
    """`new` with every field a pod update may change set back to `old`'s value."""
    munged = copy.deepcopy(new)
    for key in ("containers", "initContainers"):
        olds = old.get(key) or []
        for i, c in enumerate(munged.get(key) or []):
            if i < len(olds) and isinstance(c, dict):
                c["image"] = olds[i].get("image")
    if "activeDeadlineSeconds" in old or "activeDeadlineSeconds" in munged:
        _copy_key(munged, old, "activeDeadlineSeconds")
    old_tols = old.get("tolerations") or []
    new_tols = munged.get("tolerations") or []
    if all(t in new_tols for t in old_tols):
        _copy_key(munged, old, "tolerations")
    old_grace = old.get("terminationGracePeriodSeconds")
    if isinstance(old_grace, int) and old_grace < 0 and munged.get(
            "terminationGracePeriodSeconds") == 1:
        munged["terminationGracePeriodSeconds"] = old_grace
    if len(munged.get("schedulingGates") or []) <= len(old.get("schedulingGates") or []):
        _copy_key(munged, old, "schedulingGates")
    return munged


def _copy_key(dst: dict, src: dict, key: str) -> None:
    if key in src:
        dst[key] = copy.deepcopy(src[key])
    else:
        dst.pop(key, None)


def _spec_diff(old: Any, new: Any, path: str = "spec") -> list[str]:
    """A short list of what differs (upstream prints a cmp.Diff here)."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for k in sorted(set(old) | set(new)):
            out += _spec_diff(old.get(k), new.get(k), f"{path}.{k}")
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = []
        for i, (a, b) in enumerate(zip(old, new)):
            out += _spec_diff(a, b, f"{path}[{i}]")
        return out
    return [] if old == new else [f"-  {path}: {old!r}\n+  {path}: {new!r}"]


def _validate_active_deadline(new: dict, old: dict) -> list[FieldError]:
    ads, old_ads = new.get("activeDeadlineSeconds"), old.get("activeDeadlineSeconds")
    if ads is None and old_ads is not None:
        return [errors.invalid_value("spec.activeDeadlineSeconds", None,
                                     "must not update from a positive integer to nil value")]
    if ads is not None and old_ads is not None and ads > old_ads:
        return [errors.invalid_value("spec.activeDeadlineSeconds", ads,
                                     "must be less than or equal to previous value")]
    return []


def _state_transitions(new: Any, old: Any, path: str, policy: str) -> list[FieldError]:
    """A container that may not restart cannot leave the terminated state."""
    if policy == "Always":
        return []
    out: list[FieldError] = []
    for i, old_cs in enumerate(old or []):
        term = get_path(old_cs, "state", "terminated")
        if term is None or (term.get("exitCode", 0) != 0 and policy == "OnFailure"):
            continue
        for new_cs in new or []:
            if new_cs.get("name") == old_cs.get("name") and \
                    get_path(new_cs, "state", "terminated") is None:
                out.append(errors.forbidden(f"{path}[{i}].state",
                                            "may not be transitioned to non-terminated state"))
    return out


class PodStrategy(Strategy):
    return_deleted_object = True
    kind, plural = "Pod", "pods"
    short_names = ("po",)
    categories = ("all",)
    subresources = ("status", "binding", "log", "exec", "attach", "portforward", "eviction",
                    "ephemeralcontainers", "resize")
    # v1.33 pods carry metadata.generation (PrepareForCreate sets 1, spec changes bump it)
    tracks_generation = True
    columns = (
        NAME_COLUMN,
        Column("Ready", "string", "", "The aggregate readiness state of this pod for accepting "
               "traffic."),
        Column("Status", "string", "", "The aggregate status of the containers in this pod."),
        Column("Restarts", "string", "", "The number of times the containers in this pod have "
               "been restarted and when the last container in this pod has restarted."),
        AGE_COLUMN,
        Column("IP", "string", "", "podIP address allocated to the pod. Routable at least within "
               "the cluster. Empty if not yet allocated.", 1),
        Column("Node", "string", "", "NodeName indicates in which node this pod is scheduled.", 1),
        Column("Nominated Node", "string", "", "nominatedNodeName is set only when this pod "
               "preempts other pods on the node, but it cannot be scheduled right away as "
               "preemption victims receive their graceful termination periods.", 1),
        Column("Readiness Gates", "string", "", "If specified, all readiness gates will be "
               "evaluated for pod readiness.", 1),
    )

    def default(self, obj: dict) -> None:
        s = spec(obj)
        podspec.default_pod_spec(s)
        podspec.default_pod_only(s)
        if not s.get("priorityClassName"):
            # Priority admission: no class and no global default -> priority 0
            s.setdefault("priority", 0)
        s.setdefault("preemptionPolicy", "PreemptLowerPriority")
        add_default_tolerations(s)

    def initial_status(self, obj: dict) -> dict:
        return {"phase": "Pending", "qosClass": podspec.pod_qos_class(spec(obj))}

    def validate(self, obj: dict) -> list[FieldError]:
        return podspec.validate_pod_spec(obj.get("spec"), "spec")

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        new_spec, old_spec = obj.get("spec") or {}, old.get("spec") or {}
        out = podspec.validate_pod_spec(new_spec, "spec")
        out += _validate_active_deadline(new_spec, old_spec)
        for key in ("containers", "initContainers"):
            if len(new_spec.get(key) or []) != len(old_spec.get(key) or []):
                out.append(errors.forbidden(f"spec.{key}",
                                            "pod updates may not add or remove containers"))
                return out
        munged = _munged_spec(new_spec, old_spec)
        if munged != old_spec:
            diff = "\n".join(_spec_diff(old_spec, munged))
            out.append(errors.forbidden(
                "spec", "pod updates may not change fields other than "
                f"{','.join(UPDATABLE_FIELDS)}\n{diff}"))
        return out

    def prepare_for_status_update(self, obj: dict, old: dict) -> None:
        super().prepare_for_status_update(obj, old)
        # qosClass is fixed at creation; old kubelets drop it
        status = obj.get("status")
        if isinstance(status, dict) and not status.get("qosClass"):
            qos = get_path(old, "status", "qosClass")
            if qos:
                status["qosClass"] = qos
        md, old_md = obj.setdefault("metadata", {}), old.get("metadata") or {}
        _copy_key(md, old_md, "ownerReferences")
        _copy_key(md, old_md, "deletionTimestamp")

    def validate_status_update(self, obj: dict, old: dict) -> list[FieldError]:
        out: list[FieldError] = []
        status = obj.get("status") or {}
        phase = status.get("phase")
        if phase and phase not in POD_PHASES:
            out.append(errors.not_supported("status.phase", phase, POD_PHASES))
        for key in ("podIPs", "hostIPs"):
            for i, entry in enumerate(status.get(key) or []):
                ip = entry.get("ip", "") if isinstance(entry, dict) else ""
                for msg in is_valid_ip(ip):
                    out.append(errors.invalid_value(f"status.{key}[{i}].ip", ip, msg))
        nominated = status.get("nominatedNodeName")
        if nominated and nominated != get_path(old, "status", "nominatedNodeName"):
            for msg in is_dns1123_subdomain(nominated):
                out.append(errors.invalid_value("status.nominatedNodeName", nominated, msg))
        policy = get_path(old, "spec", "restartPolicy", default="Always")
        for key in ("containerStatuses", "initContainerStatuses"):
            out += _state_transitions(status.get(key), get_path(old, "status", key),
                                      f"status.{key}", policy)
        return out

    def deletion_grace_period(self, obj: dict, requested: int | None) -> int:
        """CheckGracefulDelete: the request's period, else the pod's own; unscheduled or
        finished pods go at once (no kubelet has to stop anything)."""
        s, status = obj.get("spec") or {}, obj.get("status") or {}
        period = requested if requested is not None else s.get("terminationGracePeriodSeconds") or 0
        if not s.get("nodeName") or status.get("phase") in ("Failed", "Succeeded"):
            return 0
        return 1 if period < 0 else period

    def table_row(self, obj: dict) -> list[Any]:
        cells = _PodCells(obj)
        status = obj.get("status") or {}
        ip = status.get("podIP") or ((status.get("podIPs") or [{}])[0].get("ip", ""))
        return [meta(obj).get("name", ""), f"{cells.ready}/{cells.total}", cells.reason,
                cells.restarts_cell(), age(obj), none_if_empty(ip),
                none_if_empty(get_path(obj, "spec", "nodeName")),
                none_if_empty(status.get("nominatedNodeName")), readiness_gates_cell(obj)]

    def field_labels(self, obj: dict) -> dict[str, str]:
        labels = super().field_labels(obj)
        s, status = obj.get("spec") or {}, obj.get("status") or {}
        ips = [p.get("ip", "") for p in status.get("podIPs") or []]
        labels.update({
            "spec.nodeName": s.get("nodeName", ""),
            "spec.restartPolicy": s.get("restartPolicy", ""),
            "spec.schedulerName": s.get("schedulerName", ""),
            "spec.serviceAccountName": s.get("serviceAccountName", ""),
            "spec.hostNetwork": "true" if s.get("hostNetwork") else "false",
            "status.phase": status.get("phase", ""),
            "status.podIP": ips[0] if ips else status.get("podIP", ""),
            "status.podIPs": ",".join(ips) if ips else status.get("podIP", ""),
            "status.nominatedNodeName": status.get("nominatedNodeName", ""),
        })
        return labels
