"""PodTopologySpread: for each DoNotSchedule constraint, placing the pod in a node's
domain must keep (matching pods there + 1) - (fewest in any eligible domain) within
maxSkew. ScheduleAnyway constraints only score: fewer matching pods, higher score.

A pod that asks for no spreading but belongs to a controller gets upstream's system
default (hostname, maxSkew 3, ScheduleAnyway) over its siblings, so a Deployment's
replicas spread over nodes. Siblings are counted by controller uid, which is what
upstream's default selector (the owner's selector) picks for controller-made pods."""
from __future__ import annotations

from dataclasses import dataclass

from pybernetes.machinery.selectors import LabelSelector
from pybernetes.scheduler.cache import NodeInfo, PodInfo
from pybernetes.scheduler.framework import SKIP, Plugin, Status, unresolvable, unschedulable
from pybernetes.scheduler.plugins.node_affinity import required_matches
from pybernetes.scheduler.plugins.taint_toleration import tolerated, tolerations_of

REASON = "node(s) didn't match pod topology spread constraints"
MISSING = "node(s) didn't match pod topology spread constraints (missing required label)"


@dataclass
class Constraint:
    key: str
    max_skew: int
    selector: LabelSelector
    min_domains: int
    honor_affinity: bool
    honor_taints: bool
    self_match: int


def constraints(pod: PodInfo, when: str) -> list[Constraint]:
    out = []
    for c in (pod.pod.get("spec") or {}).get("topologySpreadConstraints") or []:
        if c.get("whenUnsatisfiable", "DoNotSchedule") != when:
            continue
        try:
            sel = LabelSelector.from_api(c.get("labelSelector"))
        except Exception:
            sel = LabelSelector.nothing_selector()
        out.append(Constraint(c.get("topologyKey") or "", int(c.get("maxSkew") or 1), sel,
                              int(c.get("minDomains") or 1),
                              c.get("nodeAffinityPolicy", "Honor") == "Honor",
                              c.get("nodeTaintsPolicy", "Ignore") == "Honor",
                              1 if sel.matches(pod.labels) else 0))
    return out


def system_defaulted(pod: PodInfo) -> bool:
    """No constraints of its own and made by a controller: the system default applies."""
    return bool(pod.owner_uid) and not (pod.pod.get("spec") or {}).get(
        "topologySpreadConstraints")


def _eligible(pod: PodInfo, cs: list[Constraint], ni: NodeInfo) -> bool:
    if not all(c.key in ni.labels for c in cs):
        return False
    spec = pod.pod.get("spec") or {}
    if any(c.honor_affinity for c in cs) and not required_matches(spec, ni.node or {}):
        return False
    if any(c.honor_taints for c in cs):
        tols = tolerations_of(pod)
        if any(t.get("effect") in ("NoSchedule", "NoExecute") and not tolerated(tols, t)
               for t in ni.taints):
            return False
    return True


def count_domains(pod: PodInfo, cs: list[Constraint], nodes: list[NodeInfo]) -> list[dict]:
    """Per constraint: domain value -> matching pods (same namespace) on eligible nodes."""
    counts: list[dict[str, int]] = [{} for _ in cs]
    for ni in nodes:
        if not _eligible(pod, cs, ni):
            continue
        for i, c in enumerate(cs):
            value = ni.labels[c.key]
            n = sum(1 for o in ni.pods.values() if o.namespace == pod.namespace
                    and not o.pod["metadata"].get("deletionTimestamp")
                    and c.selector.matches(o.labels))
            counts[i][value] = counts[i].get(value, 0) + n
    return counts


class PodTopologySpread(Plugin):
    name = "PodTopologySpread"
    weight = 2

    def pre_filter(self, state: dict, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        cs = constraints(pod, "DoNotSchedule")
        if not cs:
            return SKIP
        state["pts"] = (cs, count_domains(pod, cs, nodes))
        return None

    def filter(self, state: dict, pod: PodInfo, node: NodeInfo) -> Status | None:
        cs, counts = state["pts"]
        for c, dom in zip(cs, counts):
            value = node.labels.get(c.key)
            if value is None:
                return unresolvable(MISSING)
            least = min(dom.values(), default=0) if len(dom) >= c.min_domains else 0
            if dom.get(value, 0) + c.self_match - least > c.max_skew:
                return unschedulable(REASON)
        return None

    def pre_score(self, state: dict, pod: PodInfo, nodes: list[NodeInfo]) -> bool:
        if system_defaulted(pod):
            state["pts.score"] = None
            return True
        cs = constraints(pod, "ScheduleAnyway")
        if not cs:
            return False
        state["pts.score"] = (cs, count_domains(pod, cs, nodes))
        return True

    def score(self, state: dict, pod: PodInfo, node: NodeInfo) -> int:
        if state["pts.score"] is None:  # siblings on this very node (hostname domains)
            return node.by_owner.get(pod.owner_uid, 0)
        cs, counts = state["pts.score"]
        return sum(dom.get(node.labels.get(c.key, ""), 0) for c, dom in zip(cs, counts))

    def normalize(self, state: dict, pod: PodInfo, scores: dict[str, int]) -> None:
        lo, hi = min(scores.values(), default=0), max(scores.values(), default=0)
        for k, v in scores.items():  # fewer matching pods in the domain scores higher
            scores[k] = (hi - v) * 100 // (hi - lo) if hi > lo else 100
