"""NodePorts: two pods cannot take the same hostPort/protocol on a node unless they
bind different, specific host IPs."""
from __future__ import annotations

from pybernetes.scheduler.cache import NodeInfo, PodInfo
from pybernetes.scheduler.framework import SKIP, Plugin, Status, unschedulable

REASON = "node(s) didn't have free ports for the requested pod ports"
ANY_IP = "0.0.0.0"


def conflicts(want: tuple[str, str, int], used: dict[tuple[str, str, int], int]) -> bool:
    proto, ip, port = want
    if ip == ANY_IP:
        return any(p == port and pr == proto for pr, _, p in used)
    return (proto, ip, port) in used or (proto, ANY_IP, port) in used


class NodePorts(Plugin):
    name = "NodePorts"

    def pre_filter(self, state: dict, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        return None if pod.ports else SKIP

    def filter(self, state: dict, pod: PodInfo, node: NodeInfo) -> Status | None:
        if pod.ports and node.used_ports and any(conflicts(p, node.used_ports) for p in pod.ports):
            return unschedulable(REASON)
        return None
