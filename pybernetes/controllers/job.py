"""Job controller: runs pods to `completions` successes, `parallelism` at a time,
failing the Job past `backoffLimit` failed pods or `activeDeadlineSeconds`, with
Indexed mode (one success per index 0..completions-1), suspend, and cleanup
`ttlSecondsAfterFinished` after it finished.

Simplifications against upstream (documented): finished pods are counted from the
cache (no job-tracking finalizers; counts never go down), and a failed pod is
replaced at once (no exponential backoff delay)."""
from __future__ import annotations

import asyncio
import copy
import logging
import time
from typing import Any

from pybernetes.client.api import PODS, Resource
from pybernetes.controllers import pods as podutil
from pybernetes.controllers.base import (Controller, Expectations, controller_ref,
                                         new_controller_ref, now_rfc3339, object_key, parse_time,
                                         split_key)
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"


def condition_true(job: dict, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True"
               for c in (job.get("status") or {}).get("conditions") or [])


def finished(job: dict) -> bool:
    return condition_true(job, "Complete") or condition_true(job, "Failed")


def pod_index(pod: dict) -> int | None:
    v = ((pod.get("metadata") or {}).get("annotations") or {}).get(INDEX_ANNOTATION)
    return int(v) if v is not None and v.isdigit() else None


def format_indexes(idx: set[int]) -> str:
    """Upstream's completedIndexes: "0-2,5,7-8"."""
    out, run = [], []
    for i in sorted(idx):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        out.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(out)


def wanted_active(job: dict, succeeded: int, indexes_left: int | None) -> int:
    spec = job.get("spec") or {}
    parallelism = int(spec.get("parallelism", 1) or 0)
    completions = spec.get("completions")
    if indexes_left is not None:
        return min(parallelism, indexes_left)
    if completions is None:  # a work queue: done once any pod succeeded
        return 0 if succeeded else parallelism
    return max(0, min(parallelism, int(completions) - succeeded))


def _cond(type_: str, reason: str, message: str) -> dict:
    now = now_rfc3339()
    return {"type": type_, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
            "reason": reason, "message": message}


class JobController(Controller):
    name = "job"
    workers = 3

    def setup(self) -> None:
        self.JOBS = Resource.of("batch/v1", "jobs")
        self.expectations = Expectations()
        self.job_informer = self.informers.get(self.JOBS)
        self.pod_informer = self.informers.get(PODS)
        self.job_informer.add_handler(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n),
                                      on_delete=lambda j: self.expectations.forget(object_key(j)))
        self.pod_informer.add_handler(on_add=self._pod_added,
                                      on_update=lambda o, n: self._owner(n),
                                      on_delete=self._pod_deleted)

    def _owner(self, pod: dict) -> str | None:
        ref = controller_ref(pod)
        if not ref or ref.get("kind") != "Job":
            return None
        key = f"{pod['metadata'].get('namespace')}/{ref.get('name')}"
        self.queue.add(key)
        return key

    def _pod_added(self, pod: dict) -> None:
        key = self._owner(pod)
        if key:
            self.expectations.creation_observed(key)

    def _pod_deleted(self, pod: dict) -> None:
        key = self._owner(pod)
        if key:
            self.expectations.deletion_observed(key)

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        cached = self.job_informer.get(ns, name)
        if cached is None:
            return
        job = copy.deepcopy(cached)
        job["apiVersion"], job["kind"] = "batch/v1", "Job"
        if finished(job):
            await self._cleanup_finished(key, job)
            return
        pods = [p for p in self.pod_informer.by_index("namespace", ns or "")
                if (controller_ref(p) or {}).get("uid") == job["metadata"]["uid"]]
        active = [p for p in pods if podutil.is_active(p)]
        phase = lambda p: (p.get("status") or {}).get("phase")  # noqa: E731
        status = job.setdefault("status", {})
        old_status = copy.deepcopy(status)
        succeeded = max(int(status.get("succeeded") or 0), sum(phase(p) == "Succeeded" for p in pods))
        failed = max(int(status.get("failed") or 0), sum(phase(p) == "Failed" for p in pods))
        status.setdefault("startTime", now_rfc3339())
        indexed = (job["spec"].get("completionMode") == "Indexed")
        done_idx = {i for p in pods if phase(p) == "Succeeded" and (i := pod_index(p)) is not None}
        failure = self._failure(job, failed)
        if failure:
            await self._delete_pods(job, active)
            active = []
            for type_ in ("FailureTarget", "Failed"):
                status.setdefault("conditions", []).append(_cond(type_, *failure))
            self.recorder.event(job, "Warning", failure[0], failure[1])
        elif self._complete(job, succeeded, done_idx, active):
            for type_ in ("SuccessCriteriaMet", "Complete"):
                status.setdefault("conditions", []).append(
                    _cond(type_, "CompletionsReached", "Reached expected number of succeeded pods"))
            status["completionTime"] = now_rfc3339()
            self.recorder.event(job, "Normal", "Completed", "Job completed")
        elif job["spec"].get("suspend"):
            await self._delete_pods(job, active)
            active = []
        elif self.expectations.satisfied(key):
            await self._manage(key, job, active, succeeded, done_idx if indexed else None)
        self._fill_status(status, active, succeeded, failed, done_idx if indexed else None)
        if status != old_status:
            await self.client.update(self.JOBS, job, subresource="status")
        deadline = job["spec"].get("activeDeadlineSeconds")
        if deadline and not finished(job):
            started = parse_time(status.get("startTime")) or time.time()
            self.queue.add_after(key, max(0.5, started + deadline - time.time()))

    def _failure(self, job: dict, failed: int) -> tuple[str, str] | None:
        spec, status = job["spec"], job.get("status") or {}
        if failed > int(spec.get("backoffLimit", 6)):
            return "BackoffLimitExceeded", "Job has reached the specified backoff limit"
        deadline = spec.get("activeDeadlineSeconds")
        started = parse_time(status.get("startTime"))
        if deadline is not None and started is not None and time.time() - started >= deadline:
            return "DeadlineExceeded", "Job was active longer than specified deadline"
        return None

    @staticmethod
    def _complete(job: dict, succeeded: int, done_idx: set[int], active: list[dict]) -> bool:
        completions = job["spec"].get("completions")
        if job["spec"].get("completionMode") == "Indexed":
            return len(done_idx) >= int(completions or 0)
        if completions is None:
            return succeeded > 0 and not active
        return succeeded >= int(completions)

    @staticmethod
    def _fill_status(status: dict, active: list[dict], succeeded: int, failed: int,
                     done_idx: set[int] | None) -> None:
        for k, v in (("active", len(active)), ("succeeded", succeeded), ("failed", failed)):
            if v:
                status[k] = v
            else:
                status.pop(k, None)
        status["ready"] = sum(1 for p in active if podutil.is_ready(p))
        if done_idx is not None:
            status["completedIndexes"] = format_indexes(done_idx)
            if not status["completedIndexes"]:
                status.pop("completedIndexes")

    async def _manage(self, key: str, job: dict, active: list[dict], succeeded: int,
                      done_idx: set[int] | None) -> None:
        left = None
        free: list[int] = []
        if done_idx is not None:
            running = {pod_index(p) for p in active}
            free = [i for i in range(int(job["spec"].get("completions") or 0))
                    if i not in done_idx and i not in running]
            left = len(free) + len(running)
        want = wanted_active(job, succeeded, left)
        if len(active) > want:
            await self._delete_pods(job, podutil.pods_to_delete(active, len(active) - want))
            return
        count = want - len(active)
        if count <= 0:
            return
        self.expectations.expect(key, adds=count)
        indexes = free[:count] if done_idx is not None else [None] * count
        for batch in podutil.slow_start_batches(count):
            chunk, indexes = indexes[:batch], indexes[batch:]
            errors = [e for e in await asyncio.gather(*(self._create(job, i) for i in chunk)) if e]
            for _ in errors:
                self.expectations.creation_observed(key)
            if errors:
                for _ in indexes:
                    self.expectations.creation_observed(key)
                return

    async def _create(self, job: dict, index: int | None) -> str:
        tpl = copy.deepcopy(job["spec"]["template"])
        md = tpl.get("metadata") or {}
        name = job["metadata"]["name"]
        meta: dict[str, Any] = {"generateName": f"{name}-" if index is None else f"{name}-{index}-",
                                "namespace": job["metadata"]["namespace"],
                                "labels": dict(md.get("labels") or {}),
                                "annotations": dict(md.get("annotations") or {}),
                                "ownerReferences": [new_controller_ref(job)]}
        spec = tpl.get("spec") or {}
        if index is not None:
            meta["annotations"][INDEX_ANNOTATION] = str(index)
            meta["labels"]["batch.kubernetes.io/job-completion-index"] = str(index)
            spec.setdefault("hostname", f"{name}-{index}")
        try:
            pod = await self.client.create(PODS, {"apiVersion": "v1", "kind": "Pod",
                                                  "metadata": meta, "spec": spec},
                                           namespace=job["metadata"]["namespace"])
        except StatusError as e:
            self.recorder.event(job, "Warning", "FailedCreate", f"Error creating: {e.message}")
            return e.message
        self.recorder.event(job, "Normal", "SuccessfulCreate",
                            f"Created pod: {pod['metadata']['name']}")
        return ""

    async def _delete_pods(self, job: dict, pods: list[dict]) -> None:
        for p in pods:
            try:
                await self.client.delete(PODS, p["metadata"]["name"],
                                         namespace=p["metadata"]["namespace"])
                self.recorder.event(job, "Normal", "SuccessfulDelete",
                                    f"Deleted pod: {p['metadata']['name']}")
            except StatusError as e:
                if e.code != 404:
                    raise

    async def _cleanup_finished(self, key: str, job: dict) -> None:
        ttl = job["spec"].get("ttlSecondsAfterFinished")
        if ttl is None:
            return
        status = job.get("status") or {}
        end = parse_time(status.get("completionTime")) or max(
            (parse_time(c.get("lastTransitionTime")) or 0.0
             for c in status.get("conditions") or []), default=0.0)
        wait = end + int(ttl) - time.time()
        if wait > 0:
            self.queue.add_after(key, wait + 0.1)
            return
        try:
            await self.client.delete(self.JOBS, job["metadata"]["name"],
                                     namespace=job["metadata"]["namespace"],
                                     propagation_policy="Background",
                                     preconditions={"uid": job["metadata"]["uid"]})
            log.info("job %s: deleted %ss after it finished", key, ttl)
        except StatusError as e:
            if e.code not in (404, 409):
                raise
