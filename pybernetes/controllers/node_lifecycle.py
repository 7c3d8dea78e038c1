"""Node lifecycle: a node whose kubelet stops heartbeating (its Lease in
kube-node-lease and its Ready condition) for longer than the grace period gets its
conditions set Unknown and the `node.kubernetes.io/unreachable:NoExecute` taint; a
node reporting Ready=False gets `node.kubernetes.io/not-ready:NoExecute`. Pods on a
NoExecute-tainted node that do not tolerate the taint are evicted at once, those
with tolerationSeconds when that runs out (upstream's taint-based eviction)."""
from __future__ import annotations

import asyncio
import copy
import logging
import time

from pybernetes.client.api import LEASES, NODES, PODS
from pybernetes.controllers.base import Controller, now_rfc3339, parse_time
from pybernetes.controllers.daemonset import tolerates
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

UNREACHABLE = "node.kubernetes.io/unreachable"
NOT_READY = "node.kubernetes.io/not-ready"
LEASE_NAMESPACE = "kube-node-lease"
GRACE_PERIOD = 40.0     # upstream --node-monitor-grace-period
MONITOR_PERIOD = 5.0    # upstream --node-monitor-period


def condition(node: dict, type_: str) -> dict | None:
    return next((c for c in (node.get("status") or {}).get("conditions") or []
                 if c.get("type") == type_), None)


def last_heartbeat(node: dict, lease: dict | None) -> float | None:
    times = [parse_time((condition(node, "Ready") or {}).get("lastHeartbeatTime")),
             parse_time(((lease or {}).get("spec") or {}).get("renewTime"))]
    seen = [t for t in times if t is not None]
    return max(seen) if seen else None


def wanted_taint(node: dict) -> str | None:
    status = (condition(node, "Ready") or {}).get("status")
    return {"Unknown": UNREACHABLE, "False": NOT_READY}.get(status or "")


def eviction_time(pod: dict, taints: list[dict]) -> float | None:
    """When a pod must leave a node with these NoExecute taints (None: it may stay)."""
    tols = (pod.get("spec") or {}).get("tolerations") or []
    due: float | None = None
    for taint in taints:
        if taint.get("effect") != "NoExecute":
            continue
        added = parse_time(taint.get("timeAdded")) or time.time()
        matching = [t for t in tols if tolerates([t], taint)]
        if not matching:
            return 0.0  # at once
        limits = [t["tolerationSeconds"] for t in matching if t.get("tolerationSeconds") is not None]
        if len(limits) == len(matching):  # every matching toleration is time-bound
            at = added + max(0, min(limits))
            due = at if due is None else min(due, at)
    return due


class NodeLifecycleController(Controller):
    name = "nodelifecycle"
    workers = 2
    grace_period = GRACE_PERIOD
    monitor_period = MONITOR_PERIOD

    def setup(self) -> None:
        self.NODES = NODES
        self.node_informer = self.informers.get(NODES)
        self.lease_informer = self.informers.get(LEASES, LEASE_NAMESPACE)
        self.pod_informer = self.informers.get(PODS)
        self.pod_informer.add_index("node", lambda p: [(p.get("spec") or {}).get("nodeName") or ""])
        self.node_informer.add_handler(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n))

    async def run(self) -> None:
        ticker = asyncio.create_task(self._tick())
        try:
            await super().run()
        finally:
            ticker.cancel()

    async def _tick(self) -> None:
        while True:
            for node in self.node_informer.list():
                self.enqueue(node)
            await asyncio.sleep(self.monitor_period)

    async def reconcile(self, key: str) -> None:
        node = self.node_informer.get(None, key)
        if node is None:
            return
        lease = self.lease_informer.get(LEASE_NAMESPACE, key)
        beat = last_heartbeat(node, lease)
        if beat is not None and time.time() - beat > self.grace_period and \
                (condition(node, "Ready") or {}).get("status") != "Unknown":
            node = await self._mark_unknown(node)
        node = await self._sync_taints(node)
        await self._evict(node)

    async def _mark_unknown(self, node: dict) -> dict:
        new = copy.deepcopy(node)
        now = now_rfc3339()
        for c in new.get("status", {}).get("conditions") or []:
            if c.get("type") in ("Ready", "MemoryPressure", "DiskPressure", "PIDPressure"):
                c.update(status="Unknown", reason="NodeStatusUnknown",
                         message="Kubelet stopped posting node status.", lastTransitionTime=now)
        updated = await self.client.update(self.NODES, new, subresource="status")
        self.recorder.event({**node, "apiVersion": "v1", "kind": "Node"}, "Normal", "NodeNotReady",
                            f"Node {node['metadata']['name']} status is now: NodeNotReady")
        log.info("node %s: no heartbeat for %ss, marked Unknown", node["metadata"]["name"],
                 self.grace_period)
        await self._mark_pods_not_ready(node["metadata"]["name"])
        return updated

    async def _mark_pods_not_ready(self, node_name: str) -> None:
        for pod in self.pod_informer.by_index("node", node_name):
            ready = next((c for c in (pod.get("status") or {}).get("conditions") or []
                          if c.get("type") == "Ready"), None)
            if ready is None or ready.get("status") == "False":
                continue
            conds = [dict(c, status="False", lastTransitionTime=now_rfc3339())
                     if c.get("type") == "Ready" else c for c in pod["status"]["conditions"]]
            try:
                await self.client.patch(PODS, pod["metadata"]["name"], {"status": {"conditions": conds}},
                                        namespace=pod["metadata"]["namespace"], subresource="status")
            except StatusError as e:
                if e.code != 404:
                    raise

    async def _sync_taints(self, node: dict) -> dict:
        want = wanted_taint(node)
        taints = list((node.get("spec") or {}).get("taints") or [])
        keep = [t for t in taints if t.get("key") not in (UNREACHABLE, NOT_READY)
                or (t.get("key") == want and t.get("effect") == "NoExecute")]
        if want and not any(t.get("key") == want for t in keep):
            keep.append({"key": want, "effect": "NoExecute", "timeAdded": now_rfc3339()})
        if keep == taints:
            return node
        body = {"spec": {"taints": keep or None}, "metadata": {
            "resourceVersion": node["metadata"]["resourceVersion"]}}
        return await self.client.patch(self.NODES, node["metadata"]["name"], body)

    async def _evict(self, node: dict) -> None:
        taints = [t for t in (node.get("spec") or {}).get("taints") or []
                  if t.get("effect") == "NoExecute"]
        if not taints:
            return
        now, soonest = time.time(), None
        for pod in self.pod_informer.by_index("node", node["metadata"]["name"]):
            if pod["metadata"].get("deletionTimestamp"):
                continue
            at = eviction_time(pod, taints)
            if at is None:
                continue
            if at > now:
                soonest = at if soonest is None else min(soonest, at)
                continue
            md = pod["metadata"]
            self.recorder.event({**pod, "apiVersion": "v1", "kind": "Pod"}, "Normal",
                                "TaintManagerEviction",
                                f"Marking for deletion Pod {md['namespace']}/{md['name']}")
            try:
                await self.client.delete(PODS, md["name"], namespace=md["namespace"],
                                         preconditions={"uid": md["uid"]})
            except StatusError as e:
                if e.code not in (404, 409):
                    raise
        if soonest is not None:
            self.queue.add_after(node["metadata"]["name"], max(0.1, soonest - now))
