"""The registry of every resource the API server serves.

Each group module (core, apps, batch, ...) defines its strategies and a
`STRATEGIES` list; this module collects them in discovery order.
"""
from __future__ import annotations

import functools
import importlib

from .strategy import Registry

# Discovery order: the order kube-apiserver lists its groups in.
GROUP_MODULES = (
    "core",
    "apps",
    "events",
    "authentication",
    "authorization",
    "autoscaling",
    "batch",
    "certificates",
    "networking",
    "policy",
    "rbac",
    "storage",
    "admissionregistration",
    "apiextensions",
    "scheduling",
    "coordination",
    "node",
    "discovery",
    "flowcontrol",
)


@functools.cache
def registry() -> Registry:
    reg = Registry()
    for name in GROUP_MODULES:
        try:
            mod = importlib.import_module(f"pybernetes.api.{name}")
        except ModuleNotFoundError as e:
            if e.name == f"pybernetes.api.{name}":
                continue  # group not built yet
            raise
        for strategy in mod.STRATEGIES:
            reg.register(strategy)
    return reg
