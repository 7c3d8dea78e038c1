"""NodeResourcesFit: the pod's requests (cpu, memory, ephemeral-storage, extended
resources, one pod slot) must fit in what the node's allocatable leaves free; scores
nodes by how much stays free (LeastAllocated)."""
from __future__ import annotations

from pybernetes.scheduler.cache import NodeInfo, PodInfo
from pybernetes.scheduler.framework import MAX_NODE_SCORE, Plugin, Status, unschedulable


class NodeResourcesFit(Plugin):
    name = "NodeResourcesFit"

    def filter(self, state: dict, pod: PodInfo, node: NodeInfo) -> Status | None:
        reasons = insufficient(pod, node)
        return unschedulable(*reasons) if reasons else None

    def pre_score(self, state: dict, pod: PodInfo, nodes: list[NodeInfo]) -> bool:
        return True

    def score(self, state: dict, pod: PodInfo, node: NodeInfo) -> int:
        cpu = least_allocated(node.non_zero_cpu + pod.non_zero_cpu, node.allocatable.get("cpu", 0))
        memory = least_allocated(node.non_zero_memory + pod.non_zero_memory,
                                 node.allocatable.get("memory", 0))
        return (cpu + memory) // 2


def insufficient(pod: PodInfo, node: NodeInfo) -> list[str]:
    reasons = []
    if len(node.pods) + 1 > node.allocatable.get("pods", 0):
        reasons.append("Too many pods")
    for res, want in pod.requests.items():
        if want and want > node.allocatable.get(res, 0) - node.requested.get(res, 0):
            reasons.append(f"Insufficient {res}")
    return reasons


def least_allocated(requested: int, allocatable: int) -> int:
    if allocatable <= 0 or requested > allocatable:
        return 0
    return (allocatable - requested) * MAX_NODE_SCORE // allocatable
