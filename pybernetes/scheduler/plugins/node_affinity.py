"""NodeAffinity: spec.nodeSelector and requiredDuringScheduling node affinity decide
which nodes may take the pod; preferred terms add their weights to a node's score."""
from __future__ import annotations

from pybernetes.machinery.selectors import node_selector_requirement_matches as matches
from pybernetes.scheduler.cache import NodeInfo, PodInfo
from pybernetes.scheduler.framework import (SKIP, Plugin, Status, default_normalize,
                                            unresolvable)

REASON = "node(s) didn't match Pod's node affinity/selector"


def term_matches(term: dict, node: dict) -> bool:
    """A NodeSelectorTerm: all its expressions and fields must hold; an empty term
    matches nothing."""
    exprs, fields = term.get("matchExpressions") or [], term.get("matchFields") or []
    if not exprs and not fields:
        return False
    labels = (node.get("metadata") or {}).get("labels") or {}
    if not all(matches(e, labels.get(e.get("key", ""))) for e in exprs):
        return False
    node_fields = {"metadata.name": node["metadata"]["name"]}
    return all(matches(f, node_fields.get(f.get("key", ""))) for f in fields)


def required_matches(pod_spec: dict, node: dict) -> bool:
    """nodeSelector AND (any of the required terms), as upstream's RequiredNodeAffinity."""
    labels = (node.get("metadata") or {}).get("labels") or {}
    for k, v in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(k) != v:
            return False
    req = (((pod_spec.get("affinity") or {}).get("nodeAffinity") or {})
           .get("requiredDuringSchedulingIgnoredDuringExecution"))
    if req is None:
        return True
    return any(term_matches(t, node) for t in req.get("nodeSelectorTerms") or [])


class NodeAffinity(Plugin):
    name = "NodeAffinity"
    weight = 2

    def pre_filter(self, state: dict, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        spec = pod.pod.get("spec") or {}
        return None if spec.get("nodeSelector") or pod.affinity.get("nodeAffinity") else SKIP

    def filter(self, state: dict, pod: PodInfo, node: NodeInfo) -> Status | None:
        if not required_matches(pod.pod.get("spec") or {}, node.node or {}):
            return unresolvable(REASON)
        return None

    def pre_score(self, state: dict, pod: PodInfo, nodes: list[NodeInfo]) -> bool:
        prefs = ((pod.affinity.get("nodeAffinity") or {})
                 .get("preferredDuringSchedulingIgnoredDuringExecution") or [])
        state["na.preferred"] = prefs
        return bool(prefs)

    def score(self, state: dict, pod: PodInfo, node: NodeInfo) -> int:
        return sum(int(p.get("weight") or 0) for p in state["na.preferred"]
                   if term_matches(p.get("preference") or {}, node.node or {}))

    def normalize(self, state: dict, pod: PodInfo, scores: dict[str, int]) -> None:
        default_normalize(scores)
