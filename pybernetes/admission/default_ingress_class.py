"""DefaultIngressClass (upstream's plugin of the same name): an Ingress created without
spec.ingressClassName (and without the legacy kubernetes.io/ingress.class annotation)
gets the cluster's default IngressClass — the one annotated
ingressclass.kubernetes.io/is-default-class=true, the newest if several are."""
from __future__ import annotations

from typing import TYPE_CHECKING

from .chain import Attributes, Plugin
from .default_class import list_classes, newest_default

if TYPE_CHECKING:
    from ..apiserver.state import APIState

DEFAULT_ANNOTATION = "ingressclass.kubernetes.io/is-default-class"
LEGACY_CLASS_ANNOTATION = "kubernetes.io/ingress.class"


def is_default(ingress_class: dict) -> bool:
    annotations = (ingress_class.get("metadata") or {}).get("annotations") or {}
    return annotations.get(DEFAULT_ANNOTATION) == "true"


def default_class(classes: list[dict]) -> dict | None:
    return newest_default(classes, is_default)


class DefaultIngressClass(Plugin):
    name = "DefaultIngressClass"

    async def admit(self, attrs: Attributes, api: "APIState") -> None:
        s = attrs.strategy
        if attrs.operation != "CREATE" or s.group != "networking.k8s.io" or \
                s.plural != "ingresses" or attrs.subresource or attrs.obj is None:
            return
        spec = attrs.obj.get("spec")
        annotations = (attrs.obj.get("metadata") or {}).get("annotations") or {}
        if not isinstance(spec, dict) or spec.get("ingressClassName") is not None or \
                LEGACY_CLASS_ANNOTATION in annotations:
            return
        ic = default_class(await list_classes(api, "networking.k8s.io", "v1", "ingressclasses"))
        if ic is not None:
            spec["ingressClassName"] = ic["metadata"]["name"]

