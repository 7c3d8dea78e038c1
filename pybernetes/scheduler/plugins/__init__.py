"""The default plugin set, in upstream's filter order."""
from __future__ import annotations

from pybernetes.scheduler.framework import Plugin


def default_plugins() -> list[Plugin]:
    from pybernetes.scheduler.plugins.balanced_allocation import BalancedAllocation
    from pybernetes.scheduler.plugins.inter_pod_affinity import InterPodAffinity
    from pybernetes.scheduler.plugins.node_affinity import NodeAffinity
    from pybernetes.scheduler.plugins.node_name import NodeName
    from pybernetes.scheduler.plugins.node_ports import NodePorts
    from pybernetes.scheduler.plugins.node_resources_fit import NodeResourcesFit
    from pybernetes.scheduler.plugins.node_unschedulable import NodeUnschedulable
    from pybernetes.scheduler.plugins.pod_topology_spread import PodTopologySpread
    from pybernetes.scheduler.plugins.taint_toleration import TaintToleration
    from pybernetes.scheduler.plugins.volume_binding import VolumeBinding
    return [NodeUnschedulable(), NodeName(), TaintToleration(), NodeAffinity(), NodePorts(),
            NodeResourcesFit(), VolumeBinding(), PodTopologySpread(), InterPodAffinity(),
            BalancedAllocation()]
