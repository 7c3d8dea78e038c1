"""DefaultPreemption (PostFilter): when no node fits, find the node where evicting the
fewest, least important lower-priority pods makes room, and report those victims.
The scheduler deletes them and nominates the node for the pod."""
from __future__ import annotations

from typing import TYPE_CHECKING

from pybernetes.scheduler.cache import NodeInfo, PodInfo
from pybernetes.scheduler.framework import UNRESOLVABLE, Status, histogram

if TYPE_CHECKING:
    from pybernetes.scheduler.framework import Framework

NOT_HELPFUL = "Preemption is not helpful for scheduling"
NO_VICTIMS = "No preemption victims found for incoming pod"


class DefaultPreemption:
    name = "DefaultPreemption"

    def preempt(self, fw: "Framework", pod: PodInfo, nodes: list[NodeInfo],
                statuses: dict[str, Status]) -> tuple[str | None, list[PodInfo], str]:
        why = self._ineligible(fw, pod)
        if why:
            return None, [], why
        best: tuple | None = None
        outcome: dict[str, Status] = {}
        for ni in nodes:
            st = statuses.get(ni.name)
            if st is None or st.code == UNRESOLVABLE:
                outcome[ni.name] = Status(UNRESOLVABLE, [NOT_HELPFUL])
                continue
            victims = self._victims(fw, pod, ni)
            if victims is None:
                outcome[ni.name] = Status(reasons=[NO_VICTIMS])
                continue
            prios = [v.priority for v in victims]
            rank = (max(prios, default=-(2**31)), sum(prios), len(victims))
            if best is None or rank < best[0]:
                best = (rank, ni.name, victims)
        if best is None:
            return None, [], (f"preemption: 0/{len(nodes)} nodes are available: "
                              f"{histogram(outcome)}.")
        return best[1], best[2], ""

    @staticmethod
    def _ineligible(fw: "Framework", pod: PodInfo) -> str:
        spec = pod.pod.get("spec") or {}
        if spec.get("preemptionPolicy") == "Never":
            return "not eligible due to preemptionPolicy=Never."
        nominated = (pod.pod.get("status") or {}).get("nominatedNodeName")
        ni = fw.cache.nodes.get(nominated or "")
        if ni is not None and any(o.pod["metadata"].get("deletionTimestamp")
                                  and o.priority < pod.priority for o in ni.pods.values()):
            return "not eligible due to a terminating pod on the nominated node."
        return ""

    @staticmethod
    def _fits(fw: "Framework", pod: PodInfo, ni: NodeInfo) -> bool:
        state: dict = {}
        if fw.run_pre_filter(state, pod, fw.cache.node_infos()) is not None:
            return False
        return fw.run_filters(state, pod, ni) is None

    def _victims(self, fw: "Framework", pod: PodInfo, ni: NodeInfo) -> list[PodInfo] | None:
        """Remove every lower-priority pod; if the pod then fits, put back as many as
        possible, most important first. None when no set of victims helps."""
        lower = sorted((o for o in ni.pods.values() if o.priority < pod.priority),
                       key=lambda o: -o.priority)
        if not lower:
            return None
        for o in lower:
            ni.remove_pod(o.key)
        try:
            if not self._fits(fw, pod, ni):
                return None
            victims = []
            for o in lower:
                ni.add_pod(o)
                if not self._fits(fw, pod, ni):
                    ni.remove_pod(o.key)
                    victims.append(o)
            return victims
        finally:
            for o in lower:
                if o.key not in ni.pods:
                    ni.add_pod(o)
