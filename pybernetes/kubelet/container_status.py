"""A pod's status from what the runtime reports, as upstream's kubelet computes it
(convertToAPIContainerStatuses + getPhase): container states with the runtime's
reasons (OOMKilled, Completed, Error), the kubelet's own waiting reasons
(ContainerCreating, ErrImagePull, ImagePullBackOff, CrashLoopBackOff, ...),
lastState, restartCount, containerID / imageID, and the pod phase.

Pure functions over runtime ContainerStatus records, so they are the same for the
runc and process runtimes and are tested without either."""
from __future__ import annotations

from dataclasses import dataclass

from pybernetes.kubelet.pod_status import rfc3339, running, waiting
from pybernetes.kubelet.runtime.base import ContainerStatus


@dataclass
class ContainerView:
    """One spec container as the kubelet sees it at a sync."""

    spec: dict
    latest: ContainerStatus | None = None     # the newest instance (highest attempt)
    previous: ContainerStatus | None = None   # the one before it
    waiting: tuple[str, str] | None = None    # (reason, message) the kubelet decided
    image_id: str = ""
    ready: bool = False
    runtime: str = "runc"
    termination_message: str = ""


def container_id(runtime: str, cid: str) -> str:
    return f"{runtime}://{cid}"


def terminated_state(cs: ContainerStatus, runtime: str, message: str = "") -> dict:
    reason = cs.reason or ("Completed" if cs.exit_code == 0 else "Error")
    t = {"exitCode": cs.exit_code, "reason": reason,
         "startedAt": rfc3339(cs.started_at) if cs.started_at else None,
         "finishedAt": rfc3339(cs.finished_at or cs.started_at or cs.created_at),
         "containerID": container_id(runtime, cs.id)}
    if message or cs.message:
        t["message"] = message or cs.message
    return {"terminated": {k: v for k, v in t.items() if v is not None}}


def api_container_status(view: ContainerView) -> dict:
    """One entry of status.containerStatuses (or initContainerStatuses)."""
    spec, cs = view.spec, view.latest
    out: dict = {"name": spec.get("name", ""), "image": spec.get("image", ""),
                 "imageID": view.image_id, "ready": False,
                 "restartCount": cs.attempt if cs else 0, "started": False,
                 "lastState": {}}
    if cs is not None:
        out["containerID"] = container_id(view.runtime, cs.id)
    if view.waiting is not None:
        out["state"] = waiting(*view.waiting)
        if cs is not None and cs.state == "exited":
            out["lastState"] = terminated_state(cs, view.runtime)
            return out
    elif cs is None or cs.state == "created":
        out["state"] = waiting("ContainerCreating")
    elif cs.state == "running":
        out["state"] = running(cs.started_at or cs.created_at)
        out["started"] = True
        out["ready"] = view.ready
    elif cs.state == "exited":
        out["state"] = terminated_state(cs, view.runtime, view.termination_message)
    else:
        out["state"] = waiting("ContainerCreating")
    if view.previous is not None and view.previous.state == "exited":
        out["lastState"] = terminated_state(view.previous, view.runtime)
    return out


def should_restart(restart_policy: str, cs: ContainerStatus) -> bool:
    """Whether an exited container is started again (upstream's ShouldContainerBeRestarted)."""
    if restart_policy == "Never":
        return False
    if restart_policy == "OnFailure":
        return cs.exit_code != 0
    return True


def _kind(status: dict) -> str:
    return next(iter(status.get("state") or {"waiting": {}}))


def init_progress(init_statuses: list[dict]) -> tuple[list[str], bool]:
    """(names not yet done, whether one failed for good with restartPolicy Never —
    decided by the caller, here only: any terminated with a non-zero exit)."""
    pending, failed = [], False
    for s in init_statuses:
        state = s.get("state") or {}
        term = state.get("terminated")
        if term is not None and term.get("exitCode") == 0:
            continue
        pending.append(s.get("name", ""))
        if term is not None:
            failed = True
    return pending, failed


def pod_phase(spec: dict, init_statuses: list[dict], statuses: list[dict]) -> str:
    """upstream's getPhase for the kubelet's view of the containers."""
    policy = spec.get("restartPolicy") or "Always"
    pending_init, init_failed = init_progress(init_statuses)
    if init_failed and policy == "Never":
        return "Failed"
    if pending_init:
        return "Pending"
    run = wait = stopped = succeeded = 0
    for s in statuses:
        kind = _kind(s)
        if kind == "running":
            run += 1
        elif kind == "terminated":
            stopped += 1
            if s["state"]["terminated"].get("exitCode") == 0:
                succeeded += 1
        elif (s.get("lastState") or {}).get("terminated") is not None:
            stopped += 1   # waiting to restart
        else:
            wait += 1
    if wait:
        return "Pending"
    if run:
        return "Running"
    if stopped:
        if policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        return "Failed" if policy == "Never" else "Running"
    return "Pending"


def latest_two(containers: list[ContainerStatus], name: str
               ) -> tuple[ContainerStatus | None, ContainerStatus | None]:
    """The newest and the previous instance of a named container (by attempt, then
    creation time)."""
    mine = sorted((c for c in containers if c.name == name),
                  key=lambda c: (c.attempt, c.created_at), reverse=True)
    return (mine[0] if mine else None), (mine[1] if len(mine) > 1 else None)
