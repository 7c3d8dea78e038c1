"""CronJob controller: creates a Job for each due schedule time (in spec.timeZone),
honouring suspend, startingDeadlineSeconds and concurrencyPolicy (Allow, Forbid,
Replace), keeps status.active/lastScheduleTime/lastSuccessfulTime, and prunes
finished Jobs beyond the history limits."""
from __future__ import annotations

import copy
import logging
import time
from datetime import datetime, timezone

from pybernetes.client.api import Resource
from pybernetes.controllers.base import (Controller, controller_ref, new_controller_ref,
                                         parse_time, split_key)
from pybernetes.controllers.cron_schedule import Schedule
from pybernetes.controllers.job import condition_true, finished
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

SCHEDULED_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def job_name(cj_name: str, scheduled: float) -> str:
    """Upstream's name: the CronJob's name and the scheduled time in minutes."""
    return f"{cj_name}-{int(scheduled // 60)}"


def job_ref(job: dict) -> dict:
    md = job["metadata"]
    return {"apiVersion": "batch/v1", "kind": "Job", "name": md["name"],
            "namespace": md["namespace"], "uid": md["uid"],
            "resourceVersion": md.get("resourceVersion")}


class CronJobController(Controller):
    name = "cronjob"
    workers = 2

    def setup(self) -> None:
        self.CRONJOBS = Resource.of("batch/v1", "cronjobs")
        self.JOBS = Resource.of("batch/v1", "jobs")
        self.cj_informer = self.informers.get(self.CRONJOBS)
        self.job_informer = self.informers.get(self.JOBS)
        self.cj_informer.add_handler(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n))
        self.job_informer.add_handler(on_add=self._job, on_update=lambda o, n: self._job(n),
                                      on_delete=self._job)

    def _job(self, job: dict) -> None:
        ref = controller_ref(job)
        if ref and ref.get("kind") == "CronJob":
            self.queue.add(f"{job['metadata']['namespace']}/{ref.get('name')}")

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        cached = self.cj_informer.get(ns, name)
        if cached is None or cached["metadata"].get("deletionTimestamp"):
            return
        cj = copy.deepcopy(cached)
        cj["apiVersion"], cj["kind"] = "batch/v1", "CronJob"
        spec, status = cj["spec"], cj.setdefault("status", {})
        before = copy.deepcopy(status)
        jobs = [j for j in self.job_informer.by_index("namespace", ns or "")
                if (controller_ref(j) or {}).get("uid") == cj["metadata"]["uid"]]
        self._track_finished(cj, jobs)
        active = [j for j in jobs if not finished(j) and not j["metadata"].get("deletionTimestamp")]
        try:
            sched = Schedule(spec["schedule"], spec.get("timeZone"))
        except (ValueError, KeyError) as e:
            self.recorder.event(cj, "Warning", "UnparseableSchedule",
                                f"unparseable schedule: {spec.get('schedule')!r} : {e}")
            return
        now = time.time()
        if not spec.get("suspend"):
            active = await self._maybe_run(cj, sched, active, now)
        if active:
            status["active"] = [job_ref(j) for j in active]
        else:
            status.pop("active", None)
        await self._prune(cj, jobs)
        if status != before:
            await self.client.update(self.CRONJOBS, cj, subresource="status")
        self.queue.add_after(key, max(0.5, sched.next(now) - now + 0.05))

    def _track_finished(self, cj: dict, jobs: list[dict]) -> None:
        status = cj["status"]
        for j in jobs:
            if condition_true(j, "Complete"):
                done = (j.get("status") or {}).get("completionTime")
                last = status.get("lastSuccessfulTime")
                if done and (not last or parse_time(done) > parse_time(last)):  # type: ignore[operator]
                    status["lastSuccessfulTime"] = done
                    self.recorder.event(cj, "Normal", "SawCompletedJob",
                                        f"Saw completed job: {j['metadata']['name']}, "
                                        "condition: Complete")

    async def _maybe_run(self, cj: dict, sched: Schedule, active: list[dict], now: float
                         ) -> list[dict]:
        spec, status = cj["spec"], cj["status"]
        since = parse_time(status.get("lastScheduleTime")) or \
            parse_time(cj["metadata"].get("creationTimestamp")) or now
        due, missed = sched.last_due(since, now)
        if due is None:
            return active
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and due + deadline < now:
            self.recorder.event(cj, "Warning", "MissSchedule",
                                f"Missed scheduled time to start a job: {rfc3339(due)}")
            status["lastScheduleTime"] = rfc3339(due)
            return active
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy == "Forbid" and active:
            self.recorder.event(cj, "Normal", "JobAlreadyActive",
                                "Not starting job because prior execution is running and "
                                "concurrency policy is Forbid")
            return active
        if policy == "Replace":
            for j in active:
                await self._delete_job(cj, j)
            active = []
        job = await self._create_job(cj, due)
        status["lastScheduleTime"] = rfc3339(due)
        return active + ([job] if job else [])

    async def _create_job(self, cj: dict, due: float) -> dict | None:
        tpl = copy.deepcopy(cj["spec"].get("jobTemplate") or {})
        md = tpl.get("metadata") or {}
        name = job_name(cj["metadata"]["name"], due)
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": name, "namespace": cj["metadata"]["namespace"],
                            "labels": dict(md.get("labels") or {}),
                            "annotations": {**(md.get("annotations") or {}),
                                            SCHEDULED_ANNOTATION: rfc3339(due)},
                            "ownerReferences": [new_controller_ref(cj)]},
               "spec": tpl.get("spec") or {}}
        try:
            created = await self.client.create(self.JOBS, job, namespace=cj["metadata"]["namespace"])
        except StatusError as e:
            if e.reason == "AlreadyExists":
                return None  # made by an earlier sync whose status write was lost
            self.recorder.event(cj, "Warning", "FailedCreate", f"Error creating job: {e.message}")
            raise
        self.recorder.event(cj, "Normal", "SuccessfulCreate", f"Created job {name}")
        return created

    async def _delete_job(self, cj: dict, job: dict) -> None:
        try:
            await self.client.delete(self.JOBS, job["metadata"]["name"],
                                     namespace=job["metadata"]["namespace"],
                                     propagation_policy="Background")
        except StatusError as e:
            if e.code != 404:
                raise
            return
        self.recorder.event(cj, "Normal", "SuccessfulDelete", f"Deleted job {job['metadata']['name']}")

    async def _prune(self, cj: dict, jobs: list[dict]) -> None:
        spec = cj["spec"]
        for cond, limit in (("Complete", spec.get("successfulJobsHistoryLimit", 3)),
                            ("Failed", spec.get("failedJobsHistoryLimit", 1))):
            done = sorted((j for j in jobs if condition_true(j, cond)
                           and not j["metadata"].get("deletionTimestamp")),
                          key=lambda j: (j.get("status") or {}).get("startTime") or "")
            for j in done[:max(0, len(done) - int(limit))]:
                await self._delete_job(cj, j)
