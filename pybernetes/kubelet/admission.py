"""Kubelet admission: a pod bound to this node that the node cannot take is
rejected (phase Failed) with upstream's reasons: `OutOf<resource>` when its
requests do not fit what the admitted pods leave of the node's allocatable
(`OutOfpods` when the pod slots are used up), `NodeAffinity` when the node's
labels do not match its nodeSelector / required node affinity."""
from __future__ import annotations

from dataclasses import dataclass

from pybernetes.machinery.quantity import parse_quantity
from pybernetes.scheduler.cache import pod_requests
from pybernetes.scheduler.plugins.node_affinity import REASON as AFFINITY_REASON
from pybernetes.scheduler.plugins.node_affinity import required_matches


@dataclass(frozen=True)
class Rejection:
    reason: str
    message: str

    @property
    def status_message(self) -> str:
        return f"Pod was rejected: {self.message}"


def amount(name: str, q: object) -> int:
    """cpu in millicores, everything else in whole units (rounded up)."""
    try:
        v = parse_quantity(q)
    except Exception:  # noqa: BLE001 - an unreadable quantity counts as nothing
        return 0
    if name == "cpu":
        v *= 1000
    return int(-(-v.numerator // v.denominator))


def allocatable(node: dict) -> dict[str, int]:
    alloc = (node.get("status") or {}).get("allocatable") or {}
    return {k: amount(k, v) for k, v in alloc.items()}


def admit(pod: dict, node: dict, admitted: list[dict]) -> Rejection | None:
    """None when `pod` may run on `node` beside the already `admitted` pods."""
    alloc = allocatable(node)
    pods_cap = alloc.get("pods", 0)
    if len(admitted) + 1 > pods_cap:
        return _insufficient("pods", 1, len(admitted), pods_cap)
    want = pod_requests(pod)
    if any(want.values()):
        used: dict[str, int] = {}
        for other in admitted:
            for k, v in pod_requests(other).items():
                used[k] = used.get(k, 0) + v
        for res, req in sorted(want.items()):
            cap = alloc.get(res, 0)
            if req > 0 and req + used.get(res, 0) > cap:
                return _insufficient(res, req, used.get(res, 0), cap)
    if not required_matches(pod.get("spec") or {}, node):
        return Rejection("NodeAffinity", f"Predicate NodeAffinity failed: {AFFINITY_REASON}")
    return None


def _insufficient(res: str, requested: int, used: int, capacity: int) -> Rejection:
    return Rejection(f"OutOf{res}", f"Node didn't have enough resource: {res}, requested: "
                                    f"{requested}, used: {used}, capacity: {capacity}")
