"""Plain-dict nodes and pods for the scheduler's unit tests."""
from __future__ import annotations

import random

from pybernetes.scheduler.cache import Cache, PodInfo
from pybernetes.scheduler.framework import Framework
from pybernetes.scheduler.plugins import default_plugins
from pybernetes.scheduler.plugins.default_preemption import DefaultPreemption


def node(name: str, cpu: str = "4", memory: str = "8Gi", pods: int = 110, labels: dict | None = None,
         taints: list | None = None, unschedulable: bool = False) -> dict:
    alloc = {"cpu": cpu, "memory": memory, "pods": str(pods), "ephemeral-storage": "100Gi"}
    spec: dict = {}
    if taints:
        spec["taints"] = taints
    if unschedulable:
        spec["unschedulable"] = True
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, **(labels or {})}},
            "spec": spec, "status": {"allocatable": alloc, "capacity": alloc}}


def pod(name: str, cpu: str | None = None, memory: str | None = None, ns: str = "default",
        labels: dict | None = None, priority: int = 0, node_name: str = "", **spec) -> dict:
    req = {k: v for k, v in (("cpu", cpu), ("memory", memory)) if v}
    c = {"name": "c", "image": "img", "resources": {"requests": req} if req else {}}
    s = {"containers": [c], "schedulerName": "default-scheduler", "priority": priority, **spec}
    if node_name:
        s["nodeName"] = node_name
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": ns, "labels": labels or {}, "uid": f"uid-{name}"},
            "spec": s, "status": {"phase": "Pending"}}


def cluster(*nodes: dict, pods: tuple = ()) -> Framework:
    cache = Cache()
    for n in nodes:
        cache.set_node(n)
    for p in pods:
        cache.add_pod(p)
    return Framework(default_plugins(), cache, rng=random.Random(1), preemption=DefaultPreemption())


def schedule(fw: Framework, p: dict):
    return fw.schedule(PodInfo.of(p))


def place(fw: Framework, p: dict) -> str:
    """Schedule and assume, like the scheduler loop does; the chosen node's name."""
    pi = PodInfo.of(p)
    res = fw.schedule(pi)
    assert res.node, res.error and res.error.message()
    fw.cache.assume(pi, res.node)
    return res.node
