"""Pieces of a pod's status as the kubelet reports them (upstream's
generateAPIPodStatus): conditions with their reasons and messages, container
states, and the comparison that decides whether a new status is worth a write.
Runtime-neutral: the fake runtime uses it now, the real kubelet later."""
from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

# The order the kubelet writes its conditions in (kubectl describe shows them so).
KUBELET_CONDITIONS = ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady",
                      "PodScheduled")


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(s: Any) -> float | None:
    if not isinstance(s, str) or not s:
        return None
    try:
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def _cond(type_: str, ok: bool, reason: str = "", message: str = "") -> dict:
    c: dict[str, Any] = {"type": type_, "status": "True" if ok else "False"}
    if not ok and reason:
        c["reason"] = reason
        if message:
            c["message"] = message
    return c


def pod_conditions(*, sandbox_ready: bool, uninitialized: list[str], unready: list[str],
                   completed: bool, gates_unready: list[str] | None = None) -> list[dict]:
    """The kubelet's own conditions (without times): `uninitialized` names init
    containers still to finish, `unready` containers not ready."""
    init = _cond("Initialized", not uninitialized, "ContainersNotInitialized",
                 f"containers with incomplete status: [{' '.join(uninitialized)}]")
    if completed:
        ready = _cond("Ready", False, "PodCompleted")
        containers = _cond("ContainersReady", False, "PodCompleted")
    else:
        msg = f"containers with unready status: [{' '.join(unready)}]"
        containers = _cond("ContainersReady", not unready, "ContainersNotReady", msg)
        if unready:
            ready = _cond("Ready", False, "ContainersNotReady", msg)
        elif gates_unready:
            ready = _cond("Ready", False, "ReadinessGatesNotReady",
                          f"the status of pod readiness gate \"{gates_unready[0]}\" is not "
                          "\"True\", but False")
        else:
            ready = _cond("Ready", True)
    return [_cond("PodReadyToStartContainers", sandbox_ready), init, ready, containers,
            _cond("PodScheduled", True)]


def stamp_conditions(conds: list[dict], old: list[dict] | None, now: str) -> list[dict]:
    """lastTransitionTime stays while a condition's status holds (as upstream);
    PodScheduled keeps what the scheduler wrote."""
    before = {c.get("type"): c for c in old or []}
    out = []
    for c in conds:
        prev = before.get(c["type"])
        if c["type"] == "PodScheduled" and prev and prev.get("status") == "True":
            out.append(prev)
            continue
        since = prev.get("lastTransitionTime") if prev and prev.get("status") == c["status"] \
            else None
        out.append({**c, "lastTransitionTime": since or now})
    return out


def readiness_gates_unready(pod: dict) -> list[str]:
    gates = [g.get("conditionType", "") for g in (pod.get("spec") or {}).get("readinessGates")
             or []]
    have = {c.get("type"): c.get("status") for c in (pod.get("status") or {}).get("conditions")
            or []}
    return [g for g in gates if have.get(g) != "True"]


def waiting(reason: str, message: str = "") -> dict:
    w = {"reason": reason}
    if message:
        w["message"] = message
    return {"waiting": w}


def running(started: float) -> dict:
    return {"running": {"startedAt": rfc3339(started)}}


def terminated(code: int, started: float, finished: float, container_id: str = "") -> dict:
    t: dict[str, Any] = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                         "startedAt": rfc3339(started), "finishedAt": rfc3339(finished)}
    if container_id:
        t["containerID"] = container_id
    return {"terminated": t}


def _state_kind(state: Any) -> tuple:
    if not isinstance(state, dict) or not state:
        return ()
    kind = next(iter(state))
    detail = state[kind] or {}
    return (kind, detail.get("reason"), detail.get("exitCode"), detail.get("startedAt"))


def summary(status: dict) -> tuple:
    """What a status says, without the details the server may normalise: two
    statuses with the same summary need no write."""
    conds = tuple(sorted((c.get("type"), c.get("status"), c.get("reason"))
                         for c in status.get("conditions") or []
                         if c.get("type") in KUBELET_CONDITIONS))
    cs = tuple((c.get("name"), c.get("ready"), c.get("restartCount"), _state_kind(c.get("state")))
               for key in ("initContainerStatuses", "containerStatuses")
               for c in status.get(key) or [])
    return (status.get("phase"), status.get("reason"), status.get("podIP"), conds, cs)
