"""The scheduling framework: plugins at the PreFilter, Filter, PreScore, Score and
PostFilter points, and one scheduling cycle (filter every node, score the feasible
ones, pick the best; when none fits, the PostFilter plugin may preempt). Plugins see
plain dicts and the cache's NodeInfos; the framework owns the loop."""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from pybernetes.scheduler.cache import Cache, NodeInfo, PodInfo

UNSCHEDULABLE = "Unschedulable"
# Removing pods cannot help (wrong labels, taints, node name): preemption skips the node.
UNRESOLVABLE = "UnschedulableAndUnresolvable"
MAX_NODE_SCORE = 100


@dataclass
class Status:
    code: str = UNSCHEDULABLE
    reasons: list[str] = field(default_factory=list)
    plugin: str = ""


# pre_filter's answer when the plugin has nothing to check for this pod: its filter is skipped.
SKIP = Status("Skip")


def unschedulable(*reasons: str) -> Status:
    return Status(UNSCHEDULABLE, list(reasons))


def unresolvable(*reasons: str) -> Status:
    return Status(UNRESOLVABLE, list(reasons))


class Plugin:
    """Override what applies; `state` is a per-cycle dict plugins share with themselves."""
    name = ""
    weight = 1

    def pre_filter(self, state: dict, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        return None

    def filter(self, state: dict, pod: PodInfo, node: NodeInfo) -> Status | None:
        return None

    def pre_score(self, state: dict, pod: PodInfo, nodes: list[NodeInfo]) -> bool:
        """False when this plugin has nothing to say about the pod (score skipped)."""
        return False

    def score(self, state: dict, pod: PodInfo, node: NodeInfo) -> int:
        return 0

    def normalize(self, state: dict, pod: PodInfo, scores: dict[str, int]) -> None:
        pass

    # Preemption asks filters again after removing victims from a node: plugins whose
    # pre_filter state depends on other pods update it here.
    def remove_pod(self, state: dict, pod: PodInfo, victim: PodInfo, node: NodeInfo) -> None:
        pass

    def add_pod(self, state: dict, pod: PodInfo, other: PodInfo, node: NodeInfo) -> None:
        pass


def histogram(statuses: dict[str, Status]) -> str:
    counts: dict[str, int] = {}
    for st in statuses.values():
        for r in st.reasons:
            counts[r] = counts.get(r, 0) + 1
    return ", ".join(sorted(f"{n} {r}" for r, n in counts.items()))


@dataclass
class FitError:
    """Why no node fits, worded like upstream's FitError."""
    num_nodes: int
    statuses: dict[str, Status]
    pre_filter_msg: str = ""
    post_filter_msg: str = ""

    def message(self) -> str:
        msg = f"0/{self.num_nodes} nodes are available:"
        reasons = self.pre_filter_msg or histogram(self.statuses)
        if reasons:
            msg += f" {reasons}."
        if self.post_filter_msg:
            msg += f" {self.post_filter_msg}"
            if not msg.endswith("."):
                msg += "."
        return msg


@dataclass
class Result:
    node: str | None = None
    error: FitError | None = None
    nominated: str | None = None        # preemption chose this node
    victims: list[PodInfo] = field(default_factory=list)


class Framework:
    def __init__(self, plugins: list[Plugin], cache: Cache, rng: random.Random | None = None,
                 preemption: Any = None):
        self.plugins = plugins
        self.cache = cache
        self.rng = rng or random.Random()
        self.preemption = preemption
        self.filters = [p for p in plugins if type(p).filter is not Plugin.filter]
        self.scorers = [p for p in plugins if type(p).score is not Plugin.score]

    def run_pre_filter(self, state: dict, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        skipped = set()
        for p in self.plugins:
            st = p.pre_filter(state, pod, nodes)
            if st is SKIP:
                skipped.add(p.name)
            elif st is not None:
                st.plugin = p.name
                return st
        state["_filters"] = [p for p in self.filters if p.name not in skipped]
        return None

    def run_filters(self, state: dict, pod: PodInfo, node: NodeInfo) -> Status | None:
        if self.cache.nominated:
            waiting = self.cache.nominated_for(node.name, pod)
            if waiting:
                return self._filter_with(state, pod, node, waiting)
        return self._filter(state, pod, node)

    def _filter_with(self, state: dict, pod: PodInfo, node: NodeInfo,
                     waiting: list[PodInfo]) -> Status | None:
        """Filter as if the nominated pods were already there (and as they are now)."""
        for o in waiting:
            node.add_pod(o)
        try:
            st = self._filter(state, pod, node)
        finally:
            for o in waiting:
                node.remove_pod(o.key)
        return st or self._filter(state, pod, node)

    def _filter(self, state: dict, pod: PodInfo, node: NodeInfo) -> Status | None:
        for p in state.get("_filters", self.filters):
            st = p.filter(state, pod, node)
            if st is not None:
                st.plugin = p.name
                return st
        return None

    def schedule(self, pod: PodInfo) -> Result:
        nodes = self.cache.node_infos()
        if not nodes:
            return Result(error=FitError(0, {}))
        state: dict = {}
        st = self.run_pre_filter(state, pod, nodes)
        if st is not None:
            statuses = {n.name: Status(st.code, st.reasons, st.plugin) for n in nodes}
            return self._failed(pod, nodes, statuses, "; ".join(st.reasons))
        feasible: list[NodeInfo] = []
        statuses: dict[str, Status] = {}
        nominated = (pod.pod.get("status") or {}).get("nominatedNodeName")
        for ni in self._ordered(nodes, nominated):
            st = self.run_filters(state, pod, ni)
            if st is None:
                feasible.append(ni)
                if ni.name == nominated:  # the node preemption cleared for us: take it
                    return Result(node=ni.name)
            else:
                statuses[ni.name] = st
        if not feasible:
            return self._failed(pod, nodes, statuses)
        if len(feasible) == 1:
            return Result(node=feasible[0].name)
        return Result(node=self._select(self._score(state, pod, feasible)))

    @staticmethod
    def _ordered(nodes: list[NodeInfo], first: str | None) -> list[NodeInfo]:
        if not first:
            return nodes
        return sorted(nodes, key=lambda n: n.name != first)

    def _failed(self, pod: PodInfo, nodes: list[NodeInfo], statuses: dict[str, Status],
                pre_filter_msg: str = "") -> Result:
        err = FitError(len(nodes), statuses, pre_filter_msg)
        res = Result(error=err)
        if self.preemption is not None:
            node, victims, msg = self.preemption.preempt(self, pod, nodes, statuses)
            err.post_filter_msg = msg
            res.nominated, res.victims = node, victims
        return res

    def _score(self, state: dict, pod: PodInfo, nodes: list[NodeInfo]) -> dict[str, int]:
        total = {n.name: 0 for n in nodes}
        for p in self.scorers:
            if not p.pre_score(state, pod, nodes):
                continue
            scores = {n.name: p.score(state, pod, n) for n in nodes}
            p.normalize(state, pod, scores)
            w = p.weight
            for name, s in scores.items():
                total[name] += s * w
        return total

    def _select(self, scores: dict[str, int]) -> str:
        """Highest total; ties broken at random (reservoir sampling, as upstream)."""
        best, best_score, seen = "", -1, 0
        for name, s in scores.items():
            if s > best_score:
                best, best_score, seen = name, s, 1
            elif s == best_score:
                seen += 1
                if self.rng.randrange(seen) == 0:
                    best = name
        return best


def default_normalize(scores: dict[str, int], reverse: bool = False) -> None:
    """Scale to 0..100 by the maximum (upstream's DefaultNormalizeScore)."""
    top = max(scores.values(), default=0)
    for k, v in scores.items():
        if top == 0:
            scores[k] = MAX_NODE_SCORE if reverse else 0
        else:
            s = v * MAX_NODE_SCORE // top
            scores[k] = MAX_NODE_SCORE - s if reverse else s
