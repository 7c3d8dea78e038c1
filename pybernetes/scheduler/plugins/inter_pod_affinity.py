"""InterPodAffinity: required pod affinity (the node's topology domain must already
hold a matching pod), required anti-affinity (it must hold none), and the existing
pods' anti-affinity toward the incoming pod. Preferred terms score domains."""
from __future__ import annotations

from dataclasses import dataclass

from pybernetes.machinery.selectors import LabelSelector
from pybernetes.scheduler.cache import NodeInfo, PodInfo
from pybernetes.scheduler.framework import SKIP, Plugin, Status, unresolvable, unschedulable

AFFINITY = "node(s) didn't match pod affinity rules"
ANTI_AFFINITY = "node(s) didn't match pod anti-affinity rules"
EXISTING_ANTI = "node(s) didn't satisfy existing pods anti-affinity rules"
REQUIRED = "requiredDuringSchedulingIgnoredDuringExecution"
PREFERRED = "preferredDuringSchedulingIgnoredDuringExecution"


@dataclass
class Term:
    selector: LabelSelector
    namespaces: frozenset[str] | None   # None: every namespace
    topology_key: str
    weight: int = 1

    def matches(self, pi: PodInfo) -> bool:
        return ((self.namespaces is None or pi.namespace in self.namespaces)
                and self.selector.matches(pi.labels))


def _term(t: dict, own_ns: str, weight: int = 1) -> Term:
    try:
        sel = LabelSelector.from_api(t.get("labelSelector"))
    except Exception:
        sel = LabelSelector.nothing_selector()
    ns: frozenset[str] | None = frozenset(t.get("namespaces") or ())
    if t.get("namespaceSelector") == {}:
        ns = None  # an empty namespaceSelector means all namespaces
    elif not ns:
        ns = frozenset((own_ns,))
    return Term(sel, ns, t.get("topologyKey") or "", weight)


def terms(pi: PodInfo, kind: str, when: str) -> list[Term]:
    """Parsed terms, cached on the PodInfo (kind: podAffinity | podAntiAffinity)."""
    cache = pi.__dict__.setdefault("_terms", {})
    if (kind, when) not in cache:
        raw = (pi.affinity.get(kind) or {}).get(when) or []
        if when == REQUIRED:
            cache[(kind, when)] = [_term(t, pi.namespace) for t in raw]
        else:
            cache[(kind, when)] = [_term(t.get("podAffinityTerm") or {}, pi.namespace,
                                         int(t.get("weight") or 0)) for t in raw]
    return cache[(kind, when)]


class InterPodAffinity(Plugin):
    name = "InterPodAffinity"
    weight = 2

    def pre_filter(self, state: dict, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        aff, anti = terms(pod, "podAffinity", REQUIRED), terms(pod, "podAntiAffinity", REQUIRED)
        existing: dict[tuple[str, str], int] = {}
        aff_counts: dict[tuple[str, str], int] = {}
        anti_counts: dict[tuple[str, str], int] = {}
        for ni in nodes:
            labels = ni.labels
            for other in ni.anti_pods.values():
                for t in terms(other, "podAntiAffinity", REQUIRED):
                    if t.topology_key in labels and t.matches(pod):
                        _inc(existing, t.topology_key, labels[t.topology_key])
            if aff or anti:  # only then every pod matters
                for other in ni.pods.values():
                    _count(aff, other, labels, aff_counts, all_terms=True)
                    _count(anti, other, labels, anti_counts, all_terms=False)
        if not (aff or anti or existing):
            return SKIP
        state["ipa"] = (aff, anti, existing, aff_counts, anti_counts)
        return None

    def filter(self, state: dict, pod: PodInfo, node: NodeInfo) -> Status | None:
        aff, anti, existing, aff_counts, anti_counts = state["ipa"]
        labels = node.labels
        if existing and any((k, v) in existing for k, v in labels.items()):
            return unschedulable(EXISTING_ANTI)
        for t in anti:
            value = labels.get(t.topology_key)
            if value is not None and anti_counts.get((t.topology_key, value)):
                return unschedulable(ANTI_AFFINITY)
        if aff and not _affinity_ok(pod, aff, aff_counts, labels):
            return unresolvable(AFFINITY)
        return None

    def pre_score(self, state: dict, pod: PodInfo, nodes: list[NodeInfo]) -> bool:
        pref = [(t, 1) for t in terms(pod, "podAffinity", PREFERRED)] + \
               [(t, -1) for t in terms(pod, "podAntiAffinity", PREFERRED)]
        if not pref:
            return False
        domains: dict[tuple[str, str], int] = {}
        for ni in nodes:
            for other in ni.pods.values():
                for t, sign in pref:
                    if t.topology_key in ni.labels and t.matches(other):
                        key = (t.topology_key, ni.labels[t.topology_key])
                        domains[key] = domains.get(key, 0) + sign * t.weight
        state["ipa.domains"] = domains
        return True

    def score(self, state: dict, pod: PodInfo, node: NodeInfo) -> int:
        domains = state["ipa.domains"]
        return sum(domains.get((k, v), 0) for k, v in node.labels.items())

    def normalize(self, state: dict, pod: PodInfo, scores: dict[str, int]) -> None:
        lo, hi = min(scores.values(), default=0), max(scores.values(), default=0)
        for k, v in scores.items():
            scores[k] = (v - lo) * 100 // (hi - lo) if hi > lo else 0


def _inc(counts: dict, key: str, value: str) -> None:
    counts[(key, value)] = counts.get((key, value), 0) + 1


def _count(ts: list[Term], other: PodInfo, labels: dict, counts: dict, all_terms: bool) -> None:
    """Affinity counts a pod only where it matches every term (upstream); anti-affinity
    counts each matching term."""
    if not ts:
        return
    if all_terms:
        if all(t.matches(other) for t in ts):
            for t in ts:
                if t.topology_key in labels:
                    _inc(counts, t.topology_key, labels[t.topology_key])
        return
    for t in ts:
        if t.topology_key in labels and t.matches(other):
            _inc(counts, t.topology_key, labels[t.topology_key])


def _affinity_ok(pod: PodInfo, aff: list[Term], counts: dict, labels: dict) -> bool:
    exist = True
    for t in aff:
        if t.topology_key not in labels:
            return False
        if counts.get((t.topology_key, labels[t.topology_key]), 0) <= 0:
            exist = False
    if exist:
        return True
    # The first pod of a group that is affine to itself may go anywhere.
    return not counts and all(t.matches(pod) for t in aff)

