"""Deployment rollout arithmetic on plain dicts, as upstream's deployment util:
surge/unavailable fenceposts, how far to scale the new and old ReplicaSets, the
pod-template-hash, revision annotations, conditions and the computed status."""
from __future__ import annotations

import copy
import json
import math
import time
from typing import Any

from pybernetes.controllers.base import now_rfc3339, parse_time

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
CHANGE_CAUSE = "kubernetes.io/change-cause"
MAX_REV_HISTORY_CHARS = 2000
# Deployment annotations never copied onto its ReplicaSets
_NOT_COPIED = {"kubectl.kubernetes.io/last-applied-configuration", REVISION, REVISION_HISTORY,
               DESIRED_REPLICAS, MAX_REPLICAS, "deprecated.deployment.rollback.to"}
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # no vowels: no words in names


# ----- sizes -----
def spec_replicas(obj: dict) -> int:
    r = (obj.get("spec") or {}).get("replicas")
    return 1 if r is None else int(r)


def status_int(obj: dict, key: str) -> int:
    return int((obj.get("status") or {}).get(key) or 0)


def scaled_value(v: Any, total: int, round_up: bool) -> int:
    """An IntOrString: an int as is, "25%" of total rounded up or down."""
    if v is None:
        return 0
    if isinstance(v, int):
        return v
    s = str(v)
    if s.endswith("%"):
        exact = int(s[:-1]) * total / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(s)


def fenceposts(d: dict) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) of a RollingUpdate deployment: surge rounds up,
    unavailable rounds down, and both zero means one may be unavailable."""
    ru = ((d.get("spec") or {}).get("strategy") or {}).get("rollingUpdate") or {}
    desired = spec_replicas(d)
    surge = scaled_value(ru.get("maxSurge", "25%"), desired, True)
    unavailable = scaled_value(ru.get("maxUnavailable", "25%"), desired, False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def is_rolling(d: dict) -> bool:
    return ((d.get("spec") or {}).get("strategy") or {}).get("type", "RollingUpdate") == "RollingUpdate"


def max_surge(d: dict) -> int:
    return fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: dict) -> int:
    if not is_rolling(d) or spec_replicas(d) == 0:
        return 0
    return min(fenceposts(d)[1], spec_replicas(d))


def total_replicas(rss: list[dict]) -> int:
    return sum(spec_replicas(rs) for rs in rss if rs)


def new_rs_replicas(d: dict, all_rss: list[dict], new_rs: dict) -> int:
    """How big the new ReplicaSet may be now."""
    desired = spec_replicas(d)
    if not is_rolling(d):
        return desired
    current = spec_replicas(new_rs)
    if current >= desired:
        return desired
    room = desired + max_surge(d) - total_replicas(all_rss)
    if room <= 0:
        return current
    return current + min(room, desired - current)


def max_old_scale_down(d: dict, all_rss: list[dict], new_rs: dict | None) -> int:
    """How many old pods may go now without dropping below desired - maxUnavailable,
    counting the new ReplicaSet's not-yet-available pods as already unavailable."""
    min_available = spec_replicas(d) - max_unavailable(d)
    new_unavailable = (spec_replicas(new_rs) - status_int(new_rs, "availableReplicas")) if new_rs else 0
    return total_replicas(all_rss) - min_available - new_unavailable


def by_creation(rss: list[dict]) -> list[dict]:
    return sorted(rss, key=lambda r: (r["metadata"].get("creationTimestamp", ""),
                                      r["metadata"].get("name", "")))


def plan_cleanup_unhealthy(old_rss: list[dict], budget: int) -> dict[str, int]:
    """Old ReplicaSets' unavailable pods go first, oldest set first: name -> new size."""
    out, done = {}, 0
    for rs in by_creation(old_rss):
        if done >= budget:
            break
        size, avail = spec_replicas(rs), status_int(rs, "availableReplicas")
        if size == 0 or size == avail:
            continue
        n = min(budget - done, size - avail)
        out[rs["metadata"]["name"]] = size - n
        done += n
    return out


def plan_scale_down_old(d: dict, all_rss: list[dict], old_rss: list[dict]) -> dict[str, int]:
    """Scale old ReplicaSets down by what availability allows, oldest first."""
    min_available = spec_replicas(d) - max_unavailable(d)
    available = sum(status_int(rs, "availableReplicas") for rs in all_rss if rs)
    budget = available - min_available
    out, done = {}, 0
    for rs in by_creation(old_rss):
        if done >= budget:
            break
        size = spec_replicas(rs)
        if size == 0:
            continue
        n = min(size, budget - done)
        out[rs["metadata"]["name"]] = size - n
        done += n
    return out


def plan_proportional(d: dict, all_rss: list[dict]) -> dict[str, int]:
    """A scaled RollingUpdate mid-rollout: spread the change over the active sets in
    proportion to their size (upstream's proportional scaling); name -> new size."""
    active = [rs for rs in all_rss if spec_replicas(rs) > 0]
    desired = spec_replicas(d)
    allowed = desired + max_surge(d) if desired > 0 else 0
    to_add = allowed - total_replicas(active)
    if to_add == 0 or not active:
        return {}
    newest_first = sorted(active, key=lambda r: r["metadata"].get("creationTimestamp", ""),
                          reverse=True)
    if to_add > 0:  # biggest (then newest) first
        order = sorted(newest_first, key=lambda r: -spec_replicas(r))
    else:  # smallest (then oldest) first
        order = sorted(newest_first[::-1], key=lambda r: spec_replicas(r))
    sizes, added = {}, 0
    for rs in order:
        size = spec_replicas(rs)
        fraction = _fraction(rs, d, allowed)
        left = to_add - added
        share = min(fraction, left) if to_add > 0 else max(fraction, left)
        sizes[rs["metadata"]["name"]] = size + share
        added += share
    if added != to_add:
        first = order[0]["metadata"]["name"]
        sizes[first] = max(0, sizes[first] + to_add - added)
    return sizes


def _fraction(rs: dict, d: dict, allowed: int) -> int:
    size = spec_replicas(rs)
    if spec_replicas(d) == 0:
        return -size
    ann = (rs["metadata"].get("annotations") or {}).get(MAX_REPLICAS)
    try:
        annotated = int(ann) if ann else status_int(d, "replicas")
    except ValueError:
        annotated = status_int(d, "replicas")
    if annotated <= 0:
        return 0
    exact = size * allowed / annotated
    return int(math.floor(exact + 0.5)) - size  # Go's math.Round (sizes are never negative)


# ----- templates, hashes, revisions -----
def fnv32a(data: bytes) -> int:
    h = 0x811C9DC5
    for b in data:
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def template_hash(template: dict, collision_count: int | None = None) -> str:
    """The pod-template-hash: FNV-1a (32 bit) of the template's canonical JSON (sorted
    keys, no spaces) followed by the collision count, its decimal digits mapped onto
    upstream's vowel-free alphabet. Stable across runs; not upstream's exact value,
    which hashes Go's struct dump — clients only need a stable label."""
    data = json.dumps(template, sort_keys=True, separators=(",", ":")).encode()
    if collision_count:
        data += str(collision_count).encode()
    return "".join(_SAFE_ALPHABET[ord(c) % len(_SAFE_ALPHABET)] for c in str(fnv32a(data)))


def without_hash(template: dict | None) -> dict:
    t = copy.deepcopy(template or {})
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return t


def same_template(a: dict | None, b: dict | None) -> bool:
    return _normal(without_hash(a)) == _normal(without_hash(b))


def _normal(t: dict) -> dict:
    """Empty maps and an absent metadata compare equal, as Go's zero values do."""
    md = t.get("metadata") or {}
    t["metadata"] = {k: v for k, v in md.items() if v not in (None, {}, [])}
    return t


def revision_of(obj: dict | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("annotations", {}).get(REVISION, "0"))
    except (ValueError, AttributeError):
        return 0


def set_replicas_annotations(rs: dict, desired: int, max_replicas: int) -> bool:
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for k, v in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(max_replicas))):
        if ann.get(k) != v:
            ann[k] = v
            changed = True
    return changed


def set_new_rs_annotations(d: dict, rs: dict, new_revision: int, exists: bool) -> bool:
    """Copy the deployment's annotations (change-cause among them) onto its new
    ReplicaSet and move its revision to `new_revision`, remembering the old one."""
    ann = rs["metadata"].setdefault("annotations", {})
    changed = False
    for k, v in ((d.get("metadata") or {}).get("annotations") or {}).items():
        if k not in _NOT_COPIED and ann.get(k) != v:
            ann[k] = v
            changed = True
    old = ann.get(REVISION, "")
    try:
        old_n = int(old) if old else 0
    except ValueError:
        old_n = 0
    if old_n < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old:
            history = [h for h in ann.get(REVISION_HISTORY, "").split(",") if h] + [old]
            text = ",".join(history)
            while len(text) > MAX_REV_HISTORY_CHARS and len(history) > 1:
                history.pop(0)
                text = ",".join(history)
            ann[REVISION_HISTORY] = text
    if not exists and set_replicas_annotations(rs, spec_replicas(d), spec_replicas(d) + max_surge(d)):
        changed = True
    return changed


# ----- conditions and status -----
def get_condition(status: dict, type_: str) -> dict | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == type_), None)


def new_condition(type_: str, status: str, reason: str, message: str) -> dict:
    now = now_rfc3339()
    return {"type": type_, "status": status, "lastUpdateTime": now,
            "lastTransitionTime": now, "reason": reason, "message": message}


def set_condition(status: dict, cond: dict) -> None:
    """Replace the condition of cond's type; same status and reason is a no-op, and
    a status that did not change keeps its lastTransitionTime."""
    cur = get_condition(status, cond["type"])
    if cur and cur.get("status") == cond["status"] and cur.get("reason") == cond["reason"]:
        return
    if cur and cur.get("status") == cond["status"]:
        cond["lastTransitionTime"] = cur.get("lastTransitionTime", cond["lastTransitionTime"])
    others = [c for c in status.get("conditions") or [] if c.get("type") != cond["type"]]
    status["conditions"] = others + [cond]


def remove_condition(status: dict, type_: str) -> None:
    conds = [c for c in status.get("conditions") or [] if c.get("type") != type_]
    if conds:
        status["conditions"] = conds
    else:
        status.pop("conditions", None)


def calculate_status(d: dict, all_rss: list[dict], new_rs: dict | None) -> dict:
    rss = [rs for rs in all_rss if rs]
    available = sum(status_int(rs, "availableReplicas") for rs in rss)
    old = d.get("status") or {}
    status: dict[str, Any] = {
        "observedGeneration": d["metadata"].get("generation", 0),
        "replicas": sum(status_int(rs, "replicas") for rs in rss),
        "updatedReplicas": status_int(new_rs, "replicas") if new_rs else 0,
        "readyReplicas": sum(status_int(rs, "readyReplicas") for rs in rss),
        "availableReplicas": available,
        "unavailableReplicas": max(0, total_replicas(rss) - available),
    }
    if old.get("collisionCount") is not None:
        status["collisionCount"] = old["collisionCount"]
    if old.get("conditions"):
        status["conditions"] = copy.deepcopy(old["conditions"])
    if available >= spec_replicas(d) - max_unavailable(d):
        set_condition(status, new_condition("Available", "True", "MinimumReplicasAvailable",
                                            "Deployment has minimum availability."))
    else:
        set_condition(status, new_condition("Available", "False", "MinimumReplicasUnavailable",
                                            "Deployment does not have minimum availability."))
    return {k: v for k, v in status.items() if v not in (0, None) or k == "observedGeneration"}


def is_complete(d: dict, status: dict) -> bool:
    want = spec_replicas(d)
    return (int(status.get("updatedReplicas") or 0) == want
            and int(status.get("replicas") or 0) == want
            and int(status.get("availableReplicas") or 0) == want
            and int(status.get("observedGeneration") or 0) >= d["metadata"].get("generation", 0))


def is_progressing(d: dict, new: dict) -> bool:
    old = d.get("status") or {}

    def n(s: dict, k: str) -> int:
        return int(s.get(k) or 0)
    old_old = n(old, "replicas") - n(old, "updatedReplicas")
    new_old = n(new, "replicas") - n(new, "updatedReplicas")
    return (n(new, "updatedReplicas") > n(old, "updatedReplicas") or new_old < old_old
            or n(new, "readyReplicas") > n(old, "readyReplicas")
            or n(new, "availableReplicas") > n(old, "availableReplicas"))


def progress_deadline(d: dict) -> int | None:
    v = (d.get("spec") or {}).get("progressDeadlineSeconds")
    return None if v is None or v >= 2**31 - 1 else int(v)


def timed_out(d: dict, status: dict, now: float | None = None) -> bool:
    deadline = progress_deadline(d)
    cond = get_condition(status, "Progressing")
    if deadline is None or cond is None or cond.get("reason") == "NewReplicaSetAvailable":
        return False
    if cond.get("reason") == "ProgressDeadlineExceeded":
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    now = time.time() if now is None else now
    return since is not None and since + deadline < now
