"""Authorization. Until RBAC lands, every authenticated user may do everything;
anonymous users may only read the public health and version endpoints (what
upstream's system:public-info-viewer role grants)."""
from __future__ import annotations

from ..apiserver.request_info import RequestInfo
from ..machinery import errors
from .authn import UserInfo

PUBLIC_PATHS = ("/healthz", "/livez", "/readyz", "/version")


class Authorizer:
    def authorize(self, user: UserInfo, info: RequestInfo) -> None:
        if "system:authenticated" in user.groups or "system:masters" in user.groups:
            return
        path = info.path.rstrip("/") or "/"
        if not info.is_resource_request and info.verb == "get" and any(
                path == p or path.startswith(p + "/") for p in PUBLIC_PATHS):
            return
        if info.is_resource_request:
            raise errors.forbidden_error(user.username, info.verb, info.resource, info.group,
                                         info.namespace or None, info.name or None)
        raise errors.StatusError(403, "Forbidden", f'forbidden: User "{user.username}" cannot '
                                 f'{info.verb} path "{info.path}"', {})
