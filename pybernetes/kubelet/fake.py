"""The fake node agent (`pybernetes kubelet --runtime fake`, like kwok): one process
simulates any number of nodes. Each registers its Node, renews its Lease and moves
the pods bound to it through Pending -> Running -> Ready (-> Succeeded/Failed)
without running anything, so schedulers, controllers and clients can be tried at a
scale one machine could never run for real.

How it keeps up with thousands of pods: one pod informer for every fake node
(indexed by node), one work queue of pod keys served by a bounded number of workers
(the cap on concurrent API calls), timers on the event loop (`call_later`) for the
next transition of each pod, and one status write per transition - a pod without
delays goes from bound to Running and Ready in a single PATCH.

Pods can be steered by annotations (see pybernetes.kubelet.fake_pod):
fake.pybernetes.io/start-delay, ready-delay, never-ready, complete-after, exit-code.

A pod being deleted (deletionTimestamp set) is stopped after
min(its grace period, --fake-termination-seconds): its containers are reported
terminated, then it is deleted for good (gracePeriodSeconds=0 with a uid
precondition), as the kubelet's final delete does. Pods the node cannot take are
rejected (phase Failed, reason OutOfpods / OutOfcpu / NodeAffinity ...)."""
from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import time
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable

from pybernetes.client.api import NODES, PODS, APIClient
from pybernetes.client.informer import Informer
from pybernetes.client.workqueue import WorkQueue, serve
from pybernetes.kubelet import fake_pod
from pybernetes.kubelet.admission import admit
from pybernetes.kubelet.node_status import NodeAgent, NodeConfig
from pybernetes.kubelet.pod_ips import PodIPPool
from pybernetes.kubelet.pod_status import summary
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

CIDR_WAIT = 5.0             # seconds a new node waits for node IPAM before using a fallback
FALLBACK_CIDR = "10.244.0.0/16"  # per-node /24s from here when no podCIDR arrives
NODE_IPS = "198.18.0.0/15"  # RFC 2544 benchmarking range: fake node addresses route nowhere


@dataclass
class FakeOptions:
    run_seconds: float = 1.0          # run-to-completion pods exit 0 after this long
    termination_seconds: float = 0.0  # cap on how long a deleted pod takes to stop
    concurrency: int = 64             # pod API calls in flight at once


@dataclass
class PodRecord:
    """What the agent remembers of one pod (by uid)."""

    key: str
    node: str
    run: fake_pod.FakeRun | None = None  # None: rejected
    ip: str | None = None
    pool: PodIPPool | None = None
    sent: tuple | None = None            # summary of the last status written
    sent_rv: str = ""
    deleting_since: float | None = None
    rejection: dict = field(default_factory=dict)  # reason/message when rejected


def node_ip(name: str) -> str:
    """A stable address per node name, so nodes of different agents rarely collide."""
    net = ipaddress.ip_network(NODE_IPS)
    return str(net.network_address + 1 + zlib.crc32(name.encode()) % (net.num_addresses - 2))


def fallback_cidr(index: int) -> str:
    """The index-th /24 of FALLBACK_CIDR (wrapping around)."""
    net = ipaddress.ip_network(FALLBACK_CIDR)
    count = 1 << (24 - net.prefixlen)
    return f"{net.network_address + (index % count) * 256}/24"


def _older(rv: str, than: str) -> bool:
    """Whether resourceVersion `rv` predates `than` (ours are store revisions)."""
    try:
        return int(rv) < int(than)
    except ValueError:
        return rv != than


class FakeKubelet:
    def __init__(self, client: APIClient, nodes: list[NodeConfig], opts: FakeOptions,
                 recorders: Callable[[str], Any] | None = None, lease_duration: int = 40,
                 heartbeat_period: float = 10.0, status_update_period: float = 60.0):
        """`recorders(node_name)` makes the EventRecorder of one node (events name the
        node as their source host, as a kubelet's do)."""
        self.client, self.opts = client, opts
        self.recorders = {cfg.name: recorders(cfg.name) if recorders else None
                          for cfg in nodes}
        self.agents = {cfg.name: NodeAgent(client, cfg, self.recorders[cfg.name],
                                           lease_duration, heartbeat_period,
                                           status_update_period)
                       for cfg in nodes}
        self.index = {cfg.name: i for i, cfg in enumerate(nodes)}
        self.pods: dict[str, PodRecord] = {}      # uid -> record
        self.uid_of: dict[str, str] = {}          # pod key -> uid
        self.pools: dict[tuple[str, str], PodIPPool] = {}
        self.active: dict[str, set[str]] = {n: set() for n in self.agents}  # admitted, running
        self.queue = WorkQueue()
        self.node_informer = Informer(client, NODES)
        self.pod_informer = Informer(client, PODS)
        self.writes = 0

    # -- wiring ---------------------------------------------------------------------------

    async def run(self) -> None:
        self.node_informer.add_handler(self._node_seen, lambda old, new: self._node_seen(new),
                                       self._node_gone)
        self.pod_informer.add_handler(self._pod_event, lambda old, new: self._pod_event(new),
                                      self._pod_event)
        await self.node_informer.start()
        await self.pod_informer.start()
        tasks: list[asyncio.Task] = []
        try:
            await self.node_informer.wait_synced()
            await self.pod_informer.wait_synced()
            tasks = [asyncio.create_task(a.run(), name=f"node-{a.name}")
                     for a in self.agents.values()]
            tasks += [asyncio.create_task(self._worker())
                      for _ in range(max(1, self.opts.concurrency))]
            tasks.append(asyncio.create_task(self._report()))
            log.info("fake kubelet: %d node(s) (%s%s)", len(self.agents),
                     next(iter(self.agents)), ", ..." if len(self.agents) > 1 else "")
            await asyncio.gather(*tasks)
        finally:
            self.queue.shutdown()
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.pod_informer.stop()
            await self.node_informer.stop()

    async def _report(self, every: float = 10.0) -> None:
        """One log line per busy interval: how fast pod statuses are going out."""
        last = 0
        while True:
            await asyncio.sleep(every)
            if self.writes != last:
                log.info("fake kubelet: %d pod status writes in %.0fs (%.0f/s), %d pods, "
                         "%d queued", self.writes - last, every, (self.writes - last) / every,
                         len(self.pods), len(self.queue))
                last = self.writes

    def _node_seen(self, node: dict) -> None:
        agent = self.agents.get(node["metadata"]["name"])
        if agent is not None:
            agent.observe(node)

    def _node_gone(self, node: dict) -> None:
        agent = self.agents.get(node["metadata"]["name"])
        if agent is not None and agent.node is not None and \
                agent.node["metadata"].get("uid") == node["metadata"].get("uid"):
            log.info("node %s was deleted; registering it again", agent.name)
            agent.observe(None)

    def _pod_event(self, pod: dict) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        md = pod["metadata"]
        key = f"{md.get('namespace')}/{md['name']}"
        if node in self.agents or key in self.uid_of:
            self.queue.add(key)

    async def _worker(self) -> None:
        await serve(self.queue, self.sync, log, "pod")

    # -- one pod ---------------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        pod = self.pod_informer.get_by_key(key)
        uid = self.uid_of.get(key)
        if uid is not None and (pod is None or pod["metadata"].get("uid") != uid):
            self._forget(uid)  # deleted, or replaced by a pod of the same name
        if pod is None:
            return
        node = (pod.get("spec") or {}).get("nodeName")
        agent = self.agents.get(node or "")
        if agent is None:
            return
        if pod["metadata"].get("deletionTimestamp"):
            await self._terminate(key, pod)
            return
        rec = self.pods.get(pod["metadata"]["uid"])
        if rec is None:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                return  # finished before we met it: nothing to run
            if agent.node is None:
                self.queue.add_after(key, 1.0)  # registering still
                return
            rec = self._admit(key, pod, agent)
            if rec is None:
                return
        await self._advance(key, pod, rec, agent)

    def _admit(self, key: str, pod: dict, agent: NodeAgent) -> PodRecord | None:
        now = time.time()
        status = pod.get("status") or {}
        uid = pod["metadata"]["uid"]
        b = fake_pod.behaviour(pod, self.opts.run_seconds)
        adopted = status.get("phase") == "Running" or bool(status.get("startTime"))
        if not adopted:
            others = [self.pod_informer.get_by_key(self.pods[u].key)
                      for u in self.active[agent.name]]
            rejection = admit(pod, agent.node or {}, [p for p in others if p is not None])
            if rejection is not None:
                rec = PodRecord(key, agent.name, rejection={
                    "reason": rejection.reason, "message": rejection.status_message})
                self.pods[uid], self.uid_of[key] = rec, uid
                return rec
        pool = self._pool(agent)
        if pool is None:
            self.queue.add_after(key, 0.25)  # node IPAM has not given the node a podCIDR yet
            return None
        rec = PodRecord(key, agent.name, pool=pool)
        rec.run = fake_pod.FakeRun.adopt(pod, b, now) if adopted else \
            fake_pod.FakeRun(b, (pod.get("spec") or {}).get("restartPolicy") or "Always", now)
        old_ip = status.get("podIP")
        if old_ip and pool.reserve(old_ip):
            rec.ip = old_ip
        else:
            rec.ip = pool.allocate()
        self.pods[uid], self.uid_of[key] = rec, uid
        self.active[agent.name].add(uid)
        return rec

    def _pool(self, agent: NodeAgent) -> PodIPPool | None:
        cidrs = [c for c in agent.pod_cidrs() if ":" not in c] or agent.pod_cidrs()
        if cidrs:
            cidr = cidrs[0]
        elif time.monotonic() - agent.registered_at < CIDR_WAIT:
            return None
        else:
            cidr = fallback_cidr(self.index[agent.name])
        pool = self.pools.get((agent.name, cidr))
        if pool is None:
            pool = self.pools[(agent.name, cidr)] = PodIPPool(cidr)
            log.debug("node %s: pod IPs from %s", agent.name, cidr)
        return pool

    async def _advance(self, key: str, pod: dict, rec: PodRecord, agent: NodeAgent) -> None:
        if rec.run is None:
            await self._reject(pod, rec)
            return
        now = time.time()
        # readiness may be switched on a running pod (a probe starting to fail or pass)
        never_ready = fake_pod.behaviour(pod, self.opts.run_seconds).never_ready
        if never_ready != rec.run.b.never_ready:
            rec.run.b = dataclasses.replace(rec.run.b, never_ready=never_ready)
        before = (rec.run.exits, rec.run.terminal)
        nxt = rec.run.advance(now)
        if rec.run.exits > before[0] and rec.run.backoff_until is not None:
            c = ((pod.get("spec") or {}).get("containers") or [{}])[0].get("name", "")
            md = pod["metadata"]
            self._event(pod, "Warning", "BackOff", f"Back-off restarting failed container {c} "
                        f"in pod {md['name']}_{md['namespace']}({md['uid']})")
        if rec.run.terminal:
            self._release(pod["metadata"]["uid"], rec)
        status = fake_pod.fake_status(pod, rec.run, now, agent.cfg.ip, rec.ip)
        await self._write(pod, rec, status)
        if nxt is not None:
            self.queue.add_after(key, max(0.0, nxt - time.time()))

    async def _write(self, pod: dict, rec: PodRecord, status: dict) -> None:
        mine = summary(status)
        rv = pod["metadata"].get("resourceVersion", "")
        if summary(pod.get("status") or {}) == mine:
            return  # the pod says so already (e.g. picked up again after a restart)
        if mine == rec.sent and _older(rv, rec.sent_rv):
            return  # our write is on its way to the informer cache
        md = pod["metadata"]
        try:
            out = await self.client.patch(PODS, md["name"], {"status": status},
                                          namespace=md["namespace"], patch_type="strategic",
                                          subresource="status")
        except StatusError as e:
            if e.code == 404:
                return
            raise
        self.writes += 1
        rec.sent, rec.sent_rv = mine, out["metadata"].get("resourceVersion", "")

    async def _reject(self, pod: dict, rec: PodRecord) -> None:
        if rec.sent is not None:
            return
        why = rec.rejection
        md = pod["metadata"]
        status = {"phase": "Failed", "reason": why["reason"], "message": why["message"]}
        self._event(pod, "Warning", why["reason"], why["message"].removeprefix(
            "Pod was rejected: "))
        log.info("pod %s/%s rejected: %s", md["namespace"], md["name"], why["message"])
        await self._write(pod, rec, status)

    async def _terminate(self, key: str, pod: dict) -> None:
        md = pod["metadata"]
        rec = self.pods.get(md["uid"])
        if rec is None:
            rec = self.pods[md["uid"]] = PodRecord(key, pod["spec"]["nodeName"])
            self.uid_of[key] = md["uid"]
        now = time.monotonic()
        if rec.deleting_since is None:
            rec.deleting_since = now
        grace = md.get("deletionGracePeriodSeconds") or 0
        due = rec.deleting_since + min(grace, self.opts.termination_seconds)
        if now < due:
            self.queue.add_after(key, due - now)
            return
        if rec.run is not None and not rec.run.terminal:
            rec.run.stop(time.time())
            self._release(md["uid"], rec)
            agent = self.agents[rec.node]
            await self._write(pod, rec, fake_pod.fake_status(pod, rec.run, time.time(),
                                                             agent.cfg.ip, rec.ip))
        try:
            await self.client.delete(PODS, md["name"], namespace=md["namespace"],
                                     grace_period_seconds=0, preconditions={"uid": md["uid"]})
        except StatusError as e:
            if e.code not in (404, 409):
                raise

    def _forget(self, uid: str) -> None:
        rec = self.pods.pop(uid, None)
        if rec is None:
            return
        if self.uid_of.get(rec.key) == uid:
            del self.uid_of[rec.key]
        self._release(uid, rec)

    def _release(self, uid: str, rec: PodRecord) -> None:
        """A finished pod frees its slot and its address (its status keeps the address)."""
        self.active.get(rec.node, set()).discard(uid)
        if rec.ip and rec.pool is not None:
            rec.pool.release(rec.ip)
        rec.pool = None

    def _event(self, pod: dict, type_: str, reason: str, message: str) -> None:
        recorder = self.recorders.get((pod.get("spec") or {}).get("nodeName") or "")
        if recorder is not None:
            recorder.event({**pod, "apiVersion": "v1", "kind": "Pod"}, type_, reason, message)
