"""Admission: mutating then validating plugins, run on every write.

A plugin is a small class in its own module under pybernetes/admission/. The
chain runs `admit` (may mutate) for every plugin, then `validate` (may only
reject, by raising a StatusError).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..api.strategy import Strategy
    from ..apiserver.state import APIState
    from ..auth.authn import UserInfo


@dataclass
class Attributes:
    """What is being written: upstream's admission.Attributes."""

    operation: str  # CREATE | UPDATE | DELETE | CONNECT
    strategy: "Strategy"
    namespace: str
    name: str
    obj: dict | None
    old: dict | None
    user: "UserInfo"
    subresource: str = ""
    dry_run: bool = False
    options: dict[str, Any] = field(default_factory=dict)


class Plugin:
    name = ""

    async def admit(self, attrs: Attributes, api: "APIState") -> None:
        """Mutate attrs.obj if needed."""

    async def validate(self, attrs: Attributes, api: "APIState") -> None:
        """Raise StatusError to reject."""


class Chain:
    def __init__(self, plugins: list[Plugin]):
        self.plugins = plugins

    async def run(self, attrs: Attributes, api: "APIState") -> None:
        for p in self.plugins:
            await p.admit(attrs, api)
        for p in self.plugins:
            await p.validate(attrs, api)


def default_chain(disabled: list[str] | tuple[str, ...] = ()) -> Chain:
    """Upstream's order: NamespaceLifecycle first, LimitRanger early (its defaults are
    what quota counts), then ServiceAccount, DefaultStorageClass (quota charges the class),
    StorageObjectInUseProtection, RuntimeClass (the pod's overhead is what quota charges),
    ResourceQuota last (it charges only what every other plugin let in)."""
    from .default_ingress_class import DefaultIngressClass
    from .default_storage_class import DefaultStorageClass
    from .limit_ranger import LimitRanger
    from .namespace_lifecycle import NamespaceLifecycle
    from .resource_quota import ResourceQuota
    from .runtime_class import RuntimeClass
    from .service_account import ServiceAccount
    from .storage_object_in_use_protection import StorageObjectInUseProtection
    plugins: list[Plugin] = [NamespaceLifecycle(), LimitRanger(), ServiceAccount(),
                             DefaultStorageClass(), DefaultIngressClass(),
                             StorageObjectInUseProtection(), RuntimeClass(),
                             ResourceQuota()]
    return Chain([p for p in plugins if p.name not in disabled])


def plugin_names() -> list[str]:
    """What --disable-admission-plugins may name."""
    return [p.name for p in default_chain().plugins]
