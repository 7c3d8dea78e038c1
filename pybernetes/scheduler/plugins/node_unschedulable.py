"""NodeUnschedulable: a cordoned node (spec.unschedulable) takes only pods that tolerate
the node.kubernetes.io/unschedulable:NoSchedule taint."""
from __future__ import annotations

from pybernetes.scheduler.cache import NodeInfo, PodInfo
from pybernetes.scheduler.framework import Plugin, Status, unresolvable
from pybernetes.scheduler.plugins.taint_toleration import tolerated, tolerations_of

REASON = "node(s) were unschedulable"
TAINT = {"key": "node.kubernetes.io/unschedulable", "effect": "NoSchedule"}


class NodeUnschedulable(Plugin):
    name = "NodeUnschedulable"

    def filter(self, state: dict, pod: PodInfo, node: NodeInfo) -> Status | None:
        if node.unschedulable and \
                not tolerated(tolerations_of(pod), TAINT):
            return unresolvable(REASON)
        return None
