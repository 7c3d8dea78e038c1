"""DaemonSet controller: one pod on every eligible node (nodeSelector, required node
affinity, taints the pod tolerates), pinned to its node by a required node affinity
on metadata.name for the scheduler to bind, as upstream; rolling update within
maxUnavailable; OnDelete leaves old pods until they are deleted."""
from __future__ import annotations

import copy
import logging
from typing import Any

from pybernetes.client.api import NODES, PODS, Resource
from pybernetes.controllers import pods as podutil
from pybernetes.controllers.base import Controller, controller_ref, new_controller_ref, split_key
from pybernetes.controllers.rollout import scaled_value, template_hash
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

HASH_LABEL = "controller-revision-hash"
# Tolerations every daemon pod gets (upstream's AddOrUpdateDaemonPodTolerations)
AUTO_TOLERATIONS = (
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/disk-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/memory-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/pid-pressure", "operator": "Exists", "effect": "NoSchedule"},
    {"key": "node.kubernetes.io/unschedulable", "operator": "Exists", "effect": "NoSchedule"},
)


def tolerates(tolerations: list[dict], taint: dict) -> bool:
    for t in tolerations:
        if t.get("effect") and t.get("effect") != taint.get("effect"):
            continue
        if t.get("operator") == "Exists":
            if not t.get("key") or t.get("key") == taint.get("key"):
                return True
        elif t.get("key") == taint.get("key") and t.get("value", "") == taint.get("value", ""):
            return True
    return False


def _expr_ok(expr: dict, value: str | None) -> bool:
    op, vals = expr.get("operator"), expr.get("values") or []
    if op == "In":
        return value in vals
    if op == "NotIn":
        return value not in vals
    if op == "Exists":
        return value is not None
    if op == "DoesNotExist":
        return value is None
    if op in ("Gt", "Lt") and value is not None and vals:
        try:
            a, b = int(value), int(vals[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def _term_ok(term: dict, node: dict) -> bool:
    labels = node["metadata"].get("labels") or {}
    fields = {"metadata.name": node["metadata"]["name"]}
    return all(_expr_ok(e, labels.get(e.get("key"))) for e in term.get("matchExpressions") or []) \
        and all(_expr_ok(e, fields.get(e.get("key"))) for e in term.get("matchFields") or [])


def should_run(template_spec: dict, node: dict) -> bool:
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in (template_spec.get("nodeSelector") or {}).items()):
        return False
    required = (((template_spec.get("affinity") or {}).get("nodeAffinity") or {})
                .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
    terms = required.get("nodeSelectorTerms") or []
    if terms and not any(_term_ok(t, node) for t in terms):
        return False
    tolerations = list(template_spec.get("tolerations") or []) + list(AUTO_TOLERATIONS)
    return all(tolerates(tolerations, t) for t in (node.get("spec") or {}).get("taints") or []
               if t.get("effect") in ("NoSchedule", "NoExecute"))


def target_node(pod: dict) -> str | None:
    """The node a daemon pod is for: where it runs, or where its affinity pins it."""
    if (pod.get("spec") or {}).get("nodeName"):
        return pod["spec"]["nodeName"]
    terms = (((((pod.get("spec") or {}).get("affinity") or {}).get("nodeAffinity") or {})
              .get("requiredDuringSchedulingIgnoredDuringExecution") or {})
             .get("nodeSelectorTerms") or [])
    for t in terms:
        for f in t.get("matchFields") or []:
            if f.get("key") == "metadata.name" and f.get("operator") == "In" and f.get("values"):
                return f["values"][0]
    return None


def pod_for(ds: dict, node: str, revision: str) -> dict:
    tpl = copy.deepcopy(ds["spec"]["template"])
    md, spec = tpl.get("metadata") or {}, tpl.get("spec") or {}
    affinity = spec.setdefault("affinity", {})
    na = affinity.setdefault("nodeAffinity", {})
    na["requiredDuringSchedulingIgnoredDuringExecution"] = {"nodeSelectorTerms": [
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}
    tols = list(spec.get("tolerations") or [])
    for t in AUTO_TOLERATIONS:
        if t not in tols:
            tols.append(dict(t))
    spec["tolerations"] = tols
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"generateName": f"{ds['metadata']['name']}-",
                         "namespace": ds["metadata"]["namespace"],
                         "labels": {**(md.get("labels") or {}), HASH_LABEL: revision,
                                    "pod-template-generation":
                                        str(ds["metadata"].get("generation", 1))},
                         "annotations": dict(md.get("annotations") or {}),
                         "ownerReferences": [new_controller_ref(ds)]},
            "spec": spec}


class DaemonSetController(Controller):
    name = "daemonset"
    workers = 2

    def setup(self) -> None:
        self.DS = Resource.of("apps/v1", "daemonsets")
        self.ds_informer = self.informers.get(self.DS)
        self.node_informer = self.informers.get(NODES)
        self.pod_informer = self.informers.get(PODS)
        self.ds_informer.add_handler(on_add=self.enqueue, on_update=lambda o, n: self.enqueue(n))
        self.pod_informer.add_handler(on_add=self._pod, on_update=lambda o, n: self._pod(n),
                                      on_delete=self._pod)
        self.node_informer.add_handler(on_add=self._all, on_update=lambda o, n: self._all(n),
                                       on_delete=self._all)

    def _pod(self, pod: dict) -> None:
        ref = controller_ref(pod)
        if ref and ref.get("kind") == "DaemonSet":
            self.queue.add(f"{pod['metadata']['namespace']}/{ref.get('name')}")

    def _all(self, _node: dict) -> None:
        for ds in self.ds_informer.list():
            self.enqueue(ds)

    async def reconcile(self, key: str) -> None:
        ns, name = split_key(key)
        cached = self.ds_informer.get(ns, name)
        if cached is None or cached["metadata"].get("deletionTimestamp"):
            return
        ds = copy.deepcopy(cached)
        ds["apiVersion"], ds["kind"] = "apps/v1", "DaemonSet"
        revision = template_hash(ds["spec"]["template"])
        nodes = {n["metadata"]["name"]: n for n in self.node_informer.list()}
        eligible = {n for n, node in nodes.items()
                    if should_run(ds["spec"]["template"].get("spec") or {}, node)}
        by_node: dict[str, list[dict]] = {}
        for p in self.pod_informer.by_index("namespace", ns or ""):
            if (controller_ref(p) or {}).get("uid") == ds["metadata"]["uid"] and podutil.is_active(p):
                by_node.setdefault(target_node(p) or "", []).append(p)
        await self._sync_nodes(ds, eligible, by_node, revision)
        await self._rolling_update(ds, eligible, by_node, revision)
        await self._write_status(ds, eligible, by_node, revision)

    async def _sync_nodes(self, ds: dict, eligible: set[str], by_node: dict[str, list[dict]],
                          revision: str) -> None:
        for node in sorted(eligible - set(by_node)):
            pod = pod_for(ds, node, revision)
            try:
                created = await self.client.create(PODS, pod, namespace=ds["metadata"]["namespace"])
            except StatusError as e:
                self.recorder.event(ds, "Warning", "FailedCreate", f"Error creating: {e.message}")
                raise
            by_node[node] = [created]
            self.recorder.event(ds, "Normal", "SuccessfulCreate",
                                f"Created pod: {created['metadata']['name']}")
        for node, pods in list(by_node.items()):
            extra = pods if node not in eligible else \
                sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", ""))[1:]
            for p in extra:  # off its node's list, or a duplicate there
                await self._delete(ds, p)
                pods.remove(p)

    async def _rolling_update(self, ds: dict, eligible: set[str], by_node: dict[str, list[dict]],
                              revision: str) -> None:
        strategy = ds["spec"].get("updateStrategy") or {}
        if strategy.get("type", "RollingUpdate") != "RollingUpdate":
            return
        desired = len(eligible)
        max_unavailable = scaled_value((strategy.get("rollingUpdate") or {})
                                       .get("maxUnavailable", 1), desired, True) or 1
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        pods = [p for n in eligible for p in by_node.get(n, [])]
        unavailable = desired - sum(1 for p in pods if podutil.is_available(p, min_ready))
        old = [p for p in pods if p["metadata"]["labels"].get(HASH_LABEL) != revision]
        for p in old:  # unavailable old pods cost nothing to replace
            if not podutil.is_available(p, min_ready):
                await self._delete(ds, p)
        budget = max_unavailable - unavailable
        for p in [p for p in old if podutil.is_available(p, min_ready)][:max(0, budget)]:
            await self._delete(ds, p)

    async def _delete(self, ds: dict, pod: dict) -> None:
        try:
            await self.client.delete(PODS, pod["metadata"]["name"],
                                     namespace=pod["metadata"]["namespace"],
                                     preconditions={"uid": pod["metadata"]["uid"]})
        except StatusError as e:
            if e.code not in (404, 409):
                raise
            return
        self.recorder.event(ds, "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}")

    async def _write_status(self, ds: dict, eligible: set[str], by_node: dict[str, list[dict]],
                            revision: str) -> None:
        min_ready = int(ds["spec"].get("minReadySeconds") or 0)
        on = [p for n in eligible for p in by_node.get(n, [])[:1]]
        status: dict[str, Any] = {
            "currentNumberScheduled": len(on),
            "numberMisscheduled": sum(1 for n in by_node if n not in eligible and by_node[n]),
            "desiredNumberScheduled": len(eligible),
            "numberReady": sum(1 for p in on if podutil.is_ready(p)),
            "observedGeneration": ds["metadata"].get("generation", 0),
            "updatedNumberScheduled": sum(1 for p in on
                                          if p["metadata"]["labels"].get(HASH_LABEL) == revision),
            "numberAvailable": sum(1 for p in on if podutil.is_available(p, min_ready)),
        }
        status["numberUnavailable"] = len(eligible) - status["numberAvailable"]
        status = {k: v for k, v in status.items() if v or k in (
            "currentNumberScheduled", "numberMisscheduled", "desiredNumberScheduled", "numberReady")}
        if status == {k: v for k, v in (ds.get("status") or {}).items() if k in status or v}:
            return
        ds["status"] = status
        try:
            await self.client.update(self.DS, ds, subresource="status")
        except StatusError as e:
            if e.code != 404:
                raise
