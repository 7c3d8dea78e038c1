"""Disruption controller: keeps each PodDisruptionBudget's status true to its pods.

For a budget it counts the pods its selector picks, how many of them are healthy (Ready,
not being deleted, not just approved for eviction), how many there should be (from the
pods' controllers: Deployment via ReplicaSet, ReplicaSet, StatefulSet,
ReplicationController) and how many must stay healthy (minAvailable / maxUnavailable,
integer or percent). disruptionsAllowed is what the eviction subresource spends.

Two timers, both upstream's two minutes: a pod the eviction subresource noted in
status.disruptedPods that was not deleted in time counts again, and a pod left with a
DisruptionTarget condition but never deleted gets that condition set back to False.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from typing import Any

from pybernetes.client.api import Resource
from pybernetes.api.policy import disruption_condition_current, set_disruption_allowed_condition
from pybernetes.controllers.base import (Controller, controller_ref, now_rfc3339, object_key,
                                         parse_time, split_key)
from pybernetes.machinery.errors import StatusError
from pybernetes.machinery.selectors import LabelSelector

log = logging.getLogger(__name__)

DELETION_TIMEOUT = 120.0       # upstream DeletionTimeout: an approved eviction must happen by then
STALE_DISRUPTION_TIMEOUT = 120.0  # upstream stalePodDisruptionTimeout
POD_KEY = "pod:"               # queue keys of pods with a stale DisruptionTarget condition


class BudgetError(Exception):
    """The budget cannot be computed (a broken selector, a pod without a known controller)."""


# ----- pure arithmetic ---------------------------------------------------------------------
def scaled_value(v: Any, total: int) -> int:
    """intstr.GetScaledValueFromIntOrPercent, rounding up."""
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str) and v.endswith("%"):
        try:
            pct = int(v[:-1])
        except ValueError:
            raise BudgetError(f'invalid value for IntOrString: invalid value "{v}"')
        return math.ceil(pct * total / 100)
    raise BudgetError('invalid value for IntOrString: invalid type: string is not a '
                      'percentage')


def is_ready(pod: dict) -> bool:
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "Ready":
            return c.get("status") == "True"
    return False


def disrupted_pod_map(pods: list[dict], pdb: dict, now: float
                      ) -> tuple[dict[str, str], float | None, list[dict]]:
    """Entries of status.disruptedPods still worth keeping (pod exists, not yet being
    deleted, noted less than DELETION_TIMEOUT ago); when to look again; and the pods whose
    approved eviction never happened."""
    noted = (pdb.get("status") or {}).get("disruptedPods") or {}
    kept: dict[str, str] = {}
    recheck: float | None = None
    overdue: list[dict] = []
    for pod in pods:
        md = pod["metadata"]
        if md.get("deletionTimestamp") or md["name"] not in noted:
            continue
        when = parse_time(noted[md["name"]])
        due = (when or 0.0) + DELETION_TIMEOUT
        if due < now:
            overdue.append(pod)
            continue
        kept[md["name"]] = noted[md["name"]]
        recheck = due if recheck is None else min(recheck, due)
    return kept, recheck, overdue


def count_healthy(pods: list[dict], disrupted: dict[str, str], now: float) -> int:
    healthy = 0
    for pod in pods:
        md = pod["metadata"]
        if md.get("deletionTimestamp"):
            continue
        when = parse_time(disrupted.get(md["name"]))
        if when is not None and when + DELETION_TIMEOUT > now:
            continue  # about to be evicted
        if is_ready(pod):
            healthy += 1
    return healthy


def new_status(pdb: dict, healthy: int, desired: int, expected: int,
               disrupted: dict[str, str]) -> dict | None:
    """The budget with its status recomputed; None when the stored status already says so."""
    allowed = healthy - desired
    if expected <= 0 or allowed <= 0:
        allowed = 0  # a budget that has seen no pods yet must not let anything go
    status = pdb.get("status") or {}
    generation = (pdb.get("metadata") or {}).get("generation") or 0
    if (status.get("currentHealthy") or 0) == healthy and \
            (status.get("desiredHealthy") or 0) == desired and \
            (status.get("expectedPods") or 0) == expected and \
            (status.get("disruptionsAllowed") or 0) == allowed and \
            (status.get("disruptedPods") or {}) == disrupted and \
            (status.get("observedGeneration") or 0) == generation and \
            disruption_condition_current(pdb):
        return None
    out = copy.deepcopy(pdb)
    fresh: dict[str, Any] = {"observedGeneration": generation, "currentHealthy": healthy,
                             "desiredHealthy": desired, "expectedPods": expected,
                             "disruptionsAllowed": allowed,
                             "conditions": copy.deepcopy(status.get("conditions") or [])}
    if disrupted:
        fresh["disruptedPods"] = disrupted
    out["status"] = fresh
    set_disruption_allowed_condition(out, now_rfc3339())
    return out


def stale_disruption_due(pod: dict) -> float | None:
    """When a DisruptionTarget=True condition on a pod that was never deleted goes stale."""
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        return None
    if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
        return None
    for c in (pod.get("status") or {}).get("conditions") or []:
        if c.get("type") == "DisruptionTarget" and c.get("status") == "True":
            return (parse_time(c.get("lastTransitionTime")) or 0.0) + STALE_DISRUPTION_TIMEOUT
    return None


def with_kind(obj: dict, api_version: str, kind: str) -> dict:
    """Informer items may lack kind/apiVersion; events need them for involvedObject."""
    if obj.get("kind"):
        return obj
    return dict(obj, apiVersion=api_version, kind=kind)


# ----- the controller -----------------------------------------------------------------------
class DisruptionController(Controller):
    name = "disruption"
    workers = 2

    def setup(self) -> None:
        self.PDBS = Resource.of("policy/v1", "poddisruptionbudgets")
        self.PODS = Resource.of("v1", "pods")
        self.pdbs = self.informers.get(self.PDBS)
        self.pods = self.informers.get(self.PODS)
        self.replicasets = self.informers.get(Resource.of("apps/v1", "replicasets"))
        self.deployments = self.informers.get(Resource.of("apps/v1", "deployments"))
        self.statefulsets = self.informers.get(Resource.of("apps/v1", "statefulsets"))
        self.rcs = self.informers.get(Resource.of("v1", "replicationcontrollers"))
        self.pdbs.add_handler(on_add=self.enqueue, on_update=lambda _o, n: self.enqueue(n),
                              on_delete=self.enqueue)
        self.pods.add_handler(on_add=self._pod_changed, on_update=self._pod_updated,
                              on_delete=self._pod_changed)

    # ----- event handlers: only enqueue keys -----
    def _budgets_of(self, pod: dict) -> list[dict]:
        md = pod.get("metadata") or {}
        out = []
        for pdb in self.pdbs.list(md.get("namespace")):
            try:
                sel = LabelSelector.from_api((pdb.get("spec") or {}).get("selector"))
            except StatusError:
                continue
            if sel.matches(md.get("labels")):
                out.append(pdb)
        return out

    def _pod_changed(self, pod: dict) -> None:
        budgets = self._budgets_of(pod)
        if len(budgets) > 1:
            names = sorted(b["metadata"]["name"] for b in budgets)
            md = pod["metadata"]
            self.recorder.event(with_kind(pod, "v1", "Pod"), "Warning",
                                "MultiplePodDisruptionBudgets",
                                f'Pod "{md.get("namespace")}"/"{md["name"]}" matches multiple '
                                f'PodDisruptionBudgets.  Chose "{names[0]}" arbitrarily.')
        for pdb in budgets:  # upstream syncs only one; every budget's status depends on it
            self.enqueue(pdb)
        due = stale_disruption_due(pod)
        if due is not None:
            self.queue.add_after(POD_KEY + object_key(pod), max(due - time.time(), 0.0))

    def _pod_updated(self, old: dict, new: dict) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return  # a resync
        self._pod_changed(new)
        if old["metadata"].get("labels") != new["metadata"].get("labels"):
            for pdb in self._budgets_of(old):
                self.enqueue(pdb)

    # ----- reconcile -----
    async def reconcile(self, key: str) -> None:
        if key.startswith(POD_KEY):
            await self._clear_stale_disruption(key[len(POD_KEY):])
            return
        ns, name = split_key(key)
        pdb = self.pdbs.get(ns, name)
        if pdb is None:
            return
        try:
            await self._sync(key, pdb)
        except BudgetError as e:
            # as upstream: nothing may be disrupted while the budget cannot be computed; the
            # next change to the budget or its pods tries again
            await self._fail_safe(pdb, str(e))

    async def _sync(self, key: str, pdb: dict) -> None:
        ns = pdb["metadata"].get("namespace")
        try:
            sel = LabelSelector.from_api((pdb.get("spec") or {}).get("selector"))
        except StatusError as e:
            raise BudgetError(e.message) from None
        pods = [p for p in self.pods.list(ns) if sel.matches(p["metadata"].get("labels"))]
        event_pdb = with_kind(pdb, "policy/v1", "PodDisruptionBudget")
        if not pods:
            self.recorder.event(event_pdb, "Normal", "NoPods", "No matching pods found")
        try:
            expected, desired, unmanaged = await self.expected_counts(pdb, pods)
        except BudgetError as e:
            self.recorder.event(event_pdb, "Warning", "CalculateExpectedPodCountFailed",
                                f"Failed to calculate the number of expected pods: {e}")
            raise
        if unmanaged:
            self.recorder.event(
                event_pdb, "Warning", "UnmanagedPods",
                "Pods selected by this PodDisruptionBudget (selector: "
                f"{sel}) were found to be unmanaged. As a result, the status of the PDB "
                "cannot be calculated correctly, which may result in undefined behavior. To "
                "account for these pods please set \".spec.minAvailable\" field of the PDB "
                "to an integer value.")
        now = time.time()
        disrupted, recheck, overdue = disrupted_pod_map(pods, pdb, now)
        for pod in overdue:
            self.recorder.event(with_kind(pod, "v1", "Pod"), "Warning", "NotDeleted",
                                f"Pod was expected by PDB {ns}/{pdb['metadata']['name']} to be "
                                "deleted but it wasn't")
        healthy = count_healthy(pods, disrupted, now)
        updated = new_status(pdb, healthy, desired, expected, disrupted)
        if updated is not None:
            await self.client.update(self.PDBS, updated, subresource="status")
        if recheck is not None:
            self.queue.add_after(key, max(recheck - now, 0.0) + 0.5)

    async def _fail_safe(self, pdb: dict, why: str) -> None:
        """disruptionsAllowed 0 and DisruptionAllowed False/SyncFailed saying why."""
        out = copy.deepcopy(pdb)
        status = out.setdefault("status", {})
        status["disruptionsAllowed"] = 0
        conds = [c for c in status.get("conditions") or [] if c.get("type") != "DisruptionAllowed"]
        old = next((c for c in status.get("conditions") or []
                    if c.get("type") == "DisruptionAllowed"), None)
        since = old["lastTransitionTime"] if old and old.get("status") == "False" and \
            old.get("lastTransitionTime") else now_rfc3339()
        conds.append({"type": "DisruptionAllowed", "status": "False",
                      "observedGeneration": status.get("observedGeneration") or 0,
                      "lastTransitionTime": since, "reason": "SyncFailed", "message": why})
        status["conditions"] = conds
        if out["status"] == pdb.get("status"):
            return
        await self.client.update(self.PDBS, out, subresource="status")

    # ----- expected pods -----
    async def expected_counts(self, pdb: dict, pods: list[dict]) -> tuple[int, int, list[str]]:
        """(expectedPods, desiredHealthy, names of pods without a controller)."""
        spec = pdb.get("spec") or {}
        max_u, min_a = spec.get("maxUnavailable"), spec.get("minAvailable")
        if max_u is not None:
            expected, unmanaged = await self.expected_scale(pods)
            return expected, max(expected - scaled_value(max_u, expected), 0), unmanaged
        if min_a is not None:
            if isinstance(min_a, int) and not isinstance(min_a, bool):
                return len(pods), min_a, []  # a plain count needs no controllers
            expected, unmanaged = await self.expected_scale(pods)
            return expected, scaled_value(min_a, expected), unmanaged
        return 0, 0, []

    async def expected_scale(self, pods: list[dict]) -> tuple[int, list[str]]:
        """Sum of spec.replicas over the pods' (distinct) controllers."""
        scales: dict[str, int] = {}
        unmanaged: list[str] = []
        for pod in pods:
            ref = controller_ref(pod)
            if ref is None:
                unmanaged.append(pod["metadata"]["name"])
                continue
            if ref.get("uid") in scales:
                continue
            ns = pod["metadata"].get("namespace")
            found = self.controller_scale(ref, ns) or await self.scale_subresource(ref, ns)
            if found is None:
                raise BudgetError(f'found no controllers for pod "{pod["metadata"]["name"]}"')
            scales[found[0]] = found[1]
        return sum(scales.values()), unmanaged

    def controller_scale(self, ref: dict, ns: str | None) -> tuple[str, int] | None:
        """(uid, replicas) of the workload that decides how many such pods there are."""
        group = (ref.get("apiVersion") or "").rpartition("/")[0]
        kind = ref.get("kind")
        if kind == "ReplicaSet" and group in ("apps", "extensions"):
            rs = self._owned(self.replicasets, ns, ref)
            if rs is None:
                return None
            parent = controller_ref(rs)
            if parent is None:
                return rs["metadata"]["uid"], _replicas(rs)
            if parent.get("kind") != "Deployment":
                return None
            dep = self._owned(self.deployments, ns, parent)
            return (dep["metadata"]["uid"], _replicas(dep)) if dep is not None else None
        if kind == "StatefulSet" and group == "apps":
            sts = self._owned(self.statefulsets, ns, ref)
            return (sts["metadata"]["uid"], _replicas(sts)) if sts is not None else None
        if kind == "ReplicationController" and group == "":
            rc = self._owned(self.rcs, ns, ref)
            return (rc["metadata"]["uid"], _replicas(rc)) if rc is not None else None
        return None

    async def scale_subresource(self, ref: dict, ns: str | None) -> tuple[str, int] | None:
        """Any other controller that serves a scale subresource (upstream's last finder)."""
        if ref.get("kind") in ("ReplicaSet", "StatefulSet", "ReplicationController"):
            return None  # known kinds were judged above: a miss there is final
        try:
            res = Resource.of(ref.get("apiVersion") or "", ref.get("kind") or "")
        except KeyError:
            return None
        try:
            scale = await self.client.get(res, ref.get("name"), ns, subresource="scale")
        except StatusError as e:
            if e.code in (404, 405):
                return None  # gone, or a kind without a scale subresource
            raise
        if (scale.get("metadata") or {}).get("uid") != ref.get("uid"):
            return None
        return ref["uid"], int((scale.get("spec") or {}).get("replicas") or 0)

    @staticmethod
    def _owned(informer: Any, ns: str | None, ref: dict) -> dict | None:
        obj = informer.get(ns, ref.get("name"))
        if obj is None or obj["metadata"].get("uid") != ref.get("uid"):
            return None
        return obj

    # ----- stale DisruptionTarget -----
    async def _clear_stale_disruption(self, key: str) -> None:
        ns, name = split_key(key)
        pod = self.pods.get(ns, name)
        if pod is None:
            return
        due = stale_disruption_due(pod)
        if due is None:
            return
        if due > time.time():
            self.queue.add_after(POD_KEY + key, due - time.time())
            return
        new = copy.deepcopy(with_kind(pod, "v1", "Pod"))
        for c in new["status"]["conditions"]:
            if c.get("type") == "DisruptionTarget":
                c.update(status="False", lastTransitionTime=now_rfc3339())
                c.pop("reason", None)
                c.pop("message", None)
        log.info("disruption: pod %s was marked for disruption but not deleted; clearing", key)
        await self.client.update(self.PODS, new, subresource="status")


def _replicas(obj: dict) -> int:
    r = (obj.get("spec") or {}).get("replicas")
    return 1 if r is None else int(r)
