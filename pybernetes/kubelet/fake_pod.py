"""The life of one pod on a fake node, as plain data and arithmetic (no I/O): what
its annotations ask for, where it is at a given moment (Pending, Running, ready,
crash-looping, finished) and the status a kubelet would report for that.

Pod annotations (all optional; seconds may be fractional):

  fake.pybernetes.io/start-delay     seconds from admission until the containers run
  fake.pybernetes.io/ready-delay     seconds from Running until the containers are ready
  fake.pybernetes.io/never-ready     "true": run, but never become ready (0/1)
  fake.pybernetes.io/complete-after  seconds from Running until the containers exit
  fake.pybernetes.io/exit-code       their exit code (default 0); non-zero with
                                     restartPolicy Never makes the pod Failed (Error),
                                     with Always/OnFailure the container restarts
                                     (restartCount + 1, then CrashLoopBackOff with
                                     upstream's back-off of 10 s doubling to 5 min)

Without annotations a pod with restartPolicy Never or OnFailure exits 0 after the
agent's --fake-run-seconds (phase Succeeded, reason Completed) so Jobs finish;
restartPolicy Always pods run until deleted."""
from __future__ import annotations

import logging
from dataclasses import dataclass

from pybernetes.api.podspec import pod_qos_class
from pybernetes.kubelet import pod_status as ps

log = logging.getLogger(__name__)

PREFIX = "fake.pybernetes.io/"
START_DELAY, READY_DELAY = PREFIX + "start-delay", PREFIX + "ready-delay"
NEVER_READY, COMPLETE_AFTER = PREFIX + "never-ready", PREFIX + "complete-after"
EXIT_CODE = PREFIX + "exit-code"
BACKOFF_BASE, BACKOFF_MAX = 10.0, 300.0  # upstream's container restart back-off
MAX_STEPS = 10_000  # bound on transitions replayed at once (a pod adopted after a long time)


@dataclass(frozen=True)
class Behaviour:
    start_delay: float = 0.0
    ready_delay: float = 0.0
    never_ready: bool = False
    complete_after: float | None = None  # None: runs until deleted
    exit_code: int = 0


def _seconds(value: object) -> float | None:
    try:
        s = float(str(value).strip().rstrip("s"))
    except ValueError:
        return None
    return s if s >= 0 else None


def behaviour(pod: dict, run_seconds: float = 1.0) -> Behaviour:
    """What the pod's annotations ask for; unreadable values are ignored."""
    ann = (pod.get("metadata") or {}).get("annotations") or {}
    policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
    try:
        code = int(str(ann.get(EXIT_CODE, "0")).strip())
    except ValueError:
        code = 0
    complete = _seconds(ann[COMPLETE_AFTER]) if COMPLETE_AFTER in ann else None
    if complete is None and (policy != "Always" or EXIT_CODE in ann):
        complete = run_seconds  # run-to-completion pods (and ones told to fail) do finish
    never = str(ann.get(NEVER_READY, "false")).strip().lower() not in ("false", "0", "no", "")
    return Behaviour(start_delay=_seconds(ann.get(START_DELAY, 0)) or 0.0,
                     ready_delay=_seconds(ann.get(READY_DELAY, 0)) or 0.0,
                     never_ready=never, complete_after=complete, exit_code=code)


def backoff(exits_before: int) -> float:
    """Delay before restarting after an exit: the first restart is immediate."""
    if exits_before == 0:
        return 0.0
    return min(BACKOFF_BASE * 2 ** (exits_before - 1), BACKOFF_MAX)


class FakeRun:
    """Where one pod is in its fake life. `advance(now)` moves it to `now` and says
    when the next change is due; times are wall-clock seconds (time.time())."""

    def __init__(self, b: Behaviour, policy: str, admitted_at: float):
        self.b, self.policy = b, policy or "Always"
        self.admitted_at = admitted_at
        self.phase = "Pending"
        self.started_at = 0.0             # the running container instance's start
        self.restarts = 0
        self.exits = 0
        self.last_exit: tuple[int, float, float] | None = None  # code, started, finished
        self.backoff_until: float | None = None
        self.backoff_for = 0.0
        self.finished_at = 0.0
        self.exit_code = 0

    @classmethod
    def adopt(cls, pod: dict, b: Behaviour, now: float) -> "FakeRun":
        """Pick up a pod this agent ran before it restarted, from its status."""
        status = pod.get("status") or {}
        policy = (pod.get("spec") or {}).get("restartPolicy") or "Always"
        run = cls(b, policy, ps.parse_rfc3339(status.get("startTime")) or now)
        if status.get("phase") == "Running":
            cs = (status.get("containerStatuses") or [{}])[0]
            started = ps.parse_rfc3339(((cs.get("state") or {}).get("running") or {})
                                       .get("startedAt"))
            run.phase, run.started_at = "Running", started or now
            run.restarts = run.exits = int(cs.get("restartCount") or 0)
        return run

    @property
    def terminal(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    def advance(self, now: float) -> float | None:
        """Apply every transition due by `now`; the time of the next one (None: none)."""
        for _ in range(MAX_STEPS):
            if self.phase == "Pending":
                at = self.admitted_at + self.b.start_delay
                if now < at:
                    return at
                self.phase, self.started_at = "Running", at
                continue
            if self.terminal:
                return None
            if self.backoff_until is not None:
                if now < self.backoff_until:
                    return self.backoff_until
                self.restarts += 1
                self.started_at, self.backoff_until = self.backoff_until, None
                continue
            nxt: float | None = None
            if self.b.complete_after is not None:
                at = self.started_at + self.b.complete_after
                if now >= at:
                    self._exit(at)
                    continue
                nxt = at
            ready_at = self.started_at + self.b.ready_delay
            if not self.b.never_ready and now < ready_at:
                nxt = ready_at if nxt is None else min(nxt, ready_at)
            return nxt
        return now + 1.0

    def _exit(self, at: float) -> None:
        code = self.b.exit_code
        self.last_exit = (code, self.started_at, at)
        if self.policy == "Never" or (self.policy == "OnFailure" and code == 0):
            self.phase = "Succeeded" if code == 0 else "Failed"
            self.finished_at, self.exit_code = at, code
            return
        delay = backoff(self.exits)
        self.exits += 1
        if delay == 0:
            self.restarts += 1
            self.started_at = at
        else:
            self.backoff_until, self.backoff_for = at + delay, delay

    def stop(self, now: float) -> None:
        """The pod is being deleted: its containers exit (0, as after a clean SIGTERM)."""
        if self.terminal:
            return
        if self.phase == "Pending":
            self.started_at = now
        self.phase, self.finished_at, self.exit_code = "Succeeded", now, 0
        self.backoff_until = None

    def ready(self, now: float) -> bool:
        return (self.phase == "Running" and self.backoff_until is None and
                not self.b.never_ready and now >= self.started_at + self.b.ready_delay)


def image_id(image: str) -> str:
    return f"fake://{image}"


def container_id(pod: dict, name: str) -> str:
    return f"fake://{pod['metadata'].get('uid', '')}/{name}"


def _container_statuses(pod: dict, run: FakeRun, now: float, specs: list[dict]) -> list[dict]:
    md = pod["metadata"]
    ready = run.ready(now)
    out = []
    for c in specs:
        name, image = c.get("name", ""), c.get("image", "")
        cs: dict = {"name": name, "image": image, "imageID": "", "ready": False,
                    "started": False, "restartCount": run.restarts, "lastState": {}}
        if run.phase == "Pending":
            cs["state"] = ps.waiting("ContainerCreating")
            out.append(cs)
            continue
        cid = container_id(pod, name)
        cs.update(imageID=image_id(image), containerID=cid)
        if run.last_exit is not None and (run.terminal is False):
            code, st, fin = run.last_exit
            cs["lastState"] = ps.terminated(code, st, fin, cid)
        if run.terminal:
            cs["state"] = ps.terminated(run.exit_code, run.started_at, run.finished_at, cid)
        elif run.backoff_until is not None:
            cs["state"] = ps.waiting("CrashLoopBackOff", (
                f"back-off {int(run.backoff_for)}s restarting failed container={name} "
                f"pod={md['name']}_{md.get('namespace')}({md.get('uid')})"))
        else:
            cs["state"] = ps.running(run.started_at)
            cs["started"], cs["ready"] = True, ready
        out.append(cs)
    return out


def _init_statuses(pod: dict, run: FakeRun, specs: list[dict]) -> list[dict]:
    out = []
    for c in specs:
        name, image = c.get("name", ""), c.get("image", "")
        cs: dict = {"name": name, "image": image, "imageID": "", "ready": False,
                    "started": False, "restartCount": 0, "lastState": {}}
        if run.phase == "Pending":
            cs["state"] = ps.waiting("PodInitializing")
        else:
            cid = container_id(pod, name)
            start = run.admitted_at + run.b.start_delay
            cs.update(imageID=image_id(image), containerID=cid, ready=True,
                      state=ps.terminated(0, start, start, cid))
        out.append(cs)
    return out


def fake_status(pod: dict, run: FakeRun, now: float, host_ip: str,
                pod_ip: str | None) -> dict:
    """The status a kubelet would post for this pod at `now`."""
    spec = pod.get("spec") or {}
    inits = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") != "Always"]
    sidecars = [c for c in spec.get("initContainers") or [] if c.get("restartPolicy") == "Always"]
    containers = _container_statuses(pod, run, now, spec.get("containers") or [])
    init_statuses = _init_statuses(pod, run, inits) + _container_statuses(pod, run, now, sidecars)
    pending = run.phase == "Pending"
    conds = ps.pod_conditions(
        sandbox_ready=not pending and not run.terminal,
        uninitialized=[c["name"] for c in inits] if pending else [],
        unready=[c["name"] for c in containers + init_statuses[len(inits):] if not c["ready"]],
        completed=run.terminal, gates_unready=ps.readiness_gates_unready(pod))
    old = pod.get("status") or {}
    status: dict = {
        "phase": run.phase,
        "conditions": ps.stamp_conditions(conds, old.get("conditions"), ps.rfc3339(now)),
        "hostIP": host_ip, "hostIPs": [{"ip": host_ip}],
        "startTime": ps.rfc3339(run.admitted_at),
        "qosClass": old.get("qosClass") or pod_qos_class(spec),
        "containerStatuses": containers}
    if init_statuses:
        status["initContainerStatuses"] = init_statuses
    if pod_ip and not pending:
        status["podIP"], status["podIPs"] = pod_ip, [{"ip": pod_ip}]
    return status
