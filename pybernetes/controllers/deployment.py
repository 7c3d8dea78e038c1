"""Deployment controller: rolls a pod template out through ReplicaSets.

Each reconcile claims the deployment's ReplicaSets, finds (or creates) the one whose
template matches, scales new and old sets within maxSurge/maxUnavailable (or all old
to zero first for Recreate), prunes history and writes status and conditions."""
from __future__ import annotations

import copy
import logging
import time
from typing import Any

from pybernetes.client.api import DEPLOYMENTS, PODS, REPLICASETS
from pybernetes.controllers import rollout as ru
from pybernetes.controllers.base import (Controller, controller_ref, new_controller_ref,
                                         object_key, parse_time, split_key)
from pybernetes.controllers.replicaset import labels_of, selector_of
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)


class DeploymentController(Controller):
    name = "deployment"
    workers = 5

    def setup(self) -> None:
        self.d_informer = self.informers.get(DEPLOYMENTS)
        self.rs_informer = self.informers.get(REPLICASETS)
        self.pod_informer = self.informers.get(PODS)
        self.d_informer.add_handler(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n),
                                    on_delete=self.enqueue)
        self.rs_informer.add_handler(on_add=self._rs_changed,
                                     on_update=lambda o, n: self._rs_updated(o, n),
                                     on_delete=self._rs_changed)
        self.pod_informer.add_handler(on_delete=self._pod_deleted)

    # ----- event handlers -----
    def _owner(self, obj: dict) -> dict | None:
        ref = controller_ref(obj)
        if not ref or ref.get("kind") != "Deployment":
            return None
        d = self.d_informer.get(obj["metadata"].get("namespace"), ref.get("name"))
        return d if d and d["metadata"].get("uid") == ref.get("uid") else None

    def _rs_changed(self, rs: dict) -> None:
        d = self._owner(rs)
        if d is not None:
            self.enqueue(d)
        elif controller_ref(rs) is None:
            for d in self.d_informer.list(rs["metadata"].get("namespace")):
                if selector_of(d).matches(labels_of(rs)):
                    self.enqueue(d)

    def _rs_updated(self, old: dict, new: dict) -> None:
        old_owner = self._owner(old)
        if old_owner is not None and controller_ref(old) != controller_ref(new):
            self.enqueue(old_owner)
        self._rs_changed(new)

    def _pod_deleted(self, pod: dict) -> None:
        """Recreate waits for old pods to be gone: their deletion is news."""
        ref = controller_ref(pod)
        if not ref or ref.get("kind") != "ReplicaSet":
            return
        rs = self.rs_informer.get(pod["metadata"].get("namespace"), ref.get("name"))
        d = self._owner(rs) if rs else None
        if d is not None and not ru.is_rolling(d):
            self.enqueue(d)

    # ----- reconcile -----
    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        cached = self.d_informer.get(ns, name)
        if cached is None:
            return
        d = copy.deepcopy(cached)
        d["apiVersion"], d["kind"] = "apps/v1", "Deployment"  # list items may lack them
        sel = (d.get("spec") or {}).get("selector")
        if not sel or not (sel.get("matchLabels") or sel.get("matchExpressions")):
            if d["metadata"].get("generation", 0) != (d.get("status") or {}).get("observedGeneration"):
                d.setdefault("status", {})["observedGeneration"] = d["metadata"].get("generation", 0)
                await self._write_status(d)
            return
        rss = await self._claim_replica_sets(d)
        if d["metadata"].get("deletionTimestamp"):
            await self._sync_status_only(d, rss)
            return
        await self._check_paused_conditions(d)
        if (d.get("spec") or {}).get("paused"):
            await self._sync(d, rss)
            return
        if self._is_scaling_event(d, rss):
            await self._sync(d, rss)
            return
        if ru.is_rolling(d):
            await self._rollout_rolling(d, rss)
        else:
            await self._rollout_recreate(d, rss)

    async def _claim_replica_sets(self, d: dict) -> list[dict]:
        sel, uid = selector_of(d), d["metadata"]["uid"]
        deleting = bool(d["metadata"].get("deletionTimestamp"))
        owned = []
        for rs in self.rs_informer.list(d["metadata"]["namespace"]):
            ref = controller_ref(rs)
            matches = sel.matches(labels_of(rs))
            if ref is not None and ref.get("uid") != uid:
                continue
            if ref is not None:
                if matches or deleting:
                    owned.append(rs)
                else:
                    await self._patch_refs(REPLICASETS, rs, [
                        r for r in rs["metadata"].get("ownerReferences", []) if r.get("uid") != uid])
                continue
            if not matches or deleting or rs["metadata"].get("deletionTimestamp"):
                continue
            refs = list(rs["metadata"].get("ownerReferences") or []) + [new_controller_ref(d)]
            adopted = await self._patch_refs(REPLICASETS, rs, refs)
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
                return None
            raise

    def _is_scaling_event(self, d: dict, rss: list[dict]) -> bool:
        new_rs, old_rss = self._split(d, rss)
        for rs in [r for r in [new_rs] + old_rss if r and ru.spec_replicas(r) > 0]:
            desired = (rs["metadata"].get("annotations") or {}).get(ru.DESIRED_REPLICAS)
            if desired is not None and desired != str(ru.spec_replicas(d)):
                return True
        return False

    @staticmethod
    def _split(d: dict, rss: list[dict]) -> tuple[dict | None, list[dict]]:
        """(the ReplicaSet running d's template — the oldest if several, old ones)."""
        tpl = (d.get("spec") or {}).get("template")
        new_rs = next((rs for rs in ru.by_creation(rss)
                       if ru.same_template((rs.get("spec") or {}).get("template"), tpl)), None)
        return new_rs, [rs for rs in rss if rs is not new_rs]

    # ----- new ReplicaSet and revisions -----
    async def _new_and_old(self, d: dict, rss: list[dict], create: bool
                           ) -> tuple[dict | None, list[dict]]:
        new_rs, old_rss = self._split(d, rss)
        new_revision = max((ru.revision_of(rs) for rs in old_rss), default=0) + 1
        if new_rs is not None:
            return await self._sync_existing_new_rs(d, new_rs, new_revision), old_rss
        if not create:
            return None, old_rss
        return await self._create_new_rs(d, old_rss, new_revision), old_rss

    async def _sync_existing_new_rs(self, d: dict, rs: dict, new_revision: int) -> dict:
        rs = copy.deepcopy(rs)
        changed_rs = ru.set_new_rs_annotations(d, rs, new_revision, exists=True)
        min_ready = (d.get("spec") or {}).get("minReadySeconds", 0)
        if rs["spec"].get("minReadySeconds", 0) != min_ready:
            rs["spec"]["minReadySeconds"] = min_ready
            changed_rs = True
        if changed_rs:
            rs = await self.client.update(REPLICASETS, rs)
        changed = await self._set_deployment_revision(d, rs)
        if ru.progress_deadline(d) is not None and ru.get_condition(d.get("status") or {},
                                                                     "Progressing") is None:
            ru.set_condition(d.setdefault("status", {}), ru.new_condition(
                "Progressing", "True", "FoundNewReplicaSet",
                f'Found new replica set "{rs["metadata"]["name"]}"'))
            changed = True
        if changed:
            await self._write_status(d)
        return rs

    async def _set_deployment_revision(self, d: dict, rs: dict) -> bool:
        """The deployment carries its newest revision in an annotation."""
        rev = (rs["metadata"].get("annotations") or {}).get(ru.REVISION)
        ann = d["metadata"].get("annotations") or {}
        if not rev or ann.get(ru.REVISION) == rev:
            return False
        # through /status, as upstream: an annotation change on the main resource
        # would bump the Deployment's generation
        patched = await self.client.patch(
            DEPLOYMENTS, d["metadata"]["name"],
            {"metadata": {"annotations": {ru.REVISION: rev}}}, namespace=d["metadata"]["namespace"],
            subresource="status")
        d["metadata"] = patched["metadata"]
        return False

    async def _create_new_rs(self, d: dict, old_rss: list[dict], new_revision: int) -> dict | None:
        status = d.get("status") or {}
        collisions = status.get("collisionCount")
        tpl = copy.deepcopy(d["spec"]["template"])
        h = ru.template_hash(tpl, collisions)
        tpl.setdefault("metadata", {}).setdefault("labels", {})[ru.HASH_LABEL] = h
        sel = copy.deepcopy(d["spec"]["selector"])
        sel.setdefault("matchLabels", {})[ru.HASH_LABEL] = h
        name = f"{d['metadata']['name']}-{h}"
        rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
              "metadata": {"name": name, "namespace": d["metadata"]["namespace"],
                           "labels": dict(tpl["metadata"]["labels"]),
                           "ownerReferences": [new_controller_ref(d)]},
              "spec": {"replicas": 0, "minReadySeconds": d["spec"].get("minReadySeconds", 0),
                       "selector": sel, "template": tpl}}
        rs["spec"]["replicas"] = ru.new_rs_replicas(d, old_rss + [rs], rs)
        ru.set_new_rs_annotations(d, rs, new_revision, exists=False)
        try:
            created = await self.client.create(REPLICASETS, rs, namespace=d["metadata"]["namespace"])
        except StatusError as e:
            if e.reason == "AlreadyExists":
                return await self._on_collision(d, name)
            if ru.progress_deadline(d) is not None:
                msg = f'Failed to create new replica set "{name}": {e.message}'
                ru.set_condition(d.setdefault("status", {}), ru.new_condition(
                    "Progressing", "False", "ReplicaSetCreateError", msg))
                await self._write_status(d)
            self.recorder.event(d, "Warning", "FailedCreate", f"Failed to create new replica set "
                                f'"{name}": {e.message}')
            raise
        n = ru.spec_replicas(created)
        if n > 0:
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled up replica set {name} from 0 to {n}")
        await self._set_deployment_revision(d, created)
        if ru.progress_deadline(d) is not None:
            ru.set_condition(d.setdefault("status", {}), ru.new_condition(
                "Progressing", "True", "NewReplicaSetCreated", f'Created new replica set "{name}"'))
            await self._write_status(d)
        return created

    async def _on_collision(self, d: dict, name: str) -> dict | None:
        """A ReplicaSet of that name exists: ours with the same template is the new one;
        anything else is a hash collision, so bump collisionCount and retry."""
        existing = await self.client.get(REPLICASETS, name, namespace=d["metadata"]["namespace"])
        ref = controller_ref(existing)
        if (ref and ref.get("uid") == d["metadata"]["uid"]
                and ru.same_template(existing["spec"].get("template"), d["spec"]["template"])):
            return existing
        status = d.setdefault("status", {})
        status["collisionCount"] = int(status.get("collisionCount") or 0) + 1
        await self._write_status(d)
        raise RuntimeError(f"hash collision for ReplicaSet {name}; collisionCount now "
                           f"{status['collisionCount']}")

    # ----- scaling -----
    async def _scale(self, d: dict, rs: dict, size: int) -> dict:
        old_size = ru.spec_replicas(rs)
        new = copy.deepcopy(rs)
        ann_changed = ru.set_replicas_annotations(new, ru.spec_replicas(d),
                                                  ru.spec_replicas(d) + ru.max_surge(d))
        if old_size == size and not ann_changed:
            return rs
        new["spec"]["replicas"] = size
        new = await self.client.update(REPLICASETS, new)
        if old_size != size:
            verb = "up" if size > old_size else "down"
            log.info("deployment %s/%s: scaled %s replica set %s from %d to %d",
                     d["metadata"]["namespace"], d["metadata"]["name"], verb,
                     rs["metadata"]["name"], old_size, size)
            self.recorder.event(d, "Normal", "ScalingReplicaSet",
                                f"Scaled {verb} replica set {rs['metadata']['name']} "
                                f"from {old_size} to {size}")
        return new

    async def _apply_sizes(self, d: dict, rss: list[dict], sizes: dict[str, int]) -> list[dict]:
        out = []
        for rs in rss:
            size = sizes.get(rs["metadata"]["name"])
            out.append(await self._scale(d, rs, size) if size is not None else rs)
        return out

    async def _scale_to_desired(self, d: dict, new_rs: dict | None, old_rss: list[dict]) -> None:
        """Upstream's scale(): follow spec.replicas when it changed outside a rollout."""
        active = [rs for rs in ([new_rs] if new_rs else []) + old_rss if ru.spec_replicas(rs) > 0]
        if len(active) <= 1:
            target = active[0] if active else (new_rs or (ru.by_creation(old_rss)[-1]
                                                          if old_rss else None))
            if target is not None:
                await self._scale(d, target, ru.spec_replicas(d))
            return
        want = ru.spec_replicas(d)
        if new_rs and ru.spec_replicas(new_rs) == want and \
                ru.status_int(new_rs, "availableReplicas") >= want:
            await self._apply_sizes(d, old_rss, {rs["metadata"]["name"]: 0 for rs in old_rss})
            return
        if ru.is_rolling(d):
            await self._apply_sizes(d, active, ru.plan_proportional(d, active))

    # ----- strategies -----
    async def _rollout_rolling(self, d: dict, rss: list[dict]) -> None:
        new_rs, old_rss = await self._new_and_old(d, rss, create=True)
        if new_rs is None:
            return
        want = ru.new_rs_replicas(d, old_rss + [new_rs], new_rs)
        if ru.spec_replicas(new_rs) > ru.spec_replicas(d):
            want = ru.spec_replicas(d)
        if want != ru.spec_replicas(new_rs):
            new_rs = await self._scale(d, new_rs, want)
            await self._sync_rollout_status(d, old_rss + [new_rs], new_rs)
            return
        if await self._scale_down_old(d, new_rs, old_rss):
            return
        if ru.is_complete(d, d.get("status") or {}):
            await self._cleanup(d, old_rss)
        await self._sync_rollout_status(d, old_rss + [new_rs], new_rs)

    async def _scale_down_old(self, d: dict, new_rs: dict, old_rss: list[dict]) -> bool:
        active_old = [rs for rs in old_rss if ru.spec_replicas(rs) > 0]
        if not active_old:
            return False
        budget = ru.max_old_scale_down(d, old_rss + [new_rs], new_rs)
        if budget <= 0:
            return False
        sizes = ru.plan_cleanup_unhealthy(active_old, budget)
        old_rss = await self._apply_sizes(d, old_rss, sizes)
        cleaned = bool(sizes)
        sizes = ru.plan_scale_down_old(d, old_rss + [new_rs], old_rss)
        old_rss = await self._apply_sizes(d, old_rss, sizes)
        if cleaned or sizes:
            await self._sync_rollout_status(d, old_rss + [new_rs], new_rs)
            return True
        return False

    async def _rollout_recreate(self, d: dict, rss: list[dict]) -> None:
        new_rs, old_rss = await self._new_and_old(d, rss, create=False)
        active_old = [rs for rs in old_rss if ru.spec_replicas(rs) > 0]
        if active_old:
            old_rss = await self._apply_sizes(d, old_rss, {rs["metadata"]["name"]: 0
                                                           for rs in active_old})
            await self._sync_rollout_status(d, old_rss + ([new_rs] if new_rs else []), new_rs)
            return
        if self._old_pods_running(old_rss):
            await self._sync_rollout_status(d, old_rss + ([new_rs] if new_rs else []), new_rs)
            return
        if new_rs is None:
            new_rs, old_rss = await self._new_and_old(d, rss, create=True)
            if new_rs is None:
                return
        new_rs = await self._scale(d, new_rs, ru.spec_replicas(d))
        if ru.is_complete(d, d.get("status") or {}):
            await self._cleanup(d, old_rss)
        await self._sync_rollout_status(d, old_rss + [new_rs], new_rs)

    def _old_pods_running(self, old_rss: list[dict]) -> bool:
        if sum(ru.status_int(rs, "replicas") for rs in old_rss) > 0:
            return True
        uids = {rs["metadata"]["uid"] for rs in old_rss}
        for rs in old_rss:
            for pod in self.pod_informer.by_index("namespace", rs["metadata"]["namespace"]):
                if (controller_ref(pod) or {}).get("uid") in uids and \
                        (pod.get("status") or {}).get("phase") not in ("Succeeded", "Failed"):
                    return True
            break
        return False

    async def _sync(self, d: dict, rss: list[dict]) -> None:
        """Scaling or paused: follow replicas, keep revisions, no new rollout."""
        new_rs, old_rss = await self._new_and_old(d, rss, create=False)
        await self._scale_to_desired(d, new_rs, old_rss)
        if (d.get("spec") or {}).get("paused"):
            await self._cleanup(d, old_rss)
        await self._sync_status_only(d, self._current(d, rss))

    def _current(self, d: dict, rss: list[dict]) -> list[dict]:
        """The claimed sets as the cache sees them now (after our own updates)."""
        out = []
        for rs in rss:
            fresh = self.rs_informer.get(rs["metadata"]["namespace"], rs["metadata"]["name"])
            out.append(fresh if fresh is not None else rs)
        return out

    async def _sync_status_only(self, d: dict, rss: list[dict]) -> None:
        new_rs, _ = self._split(d, rss)
        status = ru.calculate_status(d, rss, new_rs)
        if not _same(d.get("status") or {}, status):
            d["status"] = status
            await self._write_status(d)

    async def _check_paused_conditions(self, d: dict) -> None:
        if ru.progress_deadline(d) is None:
            return
        status = d.setdefault("status", {})
        cond = ru.get_condition(status, "Progressing")
        if cond and cond.get("reason") == "ProgressDeadlineExceeded":
            return
        paused = bool((d.get("spec") or {}).get("paused"))
        if paused and (cond is None or cond.get("reason") != "DeploymentPaused"):
            ru.set_condition(status, ru.new_condition("Progressing", "Unknown", "DeploymentPaused",
                                                      "Deployment is paused"))
        elif not paused and cond and cond.get("reason") == "DeploymentPaused":
            ru.set_condition(status, ru.new_condition("Progressing", "Unknown", "DeploymentResumed",
                                                      "Deployment is resumed"))
        else:
            return
        await self._write_status(d)

    async def _sync_rollout_status(self, d: dict, all_rss: list[dict], new_rs: dict | None) -> None:
        status = ru.calculate_status(d, all_rss, new_rs)
        deadline = ru.progress_deadline(d)
        if deadline is None:
            ru.remove_condition(status, "Progressing")
        cur = ru.get_condition(status, "Progressing")
        complete = (status.get("replicas", 0) == status.get("updatedReplicas", 0)
                    and cur is not None and cur.get("reason") == "NewReplicaSetAvailable")
        if deadline is not None and not complete and new_rs is not None:
            name = new_rs["metadata"]["name"]
            if ru.is_complete(d, status):
                ru.set_condition(status, ru.new_condition(
                    "Progressing", "True", "NewReplicaSetAvailable",
                    f'ReplicaSet "{name}" has successfully progressed.'))
            elif ru.is_progressing(d, status):
                cond = ru.new_condition("Progressing", "True", "ReplicaSetUpdated",
                                        f'ReplicaSet "{name}" is progressing.')
                if cur and cur.get("status") == "True":
                    cond["lastTransitionTime"] = cur.get("lastTransitionTime")
                ru.remove_condition(status, "Progressing")
                ru.set_condition(status, cond)
            elif ru.timed_out(d, status):
                ru.set_condition(status, ru.new_condition(
                    "Progressing", "False", "ProgressDeadlineExceeded",
                    f'ReplicaSet "{name}" has timed out progressing.'))
        if _same(d.get("status") or {}, status):
            self._requeue_stuck(d, status)
            return
        d["status"] = status
        await self._write_status(d)

    def _requeue_stuck(self, d: dict, status: dict) -> None:
        """Check again when the progress deadline would pass."""
        deadline = ru.progress_deadline(d)
        cond = ru.get_condition(status, "Progressing")
        if deadline is None or cond is None or cond.get("reason") in (
                "NewReplicaSetAvailable", "ProgressDeadlineExceeded"):
            return
        since = parse_time(cond.get("lastUpdateTime"))
        if since is None:
            return
        after = since + deadline - time.time()
        self.queue.add_after(object_key(d), max(after, 1.0))

    async def _cleanup(self, d: dict, old_rss: list[dict]) -> None:
        """Keep revisionHistoryLimit old ReplicaSets; delete the oldest empty ones."""
        limit = (d.get("spec") or {}).get("revisionHistoryLimit")
        if limit is None:
            return
        alive = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
        extra = len(alive) - int(limit)
        if extra <= 0:
            return
        alive.sort(key=lambda r: (ru.revision_of(r), r["metadata"].get("creationTimestamp", "")))
        for rs in alive[:extra]:
            md = rs["metadata"]
            if (ru.status_int(rs, "replicas") or ru.spec_replicas(rs)
                    or md.get("generation", 0) > ru.status_int(rs, "observedGeneration")):
                continue
            try:
                await self.client.delete(REPLICASETS, md["name"], namespace=md["namespace"],
                                         preconditions={"uid": md["uid"]})
            except StatusError as e:
                if e.code not in (404, 409):
                    raise

    async def _write_status(self, d: dict) -> None:
        try:
            updated = await self.client.update(DEPLOYMENTS, d, subresource="status")
        except StatusError as e:
            if e.code == 404:
                return
            raise
        d["metadata"] = updated["metadata"]


def _same(a: dict, b: dict) -> bool:
    def strip(s: dict) -> dict:
        return {k: v for k, v in s.items() if v not in (0, None, [], {})}
    return strip(a) == strip(b)
