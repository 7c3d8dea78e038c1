"""LimitRanger: a namespace's LimitRanges give containers default requests and limits
and bound what pods and claims may ask for (upstream's plugin of the same name).

Defaults are applied in `admit` (pods, on create), the bounds checked in `validate`
(pod creates and claim creates and updates); a violation is a 403 whose message
names every broken bound, worded as upstream words it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..machinery import errors
from ..machinery.quantity import Quantity
from ..machinery.quota import ResourceList, parse_list, pod_aggregate
from .cached_reads import NamespaceLister
from .chain import Attributes, Plugin

if TYPE_CHECKING:
    from ..apiserver.state import APIState

ANNOTATION = "kubernetes.io/limit-ranger"
_MAX_MILLI = (2 ** 63 - 1) // 1000  # upstream compares in milli units below this size


class LimitRanger(Plugin):
    name = "LimitRanger"

    def __init__(self) -> None:
        self.ranges = NamespaceLister("limitranges")

    async def admit(self, attrs: Attributes, api: "APIState") -> None:
        if not _is_pod(attrs) or attrs.operation != "CREATE" or _being_deleted(attrs):
            return
        ranges = await self.ranges.list(api, attrs.namespace)
        if not ranges:
            return
        pod = attrs.obj
        assert pod is not None
        for lr in ranges:
            apply_defaults(pod, lr)
        _refresh_qos(pod)

    async def validate(self, attrs: Attributes, api: "APIState") -> None:
        self.ranges.note(attrs)
        check: Callable[[dict, dict], list[str]]
        if _is_pod(attrs) and attrs.operation == "CREATE":
            check = pod_violations
        elif _is_claim(attrs) and attrs.operation in ("CREATE", "UPDATE"):
            check = claim_violations
        else:
            return
        if _being_deleted(attrs) or attrs.obj is None:
            return
        for lr in await self.ranges.list(api, attrs.namespace):
            problems = list(dict.fromkeys(check(lr, attrs.obj)))  # each message once
            if problems:
                why = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
                raise errors.forbidden_message(attrs.strategy.plural, attrs.name or "Unknown",
                                               why, attrs.strategy.group)


def _is_pod(attrs: Attributes) -> bool:
    s = attrs.strategy
    return s.group == "" and s.plural == "pods" and not attrs.subresource


def _is_claim(attrs: Attributes) -> bool:
    s = attrs.strategy
    return s.group == "" and s.plural == "persistentvolumeclaims" and not attrs.subresource


def _being_deleted(attrs: Attributes) -> bool:
    return bool(attrs.old and (attrs.old.get("metadata") or {}).get("deletionTimestamp"))


def _items(lr: dict, kind: str) -> list[dict]:
    return [i for i in (lr.get("spec") or {}).get("limits") or []
            if isinstance(i, dict) and i.get("type") == kind]


# ----- defaults ---------------------------------------------------------------------------


def apply_defaults(pod: dict, lr: dict) -> None:
    """Fill each container's missing requests/limits from the Container defaults and say
    so in the kubernetes.io/limit-ranger annotation."""
    requests: dict = {}
    limits: dict = {}
    for item in _items(lr, "Container"):
        requests.update(item.get("defaultRequest") or {})
        limits.update(item.get("default") or {})
    if not requests and not limits:
        return
    spec = pod.get("spec") or {}
    notes: list[str] = []
    for kind, key in (("container", "containers"), ("init container", "initContainers")):
        for c in spec.get(key) or []:
            notes += _fill_container(c, requests, limits, kind)
    if notes:
        md = pod.setdefault("metadata", {})
        md.setdefault("annotations", {})
        if md["annotations"] is None:
            md["annotations"] = {}
        md["annotations"][ANNOTATION] = "LimitRanger plugin set: " + "; ".join(notes)


def _fill_container(c: dict, requests: dict, limits: dict, kind: str) -> list[str]:
    res = c.get("resources")
    if not isinstance(res, dict):
        res = c["resources"] = {}
    notes = []
    for field, defaults, word in (("requests", requests, "request"), ("limits", limits, "limit")):
        have = res.get(field)
        if not isinstance(have, dict):
            have = {}
        added = sorted(n for n in defaults if n not in have)
        for n in added:
            have[n] = defaults[n]
        if have:
            res[field] = have
        if added:
            notes.append(f"{', '.join(added)} {word} for {kind} {c.get('name', '')}")
    return notes  # requests first, then limits, as upstream words it


def _refresh_qos(pod: dict) -> None:
    """The QoS class is decided at creation from the final resources, defaults included."""
    from ..api import podspec
    status = pod.get("status")
    if isinstance(status, dict) and "qosClass" in status:
        status["qosClass"] = podspec.pod_qos_class(pod.get("spec") or {})


# ----- bounds -----------------------------------------------------------------------------


def _compare_units(*qs: Quantity | None) -> list[int]:
    """Values at a common precision: thousandths when all fit, else whole units."""
    present = [q for q in qs if q is not None]
    milli = all(q.int_value() <= _MAX_MILLI for q in present)
    return [0 if q is None else (q.milli_value() if milli else q.int_value()) for q in qs]


def _min(kind: str, name: str, bound: Quantity, req: ResourceList,
         lim: ResourceList) -> str | None:
    r, l_ = req.get(name), lim.get(name)
    rv, lv, bv = _compare_units(r, l_, bound)
    if r is None:
        return f"minimum {name} usage per {kind} is {bound}.  No request is specified"
    if rv < bv:
        return f"minimum {name} usage per {kind} is {bound}, but request is {r}"
    if l_ is not None and lv < bv:
        return f"minimum {name} usage per {kind} is {bound}, but limit is {l_}"
    return None


def _max(kind: str, name: str, bound: Quantity, req: ResourceList, lim: ResourceList) -> str | None:
    r, l_ = req.get(name), lim.get(name)
    rv, lv, bv = _compare_units(r, l_, bound)
    if l_ is None:
        return f"maximum {name} usage per {kind} is {bound}.  No limit is specified"
    if lv > bv:
        return f"maximum {name} usage per {kind} is {bound}, but limit is {l_}"
    if r is not None and rv > bv:
        return f"maximum {name} usage per {kind} is {bound}, but request is {r}"
    return None


def _max_request(kind: str, name: str, bound: Quantity, req: ResourceList) -> str | None:
    r = req.get(name)
    rv, bv = _compare_units(r, bound)
    if r is None:
        return f"maximum {name} usage per {kind} is {bound}.  No request is specified"
    if rv > bv:
        return f"maximum {name} usage per {kind} is {bound}, but request is {r}"
    return None


def _ratio(kind: str, name: str, bound: Quantity, req: ResourceList,
           lim: ResourceList) -> str | None:
    r, l_ = req.get(name), lim.get(name)
    rv, lv, _ = _compare_units(r, l_, bound)
    if r is None or rv == 0:
        return (f"{name} max limit to request ratio per {kind} is {bound}, "
                "but no request is specified or request is 0")
    if l_ is None or lv == 0:
        return (f"{name} max limit to request ratio per {kind} is {bound}, "
                "but no limit is specified or limit is 0")
    observed = lv / rv
    big = bound.int_value() > _MAX_MILLI
    allowed = bound.int_value() if big else bound.milli_value()
    if (observed if big else observed * 1000) > allowed:
        return (f"{name} max limit to request ratio per {kind} is {bound}, "
                f"but provided ratio is {observed:f}")
    return None


def _bounds(item: dict) -> tuple[ResourceList, ResourceList, ResourceList]:
    return (parse_list(item.get("min")), parse_list(item.get("max")),
            parse_list(item.get("maxLimitRequestRatio")))


def _check(kind: str, item: dict, req: ResourceList, lim: ResourceList) -> list[str]:
    lo, hi, ratio = _bounds(item)
    found = [_min(kind, n, q, req, lim) for n, q in lo.items()]
    found += [_max(kind, n, q, req, lim) for n, q in hi.items()]
    found += [_ratio(kind, n, q, req, lim) for n, q in ratio.items()]
    return [p for p in found if p]


def _container_lists(c: dict) -> tuple[ResourceList, ResourceList]:
    res = c.get("resources") or {}
    return parse_list(res.get("requests")), parse_list(res.get("limits"))


def pod_violations(lr: dict, pod: dict) -> list[str]:
    spec = pod.get("spec") or {}
    out: list[str] = []
    for item in (lr.get("spec") or {}).get("limits") or []:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "Container":
            for c in list(spec.get("containers") or []) + list(spec.get("initContainers") or []):
                out += _check("Container", item, *_container_lists(c))
        elif item.get("type") == "Pod":
            out += _check("Pod", item, pod_aggregate(pod, "requests", overhead=False),
                          pod_aggregate(pod, "limits", overhead=False))
    return out


def claim_violations(lr: dict, claim: dict) -> list[str]:
    """Storage bounds apply to what the claim requests; claims get no defaults."""
    req = parse_list(((claim.get("spec") or {}).get("resources") or {}).get("requests"))
    out: list[str] = []
    for item in _items(lr, "PersistentVolumeClaim"):
        lo, hi, _ = _bounds(item)
        out += [p for n, q in lo.items() if (p := _min("PersistentVolumeClaim", n, q, req, {}))]
        out += [p for n, q in hi.items()
                if (p := _max_request("PersistentVolumeClaim", n, q, req))]
    return out
