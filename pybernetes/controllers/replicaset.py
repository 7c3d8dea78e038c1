"""ReplicaSet controller: keeps spec.replicas active pods matching the selector.

Level-triggered: each reconcile claims pods (adopt matching orphans, release owned
pods that stopped matching), creates or deletes the difference, and writes status.
Expectations stop it counting again before the watch has shown its own writes."""
from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Any

from pybernetes.client.api import PODS, REPLICASETS
from pybernetes.controllers import pods as podutil
from pybernetes.controllers.base import (Controller, Expectations, controller_ref,
                                         new_controller_ref, object_key, split_key)
from pybernetes.machinery.errors import StatusError
from pybernetes.machinery.selectors import LabelSelector

log = logging.getLogger(__name__)

BURST_REPLICAS = 500  # upstream: at most this many creates/deletes per sync


def selector_of(rs: dict) -> LabelSelector:
    try:
        return LabelSelector.from_api((rs.get("spec") or {}).get("selector"))
    except StatusError:
        return LabelSelector.nothing_selector()


def labels_of(obj: dict) -> dict:
    return (obj.get("metadata") or {}).get("labels") or {}


def pod_from_template(rs: dict) -> dict:
    """A pod for `rs`: its template, a generated name and a controllerRef."""
    tpl = copy.deepcopy((rs.get("spec") or {}).get("template") or {})
    md = tpl.get("metadata") or {}
    meta: dict[str, Any] = {"generateName": f"{rs['metadata']['name']}-",
                            "namespace": rs["metadata"]["namespace"],
                            "ownerReferences": [new_controller_ref(rs)]}
    for k in ("labels", "annotations", "finalizers"):
        if md.get(k):
            meta[k] = md[k]
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": tpl.get("spec") or {}}


def calculate_status(rs: dict, pods: list[dict], create_error: str = "",
                     now: float | None = None) -> dict:
    """The status a ReplicaSet with these (active, owned) pods should report."""
    spec = rs.get("spec") or {}
    tpl_labels = ((spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready = int(spec.get("minReadySeconds") or 0)
    now = time.time() if now is None else now
    full = sum(1 for p in pods if all(labels_of(p).get(k) == v for k, v in tpl_labels.items()))
    ready = sum(1 for p in pods if podutil.is_ready(p))
    available = sum(1 for p in pods if podutil.is_available(p, min_ready, now))
    old = rs.get("status") or {}
    status: dict[str, Any] = {"replicas": len(pods)}
    for key, n in (("fullyLabeledReplicas", full), ("readyReplicas", ready),
                   ("availableReplicas", available)):
        if n:
            status[key] = n
    status["observedGeneration"] = (rs.get("metadata") or {}).get("generation", 0)
    conditions = [c for c in old.get("conditions") or [] if c.get("type") != "ReplicaFailure"]
    failure = next((c for c in old.get("conditions") or [] if c.get("type") == "ReplicaFailure"),
                   None)
    if create_error:
        conditions.append(failure or {"type": "ReplicaFailure", "status": "True",
                                      "lastTransitionTime": _now(), "reason": "FailedCreate",
                                      "message": create_error})
    if conditions:
        status["conditions"] = conditions
    return status


def _now() -> str:
    from pybernetes.controllers.base import now_rfc3339
    return now_rfc3339()


class ReplicaSetController(Controller):
    name = "replicaset"
    workers = 5

    def setup(self) -> None:
        self.expectations = Expectations()
        self.rs_informer = self.informers.get(REPLICASETS)
        self.pod_informer = self.informers.get(PODS)
        self.rs_informer.add_handler(on_add=self.enqueue, on_update=self._rs_updated,
                                     on_delete=self._rs_deleted)
        self.pod_informer.add_handler(on_add=self._pod_added, on_update=self._pod_updated,
                                      on_delete=self._pod_deleted)

    # ----- event handlers: only enqueue keys -----
    def _rs_updated(self, old: dict, new: dict) -> None:
        self.enqueue(new)

    def _rs_deleted(self, rs: dict) -> None:
        self.expectations.forget(object_key(rs))
        self.enqueue(rs)

    def _owner_key(self, pod: dict) -> str | None:
        ref = controller_ref(pod)
        if not ref or ref.get("kind") != "ReplicaSet":
            return None
        ns = pod["metadata"].get("namespace")
        rs = self.rs_informer.get(ns, ref.get("name"))
        if rs is None or rs["metadata"].get("uid") != ref.get("uid"):
            return None
        return object_key(rs)

    def _enqueue_matching(self, pod: dict) -> None:
        """An orphan: every ReplicaSet that could adopt it gets a look."""
        ns = pod["metadata"].get("namespace")
        for rs in self.rs_informer.list(ns):
            if selector_of(rs).matches(labels_of(pod)):
                self.enqueue(rs)

    def _pod_added(self, pod: dict) -> None:
        if pod["metadata"].get("deletionTimestamp"):
            self._pod_deleted(pod)
            return
        key = self._owner_key(pod)
        if key:
            self.expectations.creation_observed(key)
            self.queue.add(key)
        elif controller_ref(pod) is None:
            self._enqueue_matching(pod)

    def _pod_updated(self, old: dict, new: dict) -> None:
        if old["metadata"].get("resourceVersion") == new["metadata"].get("resourceVersion"):
            return  # a resync
        if new["metadata"].get("deletionTimestamp") and not old["metadata"].get("deletionTimestamp"):
            self._pod_deleted(new)
            return
        old_key, key = self._owner_key(old), self._owner_key(new)
        if old_key and old_key != key:
            self.queue.add(old_key)
        if key:
            self.queue.add(key)
            rs = self.rs_informer.get(*split_key(key))
            min_ready = int(((rs or {}).get("spec") or {}).get("minReadySeconds") or 0)
            if min_ready and not podutil.is_ready(old) and podutil.is_ready(new):
                self.queue.add_after(key, min_ready + 1)  # re-check availability
        elif controller_ref(new) is None and (labels_of(old) != labels_of(new) or old_key):
            self._enqueue_matching(new)

    def _pod_deleted(self, pod: dict) -> None:
        key = self._owner_key(pod)
        if key:
            self.expectations.deletion_observed(key)
            self.queue.add(key)

    # ----- reconcile -----
    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        rs = self.rs_informer.get(ns, name)
        if rs is None:
            self.expectations.forget(key)
            return
        rs = {**rs, "apiVersion": "apps/v1", "kind": "ReplicaSet"}  # list items may lack them
        pods = await self._claim_pods(rs)
        active = [p for p in pods if podutil.is_active(p)]
        create_error = ""
        if self.expectations.satisfied(key) and not rs["metadata"].get("deletionTimestamp"):
            create_error = await self._manage_replicas(key, rs, active)
        await self._update_status(rs, calculate_status(rs, active, create_error))
        min_ready = int((rs.get("spec") or {}).get("minReadySeconds") or 0)
        ready = sum(1 for p in active if podutil.is_ready(p))
        available = sum(1 for p in active if podutil.is_available(p, min_ready))
        if min_ready and ready != available:
            self.queue.add_after(key, min_ready)

    async def _claim_pods(self, rs: dict) -> list[dict]:
        """Pods this ReplicaSet controls after adopting matching orphans and releasing
        owned pods that no longer match (as upstream's PodControllerRefManager)."""
        sel, uid = selector_of(rs), rs["metadata"]["uid"]
        deleting = bool(rs["metadata"].get("deletionTimestamp"))
        owned = []
        for pod in self.pod_informer.by_index("namespace", rs["metadata"]["namespace"]):
            ref = controller_ref(pod)
            matches = sel.matches(labels_of(pod))
            if ref is not None and ref.get("uid") != uid:
                continue
            if ref is not None:
                if matches or deleting:
                    owned.append(pod)
                else:
                    await self._patch_refs(PODS, pod, [r for r in _refs(pod) if r.get("uid") != uid])
                continue
            if not matches or deleting or pod["metadata"].get("deletionTimestamp"):
                continue
            adopted = await self._patch_refs(PODS, pod, _refs(pod) + [new_controller_ref(rs)])
            if adopted is not None:
                owned.append(adopted)
        return owned

    async def _patch_refs(self, res: Any, obj: dict, refs: list[dict]) -> dict | None:
        md = obj["metadata"]
        body = {"metadata": {"ownerReferences": refs or None, "resourceVersion": md["resourceVersion"]}}
        try:
            return await self.client.patch(res, md["name"], body, namespace=md.get("namespace"))
        except StatusError as e:
            if e.code in (404, 409):
                return None  # gone or changed: the next sync sees the new state
            raise

    async def _manage_replicas(self, key: str, rs: dict, active: list[dict]) -> str:
        diff = len(active) - int((rs.get("spec") or {}).get("replicas", 1))
        if diff < 0:
            return await self._create_pods(key, rs, min(-diff, BURST_REPLICAS))
        if diff > 0:
            await self._delete_pods(key, rs, active, min(diff, BURST_REPLICAS))
        return ""

    async def _create_pods(self, key: str, rs: dict, count: int) -> str:
        log.info("replicaset %s: creating %d pod(s)", key, count)
        self.expectations.expect(key, adds=count)
        pending = count
        for batch in podutil.slow_start_batches(count):
            results = await asyncio.gather(*(self._create_one(rs, PODS) for _ in range(batch)))
            errors = [r for r in results if r]
            pending -= batch
            for _ in errors:
                self.expectations.creation_observed(key)  # never coming
            if errors:
                for _ in range(pending):  # the rest of the batches are skipped
                    self.expectations.creation_observed(key)
                return errors[0]
        return ""

    async def _create_one(self, rs: dict, pods_res: Any) -> str:
        ns = rs["metadata"]["namespace"]
        try:
            pod = await self.client.create(pods_res, pod_from_template(rs), namespace=ns)
        except StatusError as e:
            if e.reason == "Forbidden" and "being terminated" in e.message:
                return e.message  # namespace going away: no event, as upstream
            self.recorder.event(rs, "Warning", "FailedCreate", f"Error creating: {e.message}")
            return e.message
        self.recorder.event(rs, "Normal", "SuccessfulCreate",
                            f"Created pod: {pod['metadata']['name']}")
        return ""

    async def _delete_pods(self, key: str, rs: dict, active: list[dict], count: int) -> None:
        related = self._related_pods(rs)
        victims = podutil.pods_to_delete(active, count, related)
        log.info("replicaset %s: deleting %s", key, ", ".join(p["metadata"]["name"] for p in victims))
        self.expectations.expect(key, dels=len(victims))

        async def delete(pod: dict) -> None:
            md = pod["metadata"]
            try:
                await self.client.delete(PODS, md["name"], namespace=md["namespace"],
                                         preconditions={"uid": md["uid"]})
            except StatusError as e:
                self.expectations.deletion_observed(key)
                if e.code not in (404, 409):
                    self.recorder.event(rs, "Warning", "FailedDelete",
                                        f"Error deleting: {e.message}")
                    raise
                return
            self.recorder.event(rs, "Normal", "SuccessfulDelete", f"Deleted pod: {md['name']}")

        results = await asyncio.gather(*(delete(p) for p in victims), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                raise r

    def _related_pods(self, rs: dict) -> list[dict]:
        """Active pods of ReplicaSets with the same controller (siblings of a Deployment)."""
        owner = controller_ref(rs)
        ns = rs["metadata"]["namespace"]
        if owner is None:
            return []
        uids = {r["metadata"]["uid"] for r in self.rs_informer.list(ns)
                if (controller_ref(r) or {}).get("uid") == owner.get("uid")}
        return [p for p in self.pod_informer.by_index("namespace", ns)
                if podutil.is_active(p) and (controller_ref(p) or {}).get("uid") in uids]

    async def _update_status(self, rs: dict, status: dict) -> None:
        if _same_status(rs.get("status") or {}, status):
            return
        new = copy.deepcopy(rs)
        new["status"] = status
        try:
            await self.client.update(REPLICASETS, new, subresource="status")
        except StatusError as e:
            if e.code == 404:
                return
            raise


def _same_status(a: dict, b: dict) -> bool:
    def strip(s: dict) -> dict:
        return {k: v for k, v in s.items() if v not in (0, None, [], {})}
    return strip(a) == strip(b)


def _refs(obj: dict) -> list[dict]:
    return list((obj.get("metadata") or {}).get("ownerReferences") or [])
