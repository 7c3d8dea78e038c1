"""What controllers ask of a pod: is it active, ready, available, and which of a
set to delete first. Pure functions on pod dicts, as upstream's podutil/controller_utils."""
from __future__ import annotations

import time

from pybernetes.controllers.base import parse_time

_PHASE_RANK = {"Pending": 0, "Unknown": 1, "Running": 2}


def is_active(pod: dict) -> bool:
    """Counted toward replicas: not finished and not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return (phase not in ("Succeeded", "Failed")
            and not (pod.get("metadata") or {}).get("deletionTimestamp"))


def ready_condition(pod: dict) -> dict | None:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c
    return None


def is_ready(pod: dict) -> bool:
    c = ready_condition(pod)
    return bool(c and c.get("status") == "True")


def is_available(pod: dict, min_ready_seconds: int, now: float | None = None) -> bool:
    """Ready for at least minReadySeconds."""
    if not is_ready(pod):
        return False
    if not min_ready_seconds:
        return True
    since = parse_time(ready_condition(pod).get("lastTransitionTime"))  # type: ignore[union-attr]
    now = time.time() if now is None else now
    return since is not None and since + min_ready_seconds <= now


def _restarts(pod: dict) -> int:
    return sum(int(s.get("restartCount") or 0)
               for s in (pod.get("status") or {}).get("containerStatuses") or [])


def deletion_cost(pod: dict) -> int:
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    try:
        return int(ann.get("controller.kubernetes.io/pod-deletion-cost", "0"))
    except ValueError:
        return 0


def deletion_rank(pod: dict, colocated: int = 0) -> tuple:
    """Sort key: the pod to delete first sorts first. Upstream's order: unscheduled,
    then pending < unknown < running, not ready < ready, lower deletion cost, more
    sibling pods on the same node, shorter ready time, more restarts, newer."""
    spec, status = pod.get("spec") or {}, pod.get("status") or {}
    md = pod.get("metadata") or {}
    ready = is_ready(pod)
    ready_since = parse_time((ready_condition(pod) or {}).get("lastTransitionTime")) or 0.0
    created = parse_time(md.get("creationTimestamp")) or 0.0
    return (bool(spec.get("nodeName")),
            _PHASE_RANK.get(status.get("phase", "Pending"), 0),
            ready,
            deletion_cost(pod),
            -colocated,
            -ready_since if ready else 0.0,
            -_restarts(pod),
            -created)


def pods_to_delete(pods: list[dict], count: int, related: list[dict] | None = None) -> list[dict]:
    """The `count` pods to delete first; `related` (all active pods of the owner's
    family) ranks pods on crowded nodes ahead, spreading what remains."""
    per_node: dict[str, int] = {}
    for p in related if related is not None else pods:
        node = (p.get("spec") or {}).get("nodeName")
        if node:
            per_node[node] = per_node.get(node, 0) + 1
    ranked = sorted(pods, key=lambda p: deletion_rank(
        p, per_node.get((p.get("spec") or {}).get("nodeName") or "", 0)))
    return ranked[:count]


def slow_start_batches(count: int, initial: int = 1) -> list[int]:
    """Batch sizes 1, 2, 4, ... summing to count: a broken template fails once, not N times."""
    out, size = [], initial
    while count > 0:
        n = min(size, count)
        out.append(n)
        count -= n
        size *= 2
    return out
