"""The scheduler process: pod and node informers feed the cache and the scheduling
queue; one loop takes the most important pending pod, runs the framework, assumes the
pod onto the chosen node and binds it in the background (pods/binding), so the next
pod is scheduled while the Binding is still in flight. A pod that fits nowhere gets a
FailedScheduling event, PodScheduled=False, and maybe preempts lower-priority pods."""
from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from datetime import datetime, timezone
from typing import Any

from pybernetes.client.api import NODES, PODS, PVCS, PVS, APIClient, Resource
from pybernetes.client.events import EventRecorder
from pybernetes.client.informer import Informer
from pybernetes.client.leader_election import LeaderElector
from pybernetes.machinery.errors import StatusError
from pybernetes.scheduler.cache import Cache, PodInfo, pod_key
from pybernetes.scheduler.framework import Framework, Result
from pybernetes.scheduler.plugins.volume_binding import VolumeBinding, VolumeListers
from pybernetes.scheduler.queue import SchedulingQueue

log = logging.getLogger(__name__)

SCHEDULER_NAME = "default-scheduler"
LEASE_NAME = "kube-scheduler"
TERMINAL = ("Succeeded", "Failed")
STORAGECLASSES = Resource("storage.k8s.io", "v1", "storageclasses", "StorageClass", False)


def assigned(pod: dict) -> bool:
    return bool((pod.get("spec") or {}).get("nodeName"))


def terminal(pod: dict) -> bool:
    return (pod.get("status") or {}).get("phase") in TERMINAL


def deleting(pod: dict) -> bool:
    return bool(pod["metadata"].get("deletionTimestamp"))


def pending_change(old: dict, new: dict) -> bool:
    """Changes to a pending pod that may make it fit; our own status writes are not."""
    return (old.get("spec") != new.get("spec")
            or old["metadata"].get("labels") != new["metadata"].get("labels"))


def node_change(old: dict, new: dict) -> bool:
    """Node changes that can make a pod fit (heartbeats and conditions cannot)."""
    o, n = old.get("status") or {}, new.get("status") or {}
    return (old["metadata"].get("labels") != new["metadata"].get("labels")
            or old.get("spec") != new.get("spec")
            or o.get("allocatable") != n.get("allocatable"))


def now_rfc3339() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Scheduler:
    def __init__(self, client: Any, bind_concurrency: int = 32, recorder: Any = None,
                 name: str = SCHEDULER_NAME):
        from pybernetes.scheduler.plugins import default_plugins
        from pybernetes.scheduler.plugins.default_preemption import DefaultPreemption
        self.client, self.name = client, name
        self.PODS = PODS
        self.cache = Cache()
        self.queue = SchedulingQueue()
        self.framework = Framework(default_plugins(), self.cache, preemption=DefaultPreemption())
        if recorder is None:
            recorder = EventRecorder(client, name)
        self.recorder = recorder
        self.pod_informer = Informer(client, PODS)
        self.node_informer = Informer(client, NODES)
        self.pod_informer.add_handler(self._pod_added, self._pod_updated, self._pod_deleted)
        self.node_informer.add_handler(self._node_added, self._node_updated, self._node_deleted)
        self._volume_informers()
        self.binds = asyncio.Semaphore(bind_concurrency)
        self.tasks: set[asyncio.Task] = set()
        self.bound = 0

    def _volume_informers(self) -> None:
        """Claims, volumes and classes for VolumeBinding; any change may let a pod fit."""
        self.pvc_informer = Informer(self.client, PVCS)
        self.pv_informer = Informer(self.client, PVS)
        self.sc_informer = Informer(self.client, STORAGECLASSES)
        self.volume_binding = next((p for p in self.framework.plugins
                                    if isinstance(p, VolumeBinding)), None)
        if self.volume_binding is not None:
            pvcs, pvs, classes = self.pvc_informer, self.pv_informer, self.sc_informer
            self.volume_binding.listers = VolumeListers(
                pvc=pvcs.get, pv=lambda name: pvs.get(None, name), pvs=pvs.list,
                storage_class=lambda name: classes.get(None, name), classes=classes.list)

        def changed(*_: Any) -> None:
            if self.volume_binding is not None:
                self.volume_binding.claim_changed()
            self.queue.move_all()
        for inf in (self.pvc_informer, self.pv_informer, self.sc_informer):
            inf.add_handler(changed, changed, changed)

    # ----- informer handlers: only bookkeeping, never I/O -----
    def _mine(self, pod: dict) -> bool:
        return (pod.get("spec") or {}).get("schedulerName", SCHEDULER_NAME) == self.name

    def _pod_added(self, pod: dict) -> None:
        if assigned(pod):
            if not terminal(pod):
                self.cache.add_pod(pod)
                self.queue.move_all(_has_pod_affinity)
        elif self._mine(pod) and not deleting(pod):
            self._track_nomination(pod)
            self.queue.add(pod, pod_key(pod))

    def _track_nomination(self, pod: dict) -> None:
        node = (pod.get("status") or {}).get("nominatedNodeName")
        key = pod_key(pod)
        if node:
            if self.cache.nominated_node.get(key) != node:
                self.cache.nominate(PodInfo.of(pod), node)
        elif key in self.cache.nominated_node:
            self.cache.unnominate(key)

    def _pod_updated(self, old: dict, new: dict) -> None:
        key = pod_key(new)
        if assigned(new):
            self.queue.delete(key)
            if terminal(new):
                self._pod_gone(key)
            else:
                self.cache.add_pod(new)
        elif self._mine(new):
            if deleting(new):
                self.queue.delete(key)
                self.cache.unnominate(key)
            else:
                self._track_nomination(new)
                self.queue.update(new, key, pending_change(old, new))

    def _pod_deleted(self, pod: dict) -> None:
        key = pod_key(pod)
        self.queue.delete(key)
        self.cache.unnominate(key)
        self._pod_gone(key)

    def _pod_gone(self, key: str) -> None:
        if key in self.cache.pod_node:
            self.cache.remove_pod(key)
            self.queue.move_all()

    def _node_added(self, node: dict) -> None:
        self.cache.set_node(node)
        self.queue.move_all()

    def _node_updated(self, old: dict, new: dict) -> None:
        self.cache.set_node(new)
        if node_change(old, new):
            self.queue.move_all()

    def _node_deleted(self, node: dict) -> None:
        self.cache.remove_node(node["metadata"]["name"])

    # ----- the loop -----
    async def run(self) -> None:
        informers = (self.pod_informer, self.node_informer, self.pvc_informer,
                     self.pv_informer, self.sc_informer)
        for inf in informers:
            await inf.start()
        housekeeping = asyncio.ensure_future(self._housekeeping())
        try:
            for inf in informers:
                await inf.wait_synced()
            log.info("scheduler started: %d nodes, %d pending pods",
                     len(self.cache.nodes), len(self.queue))
            await self._loop()
        finally:
            housekeeping.cancel()
            self.queue.shutdown()
            for t in list(self.tasks):
                t.cancel()
            for inf in informers:
                await inf.stop()

    async def _loop(self) -> None:
        n = 0
        while True:
            qp = await self.queue.pop()
            if qp is None:
                return
            ns, _, name = qp.key.partition("/")
            pod = self.pod_informer.get(ns, name)
            if pod is None or assigned(pod) or deleting(pod):
                self.queue.delete(qp.key)
                self.queue.done(qp.key)
                continue
            self.schedule_one(pod)
            n += 1
            if n % 16 == 0:
                await asyncio.sleep(0)  # let watch events and binds run

    def schedule_one(self, pod: dict) -> None:
        pi = PodInfo.of(pod)
        try:
            res = self.framework.schedule(pi)
        except Exception:
            log.exception("scheduling %s failed", pi.key)
            self.queue.failed(pi.key, unschedulable=False)
            return
        if res.node:
            self.cache.assume(pi, res.node)
            self._spawn(self._bind(pi, res.node))
        else:
            if res.nominated:
                self.cache.nominate(pi, res.nominated)
            self.queue.failed(pi.key, unschedulable=True)
            self._spawn(self._unschedulable(pi, res))

    def _spawn(self, coro: Any) -> None:
        t = asyncio.ensure_future(coro)
        self.tasks.add(t)
        t.add_done_callback(self.tasks.discard)

    async def _bind(self, pi: PodInfo, node: str) -> None:
        md = pi.pod["metadata"]
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": md["name"], "namespace": md["namespace"],
                             "uid": md.get("uid")},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        if not await self._pre_bind(pi, node):
            return
        async with self.binds:
            try:
                await self.client.post(self.PODS, md["name"], "binding", body,
                                       namespace=md["namespace"])
            except Exception as e:
                self._bind_failed(pi, e)
                return
        self.cache.finish_binding(pi.key)
        self.queue.scheduled(pi.key)
        self.bound += 1
        log.info("bound %s to %s", pi.key, node)
        self.recorder.event(_ref(pi.pod), "Normal", "Scheduled",
                            f"Successfully assigned {pi.key} to {node}")

    async def _pre_bind(self, pi: PodInfo, node: str) -> bool:
        """VolumeBinding's PreBind: the pod's claims bound on `node` first (bounded wait)."""
        vbp = self.volume_binding
        if vbp is None or not (pi.pod.get("spec") or {}).get("volumes"):
            return True
        node_obj = self.node_informer.get(None, node) or {"metadata": {"name": node}}
        try:
            why = await vbp.pre_bind(self.client, pi.pod, node_obj)
        except StatusError as e:
            why = str(e)
        if why is None:
            return True
        self.cache.forget(pi.key)
        log.warning("binding volumes of %s on %s failed: %s", pi.key, node, why)
        self.queue.failed(pi.key, unschedulable=False)
        self.recorder.event(_ref(pi.pod), "Warning", "FailedScheduling",
                            f"running PreBind plugin \"VolumeBinding\": {why}")
        return False

    def _bind_failed(self, pi: PodInfo, err: Exception) -> None:
        self.cache.forget(pi.key)
        if isinstance(err, StatusError) and err.code in (404, 409):
            self.queue.delete(pi.key)  # gone, or someone else bound it: nothing to retry
            self.queue.done(pi.key)
            return
        log.warning("binding %s failed: %s", pi.key, err)
        self.queue.failed(pi.key, unschedulable=False)
        self.recorder.event(_ref(pi.pod), "Warning", "FailedScheduling",
                            f"Binding rejected: {err}")

    async def _unschedulable(self, pi: PodInfo, res: Result) -> None:
        assert res.error is not None
        msg = res.error.message()
        log.info("unable to schedule %s: %s", pi.key, msg)
        if res.nominated:
            await self._preempt(pi, res)
        self.recorder.event(_ref(pi.pod), "Warning", "FailedScheduling", msg)
        await self._set_condition(pi, msg, res.nominated)

    async def _preempt(self, pi: PodInfo, res: Result) -> None:
        for v in res.victims:
            vmd = v.pod["metadata"]
            grace = (v.pod.get("spec") or {}).get("terminationGracePeriodSeconds")
            self.recorder.event(_ref(v.pod), "Normal", "Preempted",
                                f"Preempted by pod {pi.pod['metadata'].get('uid')} "
                                f"on node {res.nominated}")
            try:
                await self.client.delete(self.PODS, vmd["name"], namespace=vmd["namespace"],
                                         grace_period_seconds=grace,
                                         preconditions={"uid": vmd.get("uid")})
                log.info("preempted %s on %s for %s", v.key, res.nominated, pi.key)
            except StatusError as e:
                if e.code not in (404, 409):
                    log.warning("preempting %s: %s", v.key, e)

    async def _set_condition(self, pi: PodInfo, msg: str, nominated: str | None) -> None:
        status = pi.pod.get("status") or {}
        cur = next((c for c in status.get("conditions") or []
                    if c.get("type") == "PodScheduled"), {})
        patch: dict = {}
        if (cur.get("status"), cur.get("reason"), cur.get("message")) != \
                ("False", "Unschedulable", msg):
            cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                    "message": msg, "lastProbeTime": None,
                    "lastTransitionTime": cur.get("lastTransitionTime")
                    if cur.get("status") == "False" else now_rfc3339()}
            patch["conditions"] = [cond]
        if nominated and status.get("nominatedNodeName") != nominated:
            patch["nominatedNodeName"] = nominated
        if not patch:
            return
        md = pi.pod["metadata"]
        try:
            await self.client.patch(self.PODS, md["name"], {"status": patch},
                                    namespace=md["namespace"], patch_type="strategic",
                                    subresource="status")
        except StatusError as e:
            if e.code != 404:
                log.warning("updating the status of %s: %s", pi.key, e)

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(5)
            self.cache.expire()


def _ref(pod: dict) -> dict:
    """Items of a List may lack apiVersion/kind; events need them for involvedObject."""
    return {**pod, "apiVersion": "v1", "kind": "Pod"}


def _has_pod_affinity(pod: dict) -> bool:
    return bool(((pod.get("spec") or {}).get("affinity") or {}).get("podAffinity"))


async def run(kubeconfig: str, leader_elect: bool, bind_concurrency: int,
              timing: dict[str, float] | None = None) -> None:
    client = await APIClient.from_kubeconfig(kubeconfig, user_agent="pybernetes-scheduler")
    try:
        if not leader_elect:
            await Scheduler(client, bind_concurrency).run()
            return
        identity = f"{socket.gethostname()}_{uuid.uuid4()}"
        elector = LeaderElector(client, LEASE_NAME, identity, **(timing or {}))
        await elector.run(lambda: Scheduler(client, bind_concurrency).run())
    finally:
        await client.close()
