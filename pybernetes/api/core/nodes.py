"""core/v1 Node (cluster-scoped; the kubelet registers it with its status)."""
from __future__ import annotations

import copy
from typing import Any

from ...machinery import errors
from ...machinery import validation as v
from ...machinery.errors import FieldError
from ...machinery.printing import age, get_path
from ..podspec import TAINT_EFFECTS, default_resource_list
from ..strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy
from .cells import immutable, invalid_all, meta

ROLE_PREFIX = "node-role.kubernetes.io/"
ROLE_LABEL = "kubernetes.io/role"


def status_cell(node: dict) -> str:
    parts = []
    for c in get_path(node, "status", "conditions", default=[]) or []:
        if c.get("type") == "Ready":
            parts.append("Ready" if c.get("status") == "True" else "NotReady")
            break
    if not parts:
        parts.append("Unknown")
    if get_path(node, "spec", "unschedulable"):
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def roles_cell(node: dict) -> str:
    roles = set()
    for key, value in (meta(node).get("labels") or {}).items():
        if key.startswith(ROLE_PREFIX) and key[len(ROLE_PREFIX):]:
            roles.add(key[len(ROLE_PREFIX):])
        elif key == ROLE_LABEL and value:
            roles.add(value)
    return ",".join(sorted(roles)) if roles else "<none>"


def address_cell(node: dict, kind: str) -> str:
    for a in get_path(node, "status", "addresses", default=[]) or []:
        if a.get("type") == kind:
            return a.get("address", "")
    return "<none>"


def _info(node: dict, key: str) -> str:
    return get_path(node, "status", "nodeInfo", key, default="") or "<unknown>"


def _validate_taints(taints: Any) -> list[FieldError]:
    out: list[FieldError] = []
    seen: set[tuple[str, str]] = set()
    for i, t in enumerate(taints or []):
        tp = f"spec.taints[{i}]"
        key = t.get("key", "")
        if not key:
            out.append(errors.required(f"{tp}.key", ""))
        else:
            out += invalid_all(f"{tp}.key", key, v.is_qualified_name(key))
        out += invalid_all(f"{tp}.value", t.get("value", ""),
                           v.is_valid_label_value(t.get("value", "")))
        effect = t.get("effect", "")
        if not effect:
            out.append(errors.required(f"{tp}.effect", ""))
        elif effect not in TAINT_EFFECTS:
            out.append(errors.not_supported(f"{tp}.effect", effect, TAINT_EFFECTS))
        if (key, effect) in seen:
            out.append(errors.duplicate(tp, {"key": key, "effect": effect}))
        seen.add((key, effect))
    return out


class NodeStrategy(Strategy):
    kind, plural = "Node", "nodes"
    namespaced = False
    short_names = ("no",)
    subresources = ("status", "proxy")
    columns = (
        NAME_COLUMN,
        Column("Status", "string", "", "The status of the node"),
        Column("Roles", "string", "", "The roles of the node"),
        AGE_COLUMN,
        Column("Version", "string", "", "Kubelet Version reported by the node."),
        Column("Internal-IP", "string", "", "List of addresses reachable to the node. Queried "
               "from cloud provider, if available.", 1),
        Column("External-IP", "string", "", "List of addresses reachable to the node. Queried "
               "from cloud provider, if available.", 1),
        Column("OS-Image", "string", "", "OS Image reported by the node from /etc/os-release "
               "(e.g. Debian GNU/Linux 7 (wheezy)).", 1),
        Column("Kernel-Version", "string", "", "Kernel Version reported by the node from "
               "'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).", 1),
        Column("Container-Runtime", "string", "", "ContainerRuntime Version reported by the "
               "node through runtime remote API (e.g. containerd://1.4.2).", 1),
    )

    def default(self, obj: dict) -> None:
        status = obj.get("status")
        if not isinstance(status, dict):
            return
        default_resource_list(status.get("capacity"))
        default_resource_list(status.get("allocatable"))
        if status.get("capacity") and status.get("allocatable") is None:
            status["allocatable"] = copy.deepcopy(status["capacity"])

    def prepare_for_create(self, obj: dict) -> None:
        """Nodes keep the status they register with (the kubelet sends it)."""

    def validate(self, obj: dict) -> list[FieldError]:
        s = obj.get("spec") or {}
        out = _validate_taints(s.get("taints"))
        cidrs = s.get("podCIDRs") or ([s["podCIDR"]] if s.get("podCIDR") else [])
        for i, cidr in enumerate(cidrs):
            out += invalid_all(f"spec.podCIDRs[{i}]", cidr, v.is_valid_cidr(cidr))
        if s.get("podCIDR") and s.get("podCIDRs") and s["podCIDRs"][0] != s["podCIDR"]:
            out.append(errors.invalid_value("spec.podCIDRs", s["podCIDRs"],
                                            "first value must match `podCIDR`"))
        return out

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        out = self.validate(obj)
        new_s, old_s = obj.get("spec") or {}, old.get("spec") or {}
        for key in ("podCIDR", "providerID"):
            if old_s.get(key):
                out += immutable(f"spec.{key}", new_s.get(key, ""), old_s[key])
        if old_s.get("podCIDRs") and new_s.get("podCIDRs") != old_s["podCIDRs"]:
            out.append(errors.forbidden("spec.podCIDRs", "node updates may not change podCIDR "
                                        "except from \"\" to valid"))
        return out

    def table_row(self, obj: dict) -> list[Any]:
        return [meta(obj).get("name", ""), status_cell(obj), roles_cell(obj), age(obj),
                get_path(obj, "status", "nodeInfo", "kubeletVersion", default=""),
                address_cell(obj, "InternalIP"), address_cell(obj, "ExternalIP"),
                _info(obj, "osImage"), _info(obj, "kernelVersion"),
                _info(obj, "containerRuntimeVersion")]

    def field_labels(self, obj: dict) -> dict[str, str]:
        labels = super().field_labels(obj)
        labels["spec.unschedulable"] = "true" if get_path(obj, "spec", "unschedulable") else "false"
        return labels
