"""RuntimeClass (upstream's plugin of the same name): a pod created with
spec.runtimeClassName gets what its class declares. An unknown class is refused; the
class' overhead.podFixed becomes spec.overhead (a pod that brings a different overhead
of its own is refused, so is one with an overhead and no class declaring one); its
scheduling.nodeSelector is merged into the pod's (a conflicting value is refused) and
its tolerations are appended, so the scheduler places the pod where the handler runs."""
from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from ..api.podspec import quantity_value
from ..machinery import errors
from .chain import Attributes, Plugin

if TYPE_CHECKING:
    from ..apiserver.state import APIState


def _applies(attrs: Attributes) -> bool:
    s = attrs.strategy
    return (attrs.operation == "CREATE" and s.group == "" and s.plural == "pods"
            and not attrs.subresource and isinstance(attrs.obj, dict))


def _forbidden(attrs: Attributes, why: str) -> errors.StatusError:
    return errors.forbidden_message("pods", attrs.name or "Unknown", why)


async def _runtime_class(attrs: Attributes, api: "APIState") -> dict | None:
    """The pod's class (None when it names none); 403 when it does not exist."""
    spec = attrs.obj.get("spec") if attrs.obj else None
    name = spec.get("runtimeClassName") if isinstance(spec, dict) else None
    if not name:
        return None
    rs = api.resource("node.k8s.io", "v1", "runtimeclasses")
    found = await rs.try_get("", name) if rs is not None and isinstance(name, str) else None
    if found is None:
        raise _forbidden(attrs, f"pod rejected: RuntimeClass {errors.go_quote(str(name))} "
                                "not found")
    return found[0]


def same_resources(a: dict | None, b: dict | None) -> bool:
    """Equal as quantities ("1000m" is "1"), as upstream's semantic comparison."""
    a, b = a or {}, b or {}
    if set(a) != set(b):
        return False
    return all(quantity_value(a[k]) == quantity_value(b[k]) for k in a)


def _pod_fixed(rc: dict | None) -> dict | None:
    overhead = (rc or {}).get("overhead")
    if not isinstance(overhead, dict) or overhead.get("podFixed") is None:
        return None
    return overhead["podFixed"]


def _merge_node_selector(attrs: Attributes, spec: dict, wanted: dict) -> None:
    selector = spec.get("nodeSelector") or {}
    for key, value in wanted.items():
        if key in selector and selector[key] != value:
            raise _forbidden(attrs, f"conflict: runtimeClass.scheduling.nodeSelector[{key}] = "
                                    f"{value}; pod.spec.nodeSelector[{key}] = {selector[key]}")
    if wanted:
        spec["nodeSelector"] = {**selector, **wanted}


def _merge_tolerations(spec: dict, extra: list) -> None:
    """Append the class' tolerations the pod does not already have."""
    tolerations = list(spec.get("tolerations") or [])
    for t in extra:
        if t not in tolerations:
            tolerations.append(copy.deepcopy(t))
    if tolerations:
        spec["tolerations"] = tolerations


class RuntimeClass(Plugin):
    name = "RuntimeClass"

    async def admit(self, attrs: Attributes, api: "APIState") -> None:
        if not _applies(attrs):
            return
        rc = await _runtime_class(attrs, api)
        if rc is None:
            return
        spec = attrs.obj["spec"]
        fixed = _pod_fixed(rc)
        if fixed is not None:
            if spec.get("overhead") is not None and not same_resources(fixed,
                                                                       spec["overhead"]):
                raise _forbidden(attrs, "pod rejected: Pod's Overhead doesn't match "
                                        "RuntimeClass's defined Overhead")
            spec["overhead"] = copy.deepcopy(fixed)
        scheduling = rc.get("scheduling")
        if isinstance(scheduling, dict):
            _merge_node_selector(attrs, spec, scheduling.get("nodeSelector") or {})
            _merge_tolerations(spec, scheduling.get("tolerations") or [])

    async def validate(self, attrs: Attributes, api: "APIState") -> None:
        if not _applies(attrs):
            return
        spec = attrs.obj.get("spec")
        if not isinstance(spec, dict):
            return
        fixed = _pod_fixed(await _runtime_class(attrs, api))
        if fixed is not None:
            if not same_resources(fixed, spec.get("overhead")):
                raise _forbidden(attrs, "pod rejected: Pod's Overhead doesn't match "
                                        "RuntimeClass's defined Overhead")
        elif spec.get("overhead") is not None:
            raise _forbidden(attrs, "pod rejected: Pod Overhead set without corresponding "
                                    "RuntimeClass defined Overhead")
