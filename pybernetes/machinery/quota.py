"""Quota accounting shared by the ResourceQuota admission plugin and controller.

Resource lists are `dict[str, Quantity]`. An *evaluator* knows, for one resource
(pods, services, ...), which quota names it can charge, what one object costs,
and which quota scopes an object falls in - upstream's quota.Evaluator
(pkg/quota/v1/evaluator/core and apiserver/pkg/quota/v1/generic), in our words.
"""
from __future__ import annotations

import time
from datetime import datetime
from fractions import Fraction
from typing import Any, Iterable

from .quantity import DECIMAL_SI, Quantity, QuantityError

ResourceList = dict[str, Quantity]

ZERO = Quantity(Fraction(0), DECIMAL_SI)
ONE = Quantity(Fraction(1), DECIMAL_SI)

# ----- resource list math ---------------------------------------------------------------


def parse_list(raw: Any) -> ResourceList:
    """A wire ResourceList ({"cpu": "100m"}) as Quantities; malformed values are skipped
    (validation reports them before anything here sees them)."""
    out: ResourceList = {}
    if not isinstance(raw, dict):
        return out
    for name, q in raw.items():
        try:
            out[str(name)] = Quantity.parse(q)
        except QuantityError:
            continue
    return out


def render_list(rl: ResourceList) -> dict[str, str]:
    return {k: str(v) for k, v in sorted(rl.items())}


def add(a: ResourceList, b: ResourceList) -> ResourceList:
    """Sum per name; a name in only one list keeps its value (quota.Add)."""
    out = dict(a)
    for k, v in b.items():
        out[k] = _plus(out[k], v) if k in out else v
    return out


def _plus(x: Quantity, y: Quantity) -> Quantity:
    # a zero takes the other side's format, as Quantity.Add does ("0" + "1Gi" is "1Gi")
    return Quantity(x.value + y.value, y.format if x.value == 0 else x.format)


def subtract_non_negative(a: ResourceList, b: ResourceList) -> ResourceList:
    """a - b per name of a, never below zero (quota.SubtractWithNonNegativeResult)."""
    out: ResourceList = {}
    for k, v in a.items():
        d = v - b[k] if k in b else v
        out[k] = d if d.value > 0 else Quantity(Fraction(0), v.format)
    return out


def mask(rl: ResourceList, names: Iterable[str]) -> ResourceList:
    keep = set(names)
    return {k: v for k, v in rl.items() if k in keep}


def is_zero(rl: ResourceList) -> bool:
    return all(v.value == 0 for v in rl.values())


def negative_names(rl: ResourceList) -> list[str]:
    return sorted(k for k, v in rl.items() if v.value < 0)


def less_than_or_equal(a: ResourceList, b: ResourceList) -> tuple[bool, list[str]]:
    """Every name of a that b limits is within the limit; the names that are not."""
    exceeded = sorted(k for k, v in a.items() if k in b and v.value > b[k].value)
    return not exceeded, exceeded


def equals(a: ResourceList, b: ResourceList) -> bool:
    return a.keys() == b.keys() and all(a[k].value == b[k].value for k in a)


def pretty_print(rl: ResourceList) -> str:
    """name=value pairs sorted by name, comma-joined, as upstream's error messages."""
    return ",".join(f"{k}={rl[k]}" for k in sorted(rl))


# ----- pod resources --------------------------------------------------------------------


def _container_list(c: dict, kind: str) -> ResourceList:
    return parse_list((c.get("resources") or {}).get(kind))


def _max_into(acc: ResourceList, rl: ResourceList) -> None:
    for k, v in rl.items():
        if k not in acc or v.value > acc[k].value:
            acc[k] = v


def pod_aggregate(pod: dict, kind: str, overhead: bool = True) -> ResourceList:
    """A pod's effective requests or limits: the sum of its containers (and sidecars),
    or the largest init container step if that is larger, plus the pod overhead
    (component-helpers' PodRequests/PodLimits)."""
    spec = pod.get("spec") or {}
    total: ResourceList = {}
    for c in spec.get("containers") or []:
        total = add(total, _container_list(c, kind))
    sidecars: ResourceList = {}
    init_peak: ResourceList = {}
    for c in spec.get("initContainers") or []:
        own = _container_list(c, kind)
        if c.get("restartPolicy") == "Always":
            # a sidecar keeps running beside everything that starts after it
            total = add(total, own)
            sidecars = add(sidecars, own)
            step = sidecars
        else:
            step = add(own, sidecars)
        _max_into(init_peak, step)
    _max_into(total, init_peak)
    if overhead:
        total = add(total, parse_list(spec.get("overhead")))
    return total


# ----- evaluators -------------------------------------------------------------------------


def object_count_name(group: str, plural: str) -> str:
    return f"count/{plural}.{group}" if group else f"count/{plural}"


def scope_selectors(quota: dict) -> list[dict]:
    """spec.scopes as Exists selectors, then spec.scopeSelector.matchExpressions."""
    spec = quota.get("spec") or {}
    out = [{"scopeName": s, "operator": "Exists"} for s in spec.get("scopes") or []]
    out += list((spec.get("scopeSelector") or {}).get("matchExpressions") or [])
    return out


class Evaluator:
    """Counts one object kind against quota. Subclasses override what differs."""

    group = ""
    plural = ""
    names: tuple[str, ...] = ()

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        return sorted(n for n in names if n in self.names)

    def usage(self, obj: dict) -> ResourceList:
        raise NotImplementedError

    def constraints(self, required: list[str], obj: dict) -> str | None:
        """Why the object may not be charged against a quota tracking `required`."""
        return None

    def handles(self, operation: str, subresource: str, obj: dict | None,
                old: dict | None) -> bool:
        return operation == "CREATE" and not subresource

    def matches_scope(self, selector: dict, obj: dict) -> bool:
        return False  # kinds without scopes never match a scoped quota

    def matches(self, quota: dict, obj: dict) -> bool:
        """The quota limits something this kind uses, and the object is in its scopes."""
        hard = (quota.get("status") or {}).get("hard") or {}
        if not self.matching_resources(hard):
            return False
        return all(self.matches_scope(s, obj) for s in scope_selectors(quota))


class ObjectCountEvaluator(Evaluator):
    """count/<resource>.<group> (and the legacy alias for a few core kinds)."""

    def __init__(self, group: str, plural: str, alias: str = ""):
        self.group, self.plural = group, plural
        self.names = tuple(n for n in (object_count_name(group, plural), alias) if n)

    def usage(self, obj: dict) -> ResourceList:
        return {n: ONE for n in self.names}


class ServiceEvaluator(Evaluator):
    plural = "services"
    names = ("count/services", "services", "services.nodeports", "services.loadbalancers")

    def handles(self, operation: str, subresource: str, obj: dict | None,
                old: dict | None) -> bool:
        # an update can change the type, and with it node ports and load balancers
        return operation in ("CREATE", "UPDATE") and not subresource

    def usage(self, obj: dict) -> ResourceList:
        spec = obj.get("spec") or {}
        ports = Quantity(Fraction(len(spec.get("ports") or [])), DECIMAL_SI)
        out: ResourceList = {"count/services": ONE, "services": ONE,
                             "services.loadbalancers": ZERO, "services.nodeports": ZERO}
        if spec.get("type") in ("NodePort", "LoadBalancer"):
            out["services.nodeports"] = ports
        if spec.get("type") == "LoadBalancer":
            out["services.loadbalancers"] = ONE
        return out


STORAGE_CLASS_SUFFIX = ".storageclass.storage.k8s.io/"


class PersistentVolumeClaimEvaluator(Evaluator):
    plural = "persistentvolumeclaims"
    _own = ("persistentvolumeclaims", "requests.storage")

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        out = []
        for n in names:
            if n == "count/persistentvolumeclaims" or n in self._own or any(
                    n.endswith(STORAGE_CLASS_SUFFIX + r) for r in self._own):
                out.append(n)
        return sorted(out)

    def handles(self, operation: str, subresource: str, obj: dict | None,
                old: dict | None) -> bool:
        return operation in ("CREATE", "UPDATE") and not subresource

    def usage(self, obj: dict) -> ResourceList:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        out: ResourceList = {"persistentvolumeclaims": ONE, "count/persistentvolumeclaims": ONE}
        cls = spec.get("storageClassName") or ((obj.get("metadata") or {}).get(
            "annotations") or {}).get("volume.beta.kubernetes.io/storage-class", "")
        if cls:
            out[f"{cls}{STORAGE_CLASS_SUFFIX}persistentvolumeclaims"] = ONE
        storage = parse_list((spec.get("resources") or {}).get("requests")).get("storage")
        if storage is not None:
            allocated = parse_list(status.get("allocatedResources")).get("storage")
            if allocated is not None and allocated.value > storage.value:
                storage = allocated
            # whole bytes, as upstream rounds a claim's request up
            storage = Quantity(Fraction(storage.int_value()), storage.format)
            out["requests.storage"] = storage
            if cls:
                out[f"{cls}{STORAGE_CLASS_SUFFIX}requests.storage"] = storage
        return out


_POD_NAMES = ("count/pods", "cpu", "memory", "ephemeral-storage", "requests.cpu",
              "requests.memory", "requests.ephemeral-storage", "limits.cpu", "limits.memory",
              "limits.ephemeral-storage", "pods")
# quota names a pod must set on every container when a quota tracks them (a historical
# upstream rule kept for compatibility; it covers cpu and memory only)
_MUST_SPECIFY = {"cpu", "memory", "requests.cpu", "requests.memory", "limits.cpu",
                 "limits.memory"}
_NATIVE_PREFIXES = ("requests.", "limits.")


def _is_extended_request(name: str) -> bool:
    """requests.<domain>/<name> outside kubernetes.io: an extended resource quota name."""
    if not name.startswith("requests."):
        return False
    rest = name[len("requests."):]
    if "/" not in rest:
        return False
    domain = rest.split("/", 1)[0]
    return not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


def _is_extended(name: str) -> bool:
    if "/" not in name or name.startswith(_NATIVE_PREFIXES):
        return False
    domain = name.split("/", 1)[0]
    return not (domain == "kubernetes.io" or domain.endswith(".kubernetes.io"))


def compute_usage(requests: ResourceList, limits: ResourceList) -> ResourceList:
    """pods=1 plus cpu/memory/ephemeral-storage requests (under both the bare and the
    requests. name) and limits, hugepages and extended resources."""
    out: ResourceList = {"pods": ONE}
    for name in ("cpu", "memory", "ephemeral-storage"):
        if name in requests:
            out[name] = out[f"requests.{name}"] = requests[name]
        if name in limits:
            out[f"limits.{name}"] = limits[name]
    for name, q in requests.items():
        if name.startswith("hugepages-"):
            out[name] = out[f"requests.{name}"] = q
        elif _is_extended(name):
            out[f"requests.{name}"] = q
    return out


def is_terminating(pod: dict) -> bool:
    ads = (pod.get("spec") or {}).get("activeDeadlineSeconds")
    return isinstance(ads, int) and ads >= 0


def is_best_effort(pod: dict) -> bool:
    for c in list((pod.get("spec") or {}).get("containers") or []) + \
            list((pod.get("spec") or {}).get("initContainers") or []):
        for kind in ("requests", "limits"):
            rl = _container_list(c, kind)
            if any(rl.get(n, ZERO).value > 0 for n in ("cpu", "memory")):
                return False
    return True


def _parse_time(s: Any) -> float | None:
    if not isinstance(s, str) or not s:
        return None
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def pod_charged(pod: dict, now: float | None = None) -> bool:
    """Terminal pods, and pods stuck terminating past their grace period, cost nothing
    but their object count (QuotaV1Pod)."""
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return False
    md = pod.get("metadata") or {}
    deleted, grace = _parse_time(md.get("deletionTimestamp")), \
        md.get("deletionGracePeriodSeconds")
    if deleted is not None and isinstance(grace, int):
        if (now if now is not None else time.time()) > deleted + grace:
            return False
    return True


def _cross_namespace_affinity(pod: dict) -> bool:
    aff = (pod.get("spec") or {}).get("affinity") or {}
    for kind in ("podAffinity", "podAntiAffinity"):
        a = aff.get(kind) or {}
        terms = list(a.get("requiredDuringSchedulingIgnoredDuringExecution") or [])
        terms += [w.get("podAffinityTerm") or {}
                  for w in a.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
        if any(t.get("namespaces") or t.get("namespaceSelector") is not None for t in terms):
            return True
    return False


def _priority_matches(pod: dict, selector: dict) -> bool:
    pc = (pod.get("spec") or {}).get("priorityClassName") or ""
    op, values = selector.get("operator"), selector.get("values") or []
    if op == "Exists":
        return bool(pc)
    if op == "DoesNotExist":
        return not pc
    if op == "In":
        return bool(pc) and pc in values
    if op == "NotIn":
        return not pc or pc not in values
    return False


class PodEvaluator(Evaluator):
    plural = "pods"
    names = _POD_NAMES

    def matching_resources(self, names: Iterable[str]) -> list[str]:
        return sorted(n for n in names if n in _POD_NAMES or n.startswith(
            ("hugepages-", "requests.hugepages-")) or _is_extended_request(n))

    def handles(self, operation: str, subresource: str, obj: dict | None,
                old: dict | None) -> bool:
        if subresource == "resize":
            return operation == "UPDATE"
        if subresource:
            return False
        if operation == "UPDATE" and obj is not None and old is not None:
            # moving in or out of the Terminating scope changes which quota pays
            return is_terminating(obj) != is_terminating(old)
        return operation == "CREATE"

    def usage(self, obj: dict) -> ResourceList:
        out: ResourceList = {"count/pods": ONE}
        if not pod_charged(obj):
            return out
        return add(out, compute_usage(pod_aggregate(obj, "requests"),
                                      pod_aggregate(obj, "limits")))

    def constraints(self, required: list[str], obj: dict) -> str | None:
        needed = set(required) & _MUST_SPECIFY
        if not needed:
            return None
        missing: dict[str, set[str]] = {}
        spec = obj.get("spec") or {}
        for c in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
            have = compute_usage(_container_list(c, "requests"), _container_list(c, "limits"))
            for name in needed - have.keys():
                missing.setdefault(name, set()).add(str(c.get("name", "")))
        if not missing:
            return None
        parts = [f"{name} for: {','.join(sorted(missing[name]))}" for name in sorted(missing)]
        return "must specify " + "; ".join(parts)

    def matches_scope(self, selector: dict, obj: dict) -> bool:
        scope = selector.get("scopeName")
        if scope == "Terminating":
            return is_terminating(obj)
        if scope == "NotTerminating":
            return not is_terminating(obj)
        if scope == "BestEffort":
            return is_best_effort(obj)
        if scope == "NotBestEffort":
            return not is_best_effort(obj)
        if scope == "PriorityClass":
            return _priority_matches(obj, selector)
        if scope == "CrossNamespacePodAffinity":
            return _cross_namespace_affinity(obj)
        return False


# core kinds whose object count also answers to a bare legacy name
LEGACY_ALIASES = {"configmaps": "configmaps", "resourcequotas": "resourcequotas",
                  "replicationcontrollers": "replicationcontrollers", "secrets": "secrets"}

# never charged: virtual kinds with nothing stored, and events (never quota-ed upstream)
IGNORED = {("", "bindings"), ("", "componentstatuses"), ("", "events"),
           ("events.k8s.io", "events"), ("authentication.k8s.io", "tokenreviews"),
           ("authentication.k8s.io", "selfsubjectreviews"),
           ("authorization.k8s.io", "subjectaccessreviews"),
           ("authorization.k8s.io", "selfsubjectaccessreviews"),
           ("authorization.k8s.io", "localsubjectaccessreviews"),
           ("authorization.k8s.io", "selfsubjectrulesreviews")}


def evaluator_for(group: str, plural: str) -> Evaluator | None:
    if (group, plural) in IGNORED:
        return None
    if group == "":
        if plural == "pods":
            return PodEvaluator()
        if plural == "services":
            return ServiceEvaluator()
        if plural == "persistentvolumeclaims":
            return PersistentVolumeClaimEvaluator()
    return ObjectCountEvaluator(group, plural, LEGACY_ALIASES.get(plural, "") if not group else "")


def evaluators_for_names(names: Iterable[str]) -> list[Evaluator]:
    """The evaluators that can measure the given quota names (for recalculation): the
    core ones, the legacy aliases, and one object counter per count/<resource>.<group>."""
    names = list(names)
    out: list[Evaluator] = [PodEvaluator(), ServiceEvaluator(), PersistentVolumeClaimEvaluator()]
    for plural, alias in LEGACY_ALIASES.items():
        out.append(ObjectCountEvaluator("", plural, alias))
    known = {n for e in out for n in e.matching_resources(names)}
    for n in names:
        if n in known or not n.startswith("count/"):
            continue
        plural, _, group = n[len("count/"):].partition(".")
        if plural and (group, plural) not in IGNORED:
            out.append(ObjectCountEvaluator(group, plural))
    return [e for e in out if e.matching_resources(names)]


def calculate_usage(quota: dict, evaluator: Evaluator, objects: Iterable[dict]) -> ResourceList:
    """What the objects of one kind use of this quota's hard names, within its scopes."""
    hard_names = list(parse_list((quota.get("spec") or {}).get("hard")))
    names = evaluator.matching_resources(hard_names)
    used: ResourceList = {n: ZERO for n in names}
    selectors = scope_selectors(quota)
    for obj in objects:
        if not all(evaluator.matches_scope(s, obj) for s in selectors):
            continue
        used = add(used, mask(evaluator.usage(obj), names))
    return used
