"""VolumeBinding: a pod's PersistentVolumeClaims decide where it may go, and the
claims of WaitForFirstConsumer classes are bound once its node is chosen.

- PreFilter: every claim must exist and not be going away; a claim of an Immediate
  class must already be bound (the PV controller binds those on its own).
- Filter: a bound claim's volume must be reachable from the node (its nodeAffinity);
  an unbound WaitForFirstConsumer claim needs an Available volume reachable from the
  node, or a class with a provisioner that can make one there.
- PreBind (before the Binding is posted): static volumes chosen for unbound claims are
  reserved for them (pv.spec.claimRef), claims to provision get the annotation
  volume.kubernetes.io/selected-node; then it waits, bounded, until every claim is
  Bound. Waiting is on the PVC informer, not by polling the API."""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from pybernetes.machinery import volume_binding as vb
from pybernetes.scheduler.cache import NodeInfo, PodInfo
from pybernetes.scheduler.framework import SKIP, Plugin, Status, unresolvable

BIND_TIMEOUT = 60.0
UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
NODE_CONFLICT = "node(s) had volume node affinity conflict"
BIND_CONFLICT = "node(s) didn't find available persistent volumes to bind"
PV_NOT_EXIST = "node(s) unavailable due to one or more pvc(s) bound to non-existent pv(s)"


@dataclass
class VolumeListers:
    """What the plugin reads: the scheduler's PVC, PV and StorageClass informers."""
    pvc: Callable[[str, str], dict | None] = lambda ns, name: None
    pv: Callable[[str], dict | None] = lambda name: None
    pvs: Callable[[], list[dict]] = lambda: []
    storage_class: Callable[[str], dict | None] = lambda name: None
    classes: Callable[[], list[dict]] = lambda: []


@dataclass
class PodVolumes:
    bound: list[dict] = field(default_factory=list)      # claims with a volume
    to_bind: list[dict] = field(default_factory=list)    # WaitForFirstConsumer, unbound


def claim_names(pod: dict) -> list[str]:
    """The claims a pod uses: persistentVolumeClaim volumes and the claims of its
    generic ephemeral volumes (named <pod>-<volume>)."""
    name = (pod.get("metadata") or {}).get("name", "")
    out = []
    for vol in (pod.get("spec") or {}).get("volumes") or []:
        if vol.get("persistentVolumeClaim") is not None:
            out.append(vol["persistentVolumeClaim"].get("claimName", ""))
        elif vol.get("ephemeral") is not None:
            out.append(f"{name}-{vol.get('name', '')}")
    return out


class VolumeBinding(Plugin):
    name = "VolumeBinding"

    def __init__(self, listers: VolumeListers | None = None,
                 bind_timeout: float = BIND_TIMEOUT):
        self.listers = listers or VolumeListers()
        self.bind_timeout = bind_timeout
        self._changed = asyncio.Event()  # set (and replaced) on every claim change

    # ----- scheduling cycle -----
    def pre_filter(self, state: dict, pod: PodInfo, nodes: list[NodeInfo]) -> Status | None:
        names = claim_names(pod.pod)
        if not names:
            return SKIP
        got = self.pod_volumes(pod.pod, names)
        if isinstance(got, Status):
            return got
        state["vb"] = got
        return None

    def pod_volumes(self, pod: dict, names: list[str]) -> PodVolumes | Status:
        ns = pod["metadata"].get("namespace") or "default"
        ephemeral = {f"{pod['metadata'].get('name')}-{v.get('name')}"
                     for v in (pod.get("spec") or {}).get("volumes") or []
                     if v.get("ephemeral") is not None}
        out, classes = PodVolumes(), {sc["metadata"]["name"]: sc for sc in self.listers.classes()}
        for name in names:
            pvc = self.listers.pvc(ns, name)
            if pvc is None:
                if name in ephemeral:
                    return unresolvable("waiting for ephemeral volume controller to create "
                                        f'the persistentvolumeclaim "{name}"')
                return unresolvable(f'persistentvolumeclaim "{name}" not found')
            if pvc["metadata"].get("deletionTimestamp"):
                return unresolvable(f'persistentvolumeclaim "{name}" is being deleted')
            if (pvc.get("spec") or {}).get("volumeName"):
                out.bound.append(pvc)
            elif vb.delay_binding(pvc, classes):
                out.to_bind.append(pvc)
            else:
                return unresolvable(UNBOUND_IMMEDIATE)
        return out

    def filter(self, state: dict, pod: PodInfo, node: NodeInfo) -> Status | None:
        got: PodVolumes = state["vb"]
        node_obj = node.node or {}
        for pvc in got.bound:
            pv = self.listers.pv(pvc["spec"]["volumeName"])
            if pv is None:
                return unresolvable(PV_NOT_EXIST)
            if not vb.node_affinity_matches(pv, node_obj):
                return unresolvable(NODE_CONFLICT)
        if got.to_bind and self.decide(got.to_bind, node_obj) is None:
            return unresolvable(BIND_CONFLICT)
        return None

    def decide(self, claims: list[dict], node: dict) -> list[tuple[dict, dict | None]] | None:
        """For each unbound claim, a static volume reachable from the node (smallest
        that fits, none chosen twice) or None to provision; None if some claim can have
        neither."""
        chosen: list[str] = []
        out: list[tuple[dict, dict | None]] = []
        pvs = self.listers.pvs()
        for pvc in claims:
            pv = vb.find_matching_volume(pvc, pvs, node=node, excluded=chosen)
            if pv is not None:
                chosen.append(pv["metadata"]["name"])
                out.append((pvc, pv))
            elif self._can_provision(pvc, node):
                out.append((pvc, None))
            else:
                return None
        return out

    def _can_provision(self, pvc: dict, node: dict) -> bool:
        sc = self.listers.storage_class(vb.claim_class(pvc))
        if sc is None or sc.get("provisioner") in (None, "", vb.NO_PROVISIONER):
            return False
        topologies = sc.get("allowedTopologies") or []
        if not topologies:
            return True
        labels = (node.get("metadata") or {}).get("labels") or {}
        return any(all(labels.get(e.get("key")) in (e.get("values") or [])
                       for e in t.get("matchLabelExpressions") or [])
                   for t in topologies)

    # ----- binding cycle -----
    async def pre_bind(self, client: Any, pod: dict, node: dict) -> str | None:
        """Reserve volumes / ask for provisioning on `node`, then wait until every claim
        of the pod is Bound. None when done, else why not (the pod is retried)."""
        names = claim_names(pod)
        if not names:
            return None
        got = self.pod_volumes(pod, names)
        if isinstance(got, Status):
            return "; ".join(got.reasons)
        plan = self.decide(got.to_bind, node) if got.to_bind else []
        if plan is None:
            return BIND_CONFLICT
        for pvc, pv in plan:
            await self._bind_one(client, pvc, pv, node["metadata"]["name"])
        ns = pod["metadata"].get("namespace") or "default"
        return await self._wait_bound(ns, [pvc["metadata"]["name"] for pvc, _ in plan])

    async def _bind_one(self, client: Any, pvc: dict, pv: dict | None, node: str) -> None:
        from pybernetes.client.api import PVCS, PVS
        md = pvc["metadata"]
        if pv is not None:  # reserve it; the PV controller completes the binding
            ann = {**vb.annotations(pv), vb.ANN_BOUND_BY_CONTROLLER: "yes"}
            ref = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                   "namespace": md["namespace"], "name": md["name"], "uid": md.get("uid"),
                   "resourceVersion": md.get("resourceVersion")}
            await client.update(PVS, {**pv, "metadata": {**pv["metadata"], "annotations": ann},
                                      "spec": {**(pv.get("spec") or {}), "claimRef": ref}})
            return
        if vb.annotations(pvc).get(vb.ANN_SELECTED_NODE) == node:
            return
        await client.patch(PVCS, md["name"],
                           {"metadata": {"annotations": {vb.ANN_SELECTED_NODE: node}}},
                           namespace=md["namespace"])

    async def _wait_bound(self, ns: str, names: list[str]) -> str | None:
        deadline = time.monotonic() + self.bind_timeout
        while not all(_is_bound(self.listers.pvc(ns, n)) for n in names):
            left = deadline - time.monotonic()
            if left <= 0:
                return "binding volumes: context deadline exceeded"
            try:
                await asyncio.wait_for(self._changed.wait(), min(left, 1.0))
            except asyncio.TimeoutError:
                pass
        return None

    def claim_changed(self) -> None:
        """The scheduler calls this on every PVC event: waiting binds look again."""
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()


def _is_bound(pvc: dict | None) -> bool:
    return bool(pvc) and (pvc.get("status") or {}).get("phase") == "Bound" and \
        bool((pvc.get("spec") or {}).get("volumeName"))
