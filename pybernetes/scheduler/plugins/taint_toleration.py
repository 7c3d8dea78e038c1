"""TaintToleration: a node's NoSchedule/NoExecute taints keep off pods that do not
tolerate them; untolerated PreferNoSchedule taints only lower the node's score."""
from __future__ import annotations

from pybernetes.scheduler.cache import NodeInfo, PodInfo
from pybernetes.scheduler.framework import Plugin, Status, default_normalize, unresolvable


def tolerates(toleration: dict, taint: dict) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint.get("key")
    return (toleration.get("key") == taint.get("key")
            and (toleration.get("value") or "") == (taint.get("value") or ""))


def tolerated(tolerations: list[dict], taint: dict) -> bool:
    return any(tolerates(t, taint) for t in tolerations)


def tolerations_of(pod: PodInfo) -> list[dict]:
    return (pod.pod.get("spec") or {}).get("tolerations") or []


class TaintToleration(Plugin):
    name = "TaintToleration"
    weight = 3

    def filter(self, state: dict, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not node.taints:
            return None
        tols = tolerations_of(pod)
        for taint in node.taints:
            if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerated(tols, taint):
                return unresolvable(f"node(s) had untolerated taint {{{taint.get('key')}: "
                                    f"{taint.get('value') or ''}}}")
        return None

    def pre_score(self, state: dict, pod: PodInfo, nodes: list[NodeInfo]) -> bool:
        state["tt.tolerations"] = [t for t in tolerations_of(pod)
                                   if t.get("effect") in (None, "", "PreferNoSchedule")]
        return any(n.taints for n in nodes)

    def score(self, state: dict, pod: PodInfo, node: NodeInfo) -> int:
        tols = state["tt.tolerations"]
        return sum(1 for t in node.taints
                   if t.get("effect") == "PreferNoSchedule" and not tolerated(tols, t))

    def normalize(self, state: dict, pod: PodInfo, scores: dict[str, int]) -> None:
        default_normalize(scores, reverse=True)
