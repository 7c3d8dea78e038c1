"""A pod's own cgroup (`/pybernetes/kubepods/<qos>/pod<uid>`, the containers' parent)
with the pod's limits, as upstream's kubelet makes it before the sandbox: cpu shares
(v2: weight) from the requests, CFS quota and memory limit when every container has
one, plus the RuntimeClass overhead; so the containers together, and whatever the
overhead pays for, stay within the pod's budget. runc makes and limits each
container's cgroup below it; the runtime removes the empty parents at teardown.

`mounts` is the runtime's controller → mount point map (runc.cgroup_mounts())."""
from __future__ import annotations

import os

from .base import Resources

V2_CONTROLLERS = ("cpu", "memory", "pids")
# QoS-level cgroups with a fixed CPU share, as upstream's QoS manager: BestEffort pods
# together weigh as little as the kernel allows against everything else
QOS_SHARES = {"besteffort": 2}


def shares_to_weight(shares: int) -> int:
    """cgroup v1 cpu.shares [2, 262144] → v2 cpu.weight [1, 10000] (runc's mapping)."""
    return 1 + ((max(2, min(shares, 262144)) - 2) * 9999) // 262142


def apply(mounts: dict[str, str], path: str, res: Resources, unified: bool) -> None:
    """Create the cgroup `path` (relative to each hierarchy's root) in every hierarchy
    that limits something and write `res` into it. `unified`: cgroup v2 only."""
    rel = path.strip("/")
    if unified:
        _apply_v2(mounts[""], rel, res)
    else:
        _apply_v1(mounts, rel, res)


def _apply_v1(mounts: dict[str, str], rel: str, res: Resources) -> None:
    files: dict[str, dict[str, str]] = {
        "cpu": {"cpu.shares": str(res.cpu_shares), "cpu.cfs_period_us": str(res.cpu_period),
                "cpu.cfs_quota_us": str(res.cpu_quota or -1)},
        "memory": {"memory.limit_in_bytes": str(res.memory_limit or -1)},
    }
    if res.pids_limit:
        files["pids"] = {"pids.max": str(res.pids_limit)}
    for controller, values in files.items():
        mount = mounts.get(controller)
        if mount is None:
            continue
        d = os.path.join(mount, rel)
        os.makedirs(d, exist_ok=True)
        for name, value in values.items():
            _write(d, name, value)
    cpu = mounts.get("cpu")
    for qos_dir, shares in _qos_dirs(rel):
        if cpu is not None:
            _write(os.path.join(cpu, qos_dir), "cpu.shares", str(shares))


def _apply_v2(root: str, rel: str, res: Resources) -> None:
    d = root
    for part in rel.split("/"):
        _enable_controllers(d)   # a child can only limit what its parent delegates
        d = os.path.join(d, part)
        os.makedirs(d, exist_ok=True)
    for qos_dir, shares in _qos_dirs(rel):
        _write(os.path.join(root, qos_dir), "cpu.weight", str(shares_to_weight(shares)))
    _write(d, "cpu.weight", str(shares_to_weight(res.cpu_shares)))
    _write(d, "cpu.max", f"{res.cpu_quota or 'max'} {res.cpu_period}")
    _write(d, "memory.max", str(res.memory_limit or "max"))
    if res.pids_limit:
        _write(d, "pids.max", str(res.pids_limit))
    _enable_controllers(d)       # for the containers' cgroups below


def _qos_dirs(rel: str) -> list[tuple[str, int]]:
    """(ancestor path, shares) for the QoS-level cgroups above a pod's."""
    parts = rel.split("/")[:-1]
    return [("/".join(parts[:i + 1]), QOS_SHARES[p]) for i, p in enumerate(parts)
            if p in QOS_SHARES]


def _enable_controllers(d: str) -> None:
    with open(os.path.join(d, "cgroup.controllers")) as f:
        available = set(f.read().split())
    with open(os.path.join(d, "cgroup.subtree_control")) as f:
        enabled = set(f.read().split())
    wanted = [c for c in V2_CONTROLLERS if c in available and c not in enabled]
    if wanted:
        _write(d, "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))


def _write(d: str, name: str, value: str) -> None:
    try:
        with open(os.path.join(d, name), "w") as f:
            f.write(value)
    except OSError as e:
        raise OSError(e.errno, f"cgroup {d}: writing {value!r} to {name}: {e.strerror}") \
            from None
