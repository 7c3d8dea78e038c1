"""core/v1 ("" group): one Strategy per resource, in upstream's discovery order."""
from __future__ import annotations

from .componentstatuses import ComponentStatusStrategy
from .configmaps import ConfigMapStrategy
from .endpoints import EndpointsStrategy
from .events import EventStrategy, core_event_to_events_v1, events_v1_to_core_event
from .limitranges import LimitRangeStrategy
from .namespaces import NamespaceStrategy
from .nodes import NodeStrategy
from .persistentvolumes import PersistentVolumeClaimStrategy, PersistentVolumeStrategy
from .pods import PodStrategy
from .podtemplates import PodTemplateStrategy
from .replicationcontrollers import ReplicationControllerStrategy
from .resourcequotas import ResourceQuotaStrategy
from .secrets import SecretStrategy
from .serviceaccounts import ServiceAccountStrategy
from .services import ServiceStrategy

STRATEGIES = [
    ComponentStatusStrategy(),
    ConfigMapStrategy(),
    EndpointsStrategy(),
    EventStrategy(),
    LimitRangeStrategy(),
    NamespaceStrategy(),
    NodeStrategy(),
    PersistentVolumeClaimStrategy(),
    PersistentVolumeStrategy(),
    PodStrategy(),
    PodTemplateStrategy(),
    ReplicationControllerStrategy(),
    ResourceQuotaStrategy(),
    SecretStrategy(),
    ServiceAccountStrategy(),
    ServiceStrategy(),
]

__all__ = ["STRATEGIES", "core_event_to_events_v1", "events_v1_to_core_event"]
