"""NodeResourcesBalancedAllocation: prefer nodes whose cpu and memory would be used in
similar proportions after placing the pod (score = (1 - std deviation) * 100)."""
from __future__ import annotations

from pybernetes.scheduler.cache import NodeInfo, PodInfo
from pybernetes.scheduler.framework import MAX_NODE_SCORE, Plugin


class BalancedAllocation(Plugin):
    name = "NodeResourcesBalancedAllocation"

    def pre_score(self, state: dict, pod: PodInfo, nodes: list[NodeInfo]) -> bool:
        return True

    def score(self, state: dict, pod: PodInfo, node: NodeInfo) -> int:
        cpu = _fraction(node.requested.get("cpu", 0) + pod.requests.get("cpu", 0),
                        node.allocatable.get("cpu", 0))
        mem = _fraction(node.requested.get("memory", 0) + pod.requests.get("memory", 0),
                        node.allocatable.get("memory", 0))
        std = abs(cpu - mem) / 2  # population std deviation of two values
        return int((1 - std) * MAX_NODE_SCORE)


def _fraction(requested: int, allocatable: int) -> float:
    if allocatable <= 0:
        return 1.0
    return min(requested / allocatable, 1.0)
