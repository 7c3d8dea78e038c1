"""NamespaceLifecycle: no new objects in missing or terminating namespaces, and the
system namespaces can't be deleted (upstream's plugin of the same name)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..machinery import errors
from .chain import Attributes, Plugin

if TYPE_CHECKING:
    from ..apiserver.state import APIState

IMMORTAL = ("default", "kube-system", "kube-public")
# objects that may be written in a terminating namespace (the namespace controller
# and the node/lease machinery still need them)
_EXEMPT_IN_TERMINATING = {"events", "leases"}


class NamespaceLifecycle(Plugin):
    name = "NamespaceLifecycle"

    async def validate(self, attrs: Attributes, api: "APIState") -> None:
        s = attrs.strategy
        if s.plural == "namespaces" and s.group == "":
            if attrs.operation == "DELETE" and attrs.name in IMMORTAL:
                raise errors.forbidden_message("namespaces", attrs.name,
                                               "this namespace may not be deleted")
            return
        if not s.namespaced or attrs.operation != "CREATE":
            return
        ns = await api.get_namespace(attrs.namespace)
        if ns is None:
            raise errors.not_found("namespaces", attrs.namespace)
        terminating = ns.get("metadata", {}).get("deletionTimestamp") or \
            ns.get("status", {}).get("phase") == "Terminating"
        if terminating and s.plural not in _EXEMPT_IN_TERMINATING:
            raise errors.StatusError(
                403, "Forbidden",
                f'{s.plural} "{attrs.name}" is forbidden: unable to create new content in '
                f"namespace {attrs.namespace} because it is being terminated",
                {"name": attrs.name, "kind": s.plural,
                 "causes": [{"reason": "NamespaceTerminating",
                             "message": f"namespace {attrs.namespace} is being terminated",
                             "field": "metadata.namespace"}]})
