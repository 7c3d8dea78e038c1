"""NodeName: a pod that names its node (spec.nodeName set at creation is bound by the
API server, but a scheduler may still see one with nodeSelector-like intent) fits only there."""
from __future__ import annotations

from pybernetes.scheduler.cache import NodeInfo, PodInfo
from pybernetes.scheduler.framework import SKIP, Plugin, Status, unresolvable

REASON = "node(s) didn't match the requested node name"


class NodeName(Plugin):
    name = "NodeName"

    def pre_filter(self, state: dict, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        return None if (pod.pod.get("spec") or {}).get("nodeName") else SKIP

    def filter(self, state: dict, pod: PodInfo, node: NodeInfo) -> Status | None:
        want = (pod.pod.get("spec") or {}).get("nodeName")
        if want and want != node.name:
            return unresolvable(REASON)
        return None
