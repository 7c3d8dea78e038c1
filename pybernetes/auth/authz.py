"""Authorization: the modes of `--authorization-mode`, asked in order, first allow wins
(upstream's union authorizer); members of system:masters are always allowed (upstream's
privileged-group authorizer, ahead of the list).

AlwaysAllow (the default for now) lets every authenticated user do everything;
anonymous users may then only read the public health and version endpoints (what
upstream's system:public-info-viewer role grants). RBAC asks the stored Roles and
bindings (auth/rbac.py); under RBAC alone anonymous users get what RBAC grants
system:unauthenticated.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..apiserver.request_info import RequestInfo
from ..machinery import errors
from .authn import UserInfo

if TYPE_CHECKING:
    from ..apiserver.state import APIState

PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")
MASTERS = "system:masters"
MODES = ("AlwaysAllow", "AlwaysDeny", "RBAC")
DEFAULT_MODES = ("AlwaysAllow",)


def parse_modes(value: str) -> list[str]:
    """`RBAC,AlwaysAllow` -> ["RBAC", "AlwaysAllow"]; ValueError naming what is wrong."""
    modes = [m.strip() for m in value.split(",") if m.strip()]
    if not modes:
        raise ValueError("at least one authorization mode must be given")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        raise ValueError(f"authorization mode(s) {', '.join(unknown)} not supported "
                         f"(supported: {', '.join(MODES)})")
    if len(set(modes)) != len(modes):
        raise ValueError(f"authorization mode(s) given more than once: {value}")
    return modes


def _always_allow(user: UserInfo, info: RequestInfo) -> tuple[bool, str]:
    if "system:authenticated" in user.groups:
        return True, ""
    path = info.path.rstrip("/") or "/"
    public = not info.is_resource_request and info.verb == "get" and any(
        path == p or path.startswith(p + "/") for p in PUBLIC_PATHS)
    return public, ""


class Authorizer:
    def __init__(self, modes: list[str] | tuple[str, ...] = DEFAULT_MODES,
                 api: "APIState | None" = None):
        self.modes = list(modes)
        self.rbac = None
        if "RBAC" in self.modes:
            if api is None:
                raise ValueError("the RBAC authorizer needs the API server's state")
            from .rbac import RBACIndex
            self.rbac = RBACIndex(api)

    def start(self) -> None:
        if self.rbac is not None:
            from .rbac_escalation import install
            self.rbac.start()
            install(self.rbac.api, self)

    async def stop(self) -> None:
        if self.rbac is not None:
            await self.rbac.stop()

    def decide(self, user: UserInfo, info: RequestInfo) -> tuple[bool, str]:
        """(allowed, reason) as the union of the modes."""
        if MASTERS in user.groups:
            return True, ""  # upstream's privileged-group authorizer gives no reason
        reasons = []
        for mode in self.modes:
            if mode == "AlwaysAllow":
                allowed, reason = _always_allow(user, info)
            elif mode == "RBAC" and self.rbac is not None:
                allowed, reason = self.rbac.policy.authorize(user, info)
            else:
                allowed, reason = False, ""
            if allowed:
                return True, reason
            if reason:
                reasons.append(reason)
        return False, ", ".join(reasons)

    def authorize(self, user: UserInfo, info: RequestInfo) -> None:
        allowed, reason = self.decide(user, info)
        if not allowed:
            raise forbidden(user, info, reason)


def forbidden(user: UserInfo, info: RequestInfo, reason: str = "") -> errors.StatusError:
    """Upstream's 403: `pods is forbidden: User "x" cannot list resource "pods" in API
    group "" in the namespace "default"` (the subresource joins the resource in the
    sentence, not in the qualified name), or `forbidden: User "x" cannot get path "/x"`."""
    why = f": {reason}" if reason else ""
    if not info.is_resource_request:
        return errors.StatusError(403, "Forbidden", f'forbidden: User "{user.username}" '
                                  f'cannot {info.verb} path "{info.path}"{why}', {})
    resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
    scope = (f'in the namespace "{info.namespace}"' if info.namespace
             else "at the cluster scope")
    sentence = (f'User "{user.username}" cannot {info.verb} resource "{resource}" in API '
                f'group "{info.group}" {scope}{why}')
    return errors.forbidden_message(info.resource, info.name or None, sentence, info.group)
