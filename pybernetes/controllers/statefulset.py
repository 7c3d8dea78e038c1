"""StatefulSet controller: pods with stable names `<set>-<ordinal>`, their PVCs from
volumeClaimTemplates, created in order (OrderedReady: each waits for the previous
to be Running and Ready) or all at once (Parallel), removed highest ordinal first,
and rolled to a new template from the highest ordinal down to `partition`.

Revisions are ControllerRevisions named `<set>-<hash>` (the pod-template hash of
rollout.template_hash); pods carry it in the controller-revision-hash label."""
from __future__ import annotations

import copy
import logging
from typing import Any

from pybernetes.client.api import PODS, Resource
from pybernetes.controllers import pods as podutil
from pybernetes.controllers.base import (Controller, controller_ref, new_controller_ref,
                                         split_key)
from pybernetes.controllers.rollout import template_hash
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

REVISION_LABEL = "controller-revision-hash"
POD_NAME_LABEL = "statefulset.kubernetes.io/pod-name"
INDEX_LABEL = "apps.kubernetes.io/pod-index"


def ordinal(sts_name: str, pod: dict) -> int | None:
    prefix, _, num = pod["metadata"]["name"].rpartition("-")
    return int(num) if prefix == sts_name and num.isdigit() else None


def revision_name(sts: dict) -> str:
    return f"{sts['metadata']['name']}-{template_hash(sts['spec']['template'])}"


def pod_for(sts: dict, i: int, revision: str, template: dict | None = None) -> dict:
    name = sts["metadata"]["name"]
    tpl = copy.deepcopy(template or sts["spec"]["template"])
    md = tpl.get("metadata") or {}
    labels = {**(md.get("labels") or {}), REVISION_LABEL: revision,
              POD_NAME_LABEL: f"{name}-{i}", INDEX_LABEL: str(i)}
    spec = tpl.get("spec") or {}
    spec["hostname"] = f"{name}-{i}"
    if sts["spec"].get("serviceName"):
        spec["subdomain"] = sts["spec"]["serviceName"]
    vols = [v for v in spec.get("volumes") or []]
    for vct in sts["spec"].get("volumeClaimTemplates") or []:
        claim = vct["metadata"]["name"]
        vols = [v for v in vols if v.get("name") != claim]
        vols.append({"name": claim, "persistentVolumeClaim": {"claimName": f"{claim}-{name}-{i}"}})
    if vols:
        spec["volumes"] = vols
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": f"{name}-{i}", "namespace": sts["metadata"]["namespace"],
                         "labels": labels, "annotations": dict(md.get("annotations") or {}),
                         "ownerReferences": [new_controller_ref(sts)]},
            "spec": spec}


def healthy(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running" and podutil.is_ready(pod) \
        and not pod["metadata"].get("deletionTimestamp")


class StatefulSetController(Controller):
    name = "statefulset"
    workers = 3

    def setup(self) -> None:
        self.STS = Resource.of("apps/v1", "statefulsets")
        self.REVS = Resource.of("apps/v1", "controllerrevisions")
        self.PVCS = Resource.of("v1", "persistentvolumeclaims")
        self.sts_informer = self.informers.get(self.STS)
        self.pod_informer = self.informers.get(PODS)
        self.sts_informer.add_handler(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n))
        self.pod_informer.add_handler(on_add=self._pod, on_update=lambda o, n: self._pod(n),
                                      on_delete=self._pod)

    def _pod(self, pod: dict) -> None:
        ref = controller_ref(pod)
        if ref and ref.get("kind") == "StatefulSet":
            self.queue.add(f"{pod['metadata']['namespace']}/{ref.get('name')}")

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        cached = self.sts_informer.get(ns, name)
        if cached is None or cached["metadata"].get("deletionTimestamp"):
            return
        sts = copy.deepcopy(cached)
        sts["apiVersion"], sts["kind"] = "apps/v1", "StatefulSet"
        update_rev = revision_name(sts)
        revs = await self._revisions(sts)
        if update_rev not in revs:
            revs[update_rev] = await self._save_revision(sts, update_rev, revs)
        current_rev = (sts.get("status") or {}).get("currentRevision") or update_rev
        pods = {o: p for p in self.pod_informer.by_index("namespace", ns or "")
                if (controller_ref(p) or {}).get("uid") == sts["metadata"]["uid"]
                and (o := ordinal(name, p)) is not None}
        await self._step(sts, pods, update_rev, current_rev, revs)
        await self._write_status(sts, pods, update_rev, current_rev)

    async def _revisions(self, sts: dict) -> dict[str, dict]:
        items = (await self.client.list(self.REVS, namespace=sts["metadata"]["namespace"])
                 ).get("items") or []
        return {r["metadata"]["name"]: r for r in items
                if (controller_ref(r) or {}).get("uid") == sts["metadata"]["uid"]}

    async def _save_revision(self, sts: dict, name: str, revs: dict[str, dict]) -> dict:
        number = max((int(r.get("revision", 0)) for r in revs.values()), default=0) + 1
        body = {"apiVersion": "apps/v1", "kind": "ControllerRevision",
                "metadata": {"name": name, "namespace": sts["metadata"]["namespace"],
                             "labels": dict(sts["spec"]["template"]["metadata"].get("labels") or {}),
                             "ownerReferences": [new_controller_ref(sts)]},
                "data": {"spec": {"template": sts["spec"]["template"]}}, "revision": number}
        try:
            return await self.client.create(self.REVS, body, namespace=sts["metadata"]["namespace"])
        except StatusError as e:
            if e.reason != "AlreadyExists":
                raise
            return await self.client.get(self.REVS, name, namespace=sts["metadata"]["namespace"])

    async def _step(self, sts: dict, pods: dict[int, dict], update_rev: str, current_rev: str,
                    revs: dict[str, dict]) -> None:
        """One move toward the goal; the next event brings the next move (OrderedReady)
        or all moves at once (Parallel)."""
        spec = sts["spec"]
        replicas = int(spec.get("replicas", 1))
        parallel = spec.get("podManagementPolicy") == "Parallel"
        partition = int(((spec.get("updateStrategy") or {}).get("rollingUpdate") or {})
                        .get("partition", 0) or 0)
        for i in range(replicas):  # create missing pods in order
            pod = pods.get(i)
            if pod is None:
                rev = update_rev if i >= partition else current_rev
                tpl = ((revs.get(rev) or {}).get("data") or {}).get("spec", {}).get("template")
                await self._create(sts, i, rev, tpl)
                if not parallel:
                    return
            elif (pod.get("status") or {}).get("phase") == "Failed":
                await self._delete(sts, pod)  # recreated on the next pass
                return
            elif not parallel and not healthy(pod):
                return  # wait for it before going on
        extra = sorted((o for o in pods if o >= replicas), reverse=True)
        for o in extra:  # condemned pods go highest first
            if not parallel and not all(healthy(p) for i, p in pods.items() if i < replicas):
                return
            if not pods[o]["metadata"].get("deletionTimestamp"):
                await self._delete(sts, pods[o])
            if not parallel:
                return
        if (spec.get("updateStrategy") or {}).get("type") == "OnDelete":
            return
        for o in sorted((o for o in pods if partition <= o < replicas), reverse=True):
            pod = pods[o]
            if pod["metadata"]["labels"].get(REVISION_LABEL) != update_rev:
                if not pod["metadata"].get("deletionTimestamp"):
                    await self._delete(sts, pod)
                return
            if not healthy(pod):
                return

    async def _create(self, sts: dict, i: int, rev: str, tpl: dict | None) -> None:
        ns = sts["metadata"]["namespace"]
        for vct in sts["spec"].get("volumeClaimTemplates") or []:
            claim = f"{vct['metadata']['name']}-{sts['metadata']['name']}-{i}"
            pvc = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "metadata": {"name": claim, "namespace": ns,
                                "labels": dict(sts["spec"]["selector"].get("matchLabels") or {})},
                   "spec": copy.deepcopy(vct.get("spec") or {})}
            try:
                await self.client.create(self.PVCS, pvc, namespace=ns)
                self.recorder.event(sts, "Normal", "SuccessfulCreate",
                                    f"create Claim {claim} Pod {sts['metadata']['name']}-{i} in "
                                    f"StatefulSet {sts['metadata']['name']} success")
            except StatusError as e:
                if e.reason != "AlreadyExists":
                    raise
        pod = pod_for(sts, i, rev, tpl)
        try:
            await self.client.create(PODS, pod, namespace=ns)
        except StatusError as e:
            if e.reason == "AlreadyExists":
                return
            self.recorder.event(sts, "Warning", "FailedCreate",
                                f"create Pod {pod['metadata']['name']} in StatefulSet "
                                f"{sts['metadata']['name']} failed error: {e.message}")
            raise
        self.recorder.event(sts, "Normal", "SuccessfulCreate",
                            f"create Pod {pod['metadata']['name']} in StatefulSet "
                            f"{sts['metadata']['name']} successful")

    async def _delete(self, sts: dict, pod: dict) -> None:
        try:
            await self.client.delete(PODS, pod["metadata"]["name"], namespace=pod["metadata"]["namespace"],
                                     preconditions={"uid": pod["metadata"]["uid"]})
        except StatusError as e:
            if e.code not in (404, 409):
                raise
            return
        self.recorder.event(sts, "Normal", "SuccessfulDelete",
                            f"delete Pod {pod['metadata']['name']} in StatefulSet "
                            f"{sts['metadata']['name']} successful")

    async def _write_status(self, sts: dict, pods: dict[int, dict], update_rev: str,
                            current_rev: str) -> None:
        replicas = int(sts["spec"].get("replicas", 1))
        live = [p for o, p in pods.items() if podutil.is_active(p)]
        updated = sum(1 for p in live if p["metadata"]["labels"].get(REVISION_LABEL) == update_rev)
        current = sum(1 for p in live if p["metadata"]["labels"].get(REVISION_LABEL) == current_rev)
        ready = sum(1 for p in live if podutil.is_ready(p))
        min_ready = int(sts["spec"].get("minReadySeconds") or 0)
        available = sum(1 for p in live if podutil.is_available(p, min_ready))
        if updated == replicas and len(live) == replicas and ready == replicas:
            current_rev, current = update_rev, updated  # the rollout is done
        status: dict[str, Any] = {
            "observedGeneration": sts["metadata"].get("generation", 0), "replicas": len(live),
            "readyReplicas": ready, "currentReplicas": current, "updatedReplicas": updated,
            "availableReplicas": available, "currentRevision": current_rev,
            "updateRevision": update_rev,
            "collisionCount": (sts.get("status") or {}).get("collisionCount", 0)}
        status = {k: v for k, v in status.items() if v not in (0, None) or k in (
            "replicas", "observedGeneration", "availableReplicas")}
        old = sts.get("status") or {}
        if {k: v for k, v in old.items() if v not in (0, None)} == \
                {k: v for k, v in status.items() if v not in (0, None)}:
            return
        sts["status"] = status
        try:
            await self.client.update(self.STS, sts, subresource="status")
        except StatusError as e:
            if e.code != 404:
                raise
