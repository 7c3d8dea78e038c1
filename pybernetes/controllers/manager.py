"""The controller manager: every controller in one process, one event loop, sharing
informers, optionally behind a leader-election Lease (kube-controller-manager)."""
from __future__ import annotations

import asyncio
import logging
import socket
import uuid
from typing import Any

from pybernetes.client.api import APIClient
from pybernetes.client.events import EventRecorder
from pybernetes.client.leader_election import LeaderElector
from pybernetes.controllers.base import Controller, SharedInformers

log = logging.getLogger(__name__)

LEASE_NAME = "kube-controller-manager"


def controller_classes() -> dict[str, type[Controller]]:
    from pybernetes.controllers.clusterrole_aggregation import ClusterRoleAggregationController
    from pybernetes.controllers.cronjob import CronJobController
    from pybernetes.controllers.daemonset import DaemonSetController
    from pybernetes.controllers.deployment import DeploymentController
    from pybernetes.controllers.disruption import DisruptionController
    from pybernetes.controllers.endpoints import EndpointsController, EndpointSliceController
    from pybernetes.controllers.garbage_collector import GarbageCollector
    from pybernetes.controllers.job import JobController
    from pybernetes.controllers.local_path_provisioner import LocalPathProvisioner
    from pybernetes.controllers.namespace import NamespaceController
    from pybernetes.controllers.node_lifecycle import NodeLifecycleController
    from pybernetes.controllers.nodeipam import NodeIPAMController
    from pybernetes.controllers.persistentvolume import PersistentVolumeBinder
    from pybernetes.controllers.pv_protection import PVProtectionController
    from pybernetes.controllers.pvc_protection import PVCProtectionController
    from pybernetes.controllers.replicaset import ReplicaSetController
    from pybernetes.controllers.resourcequota import ResourceQuotaController
    from pybernetes.controllers.service_lb import ServiceLBController
    from pybernetes.controllers.serviceaccount import ServiceAccountController
    from pybernetes.controllers.serviceaccount_tokens import TokensController
    from pybernetes.controllers.statefulset import StatefulSetController
    return {"clusterrole-aggregation": ClusterRoleAggregationController,
            "cronjob": CronJobController, "daemonset": DaemonSetController,
            "deployment": DeploymentController, "disruption": DisruptionController,
            "endpoints": EndpointsController,
            "endpointslice": EndpointSliceController, "garbagecollector": GarbageCollector,
            "job": JobController, "local-path-provisioner": LocalPathProvisioner,
            "namespace": NamespaceController, "nodeipam": NodeIPAMController,
            "nodelifecycle": NodeLifecycleController,
            "persistentvolume-binder": PersistentVolumeBinder,
            "pv-protection": PVProtectionController, "pvc-protection": PVCProtectionController,
            "replicaset": ReplicaSetController, "resourcequota": ResourceQuotaController,
            "service-lb": ServiceLBController,
            "serviceaccount": ServiceAccountController,
            "serviceaccount-token": TokensController,
            "statefulset": StatefulSetController}


def select(spec: str, known: list[str]) -> list[str]:
    """--controllers as upstream: '*' is every controller, 'foo' enables, '-foo' disables."""
    items = [s.strip() for s in spec.split(",") if s.strip()] or ["*"]
    unknown = [s.lstrip("-") for s in items if s != "*" and s.lstrip("-") not in known]
    if unknown:
        raise ValueError(f"unknown controller(s): {', '.join(unknown)} "
                         f"(known: {', '.join(known)})")
    star = "*" in items
    return [n for n in known
            if f"-{n}" not in items and (n in items or star)]


async def run_controllers(client: Any, names: list[str], root_ca: str = "") -> None:
    """Start the informers the chosen controllers need, wait for their caches, then
    serve every controller's queue until cancelled."""
    classes = controller_classes()
    informers = SharedInformers(client)
    controllers = [classes[n](client, informers, EventRecorder(client, f"{n}-controller"))
                   for n in names]
    for c in controllers:
        if hasattr(c, "root_ca"):
            c.root_ca = root_ca
    await informers.start()
    try:
        await informers.wait_synced()
        log.info("controllers started: %s", ", ".join(names))
        await asyncio.gather(*(c.run() for c in controllers))
    finally:
        for c in controllers:
            c.queue.shutdown()
        await informers.stop()


async def run(kubeconfig: str, names: list[str], leader_elect: bool,
              root_ca_file: str = "", timing: dict[str, float] | None = None) -> None:
    from pybernetes.controllers.serviceaccount import ca_from_kubeconfig
    if root_ca_file:
        with open(root_ca_file) as f:
            root_ca = f.read()
    else:
        root_ca = ca_from_kubeconfig(kubeconfig)
    client = await APIClient.from_kubeconfig(kubeconfig, user_agent="pybernetes-controller-manager")
    try:
        if not leader_elect:
            await run_controllers(client, names, root_ca)
            return
        identity = f"{socket.gethostname()}_{uuid.uuid4()}"
        elector = LeaderElector(client, LEASE_NAME, identity, **(timing or {}))
        await elector.run(lambda: run_controllers(client, names, root_ca))
    finally:
        await client.close()
