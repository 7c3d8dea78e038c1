"""node.k8s.io/v1: runtimeclasses.

A RuntimeClass names a container runtime configuration (its `handler`) that nodes
offer; pods pick one with spec.runtimeClassName. The RuntimeClass admission plugin
copies its overhead and scheduling constraints into the pod; the kubelet hands the
handler to its runtime (pybernetes/kubelet/runtime_class.py)."""
from __future__ import annotations

from typing import Any

from ..machinery import errors
from ..machinery import validation as v
from ..machinery.errors import FieldError
from ..machinery.printing import age
from .apps import immutable, name_of
from .podspec import _validate_resources, _validate_tolerations, default_resource_list
from .strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy

# What `pybernetes server` offers besides the default handler (k3s ships classes for
# the alternative runtimes it may find on a node; a node without crun refuses its pods).
BOOTSTRAP_CLASSES = ({"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass",
                      "metadata": {"name": "crun"}, "handler": "crun"},)


class RuntimeClassStrategy(Strategy):
    group, version = "node.k8s.io", "v1"
    kind, plural = "RuntimeClass", "runtimeclasses"
    namespaced = False
    columns = (NAME_COLUMN,
               Column("Handler", "string", "", "handler specifies the underlying runtime and "
                      "configuration that the CRI implementation will use to handle pods of "
                      "this class. The possible values are specific to the node & CRI "
                      "configuration.  It is assumed that all handlers are available on every "
                      "node, and handlers of the same name are equivalent on every node. For "
                      "example, a handler called \"runc\" might specify that the runc OCI "
                      "runtime (using native Linux containers) will be used to run the "
                      "containers in a pod. The Handler must be lowercase, conform to the DNS "
                      "Label (RFC 1123) requirements, and is immutable."),
               AGE_COLUMN)

    def default(self, obj: dict) -> None:
        overhead = obj.get("overhead")
        if isinstance(overhead, dict):
            default_resource_list(overhead.get("podFixed"))

    def validate(self, obj: dict) -> list[FieldError]:
        handler = obj.get("handler")
        handler = handler if isinstance(handler, str) else ""
        out = [errors.invalid_value("handler", handler, msg)
               for msg in v.is_dns1123_label(handler)]
        overhead = obj.get("overhead")
        if isinstance(overhead, dict):
            # upstream reuses the container resource checks, paths and all
            out += _validate_resources({"limits": overhead.get("podFixed") or {}}, "overhead")
        scheduling = obj.get("scheduling")
        if isinstance(scheduling, dict):
            out += v.validate_labels(scheduling.get("nodeSelector") or {},
                                     "scheduling.nodeSelector")
            out += _validate_tolerations(scheduling.get("tolerations"),
                                         "scheduling.tolerations")
        return out

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        # upstream validates only metadata and the handler's immutability on update
        if obj.get("handler") != old.get("handler"):
            return [immutable("handler", obj.get("handler"))]
        return []

    def table_row(self, obj: dict) -> list[Any]:
        return [name_of(obj), obj.get("handler") or "", age(obj)]


STRATEGIES = [RuntimeClassStrategy()]
