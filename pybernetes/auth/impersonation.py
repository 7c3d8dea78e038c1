"""User impersonation (`kubectl --as=... --as-group=...`), as upstream's impersonation
filter: the Impersonate-User / -Group / -Uid / -Extra-<key> headers turn the request
into the named user's, once the authorizer allows the real user the `impersonate`
verb on each (users, groups, serviceaccounts, authentication.k8s.io uids and
userextras/<key>)."""
from __future__ import annotations

from typing import TYPE_CHECKING, Mapping
from urllib.parse import unquote

from ..apiserver.request_info import RequestInfo
from ..machinery import errors
from .authn import AUTHENTICATED, UserInfo

if TYPE_CHECKING:
    from .authz import Authorizer

ANONYMOUS = "system:anonymous"
UNAUTHENTICATED = "system:unauthenticated"
SA_PREFIX = "system:serviceaccount:"
EXTRA_PREFIX = "impersonate-extra-"


def _headers(headers: Mapping[str, str]) -> tuple[str, list[str], str, dict[str, list[str]]]:
    """(user, groups, uid, extra) asked for; aiohttp's CIMultiDict keeps repeats."""
    getall = getattr(headers, "getall", None)
    groups = list(getall("Impersonate-Group", [])) if getall else \
        ([headers["Impersonate-Group"]] if "Impersonate-Group" in headers else [])
    extra: dict[str, list[str]] = {}
    for key, value in headers.items():
        if key.lower().startswith(EXTRA_PREFIX):
            extra.setdefault(unquote(key[len(EXTRA_PREFIX):]).lower(), []).append(value)
    return (headers.get("Impersonate-User", ""), groups, headers.get("Impersonate-Uid", ""),
            extra)


def _check(authorizer: "Authorizer", user: UserInfo, info: RequestInfo) -> None:
    allowed, reason = authorizer.decide(user, info)
    if not allowed:
        from .authz import forbidden
        raise forbidden(user, info, reason)


def _attrs(resource: str, name: str, group: str = "", namespace: str = "",
           subresource: str = "") -> RequestInfo:
    return RequestInfo(True, "", "impersonate", group=group, namespace=namespace,
                       resource=resource, subresource=subresource, name=name)


def impersonate(user: UserInfo, headers: Mapping[str, str],
                authorizer: "Authorizer") -> UserInfo:
    """`user`, or the user it may impersonate by the request's headers (403 otherwise)."""
    name, groups, uid, extra = _headers(headers)
    if not (name or groups or uid or extra):
        return user
    if not name:
        asked = ["Impersonate-Group"] * bool(groups) + ["Impersonate-Uid"] * bool(uid) + \
            ["Impersonate-Extra"] * bool(extra)
        raise errors.bad_request(f"requested [{' '.join(asked)}] without impersonating a user")
    default_groups: list[str] = []
    if name.startswith(SA_PREFIX) and name.count(":") == 3:
        ns, sa = name[len(SA_PREFIX):].split(":")
        _check(authorizer, user, _attrs("serviceaccounts", sa, namespace=ns))
        default_groups = ["system:serviceaccounts", f"system:serviceaccounts:{ns}"]
    else:
        _check(authorizer, user, _attrs("users", name))
    for g in groups:
        _check(authorizer, user, _attrs("groups", g))
    if uid:
        _check(authorizer, user, _attrs("uids", uid, group="authentication.k8s.io"))
    for key, values in extra.items():
        for v in values:
            _check(authorizer, user, _attrs("userextras", v, group="authentication.k8s.io",
                                            subresource=key))
    out = list(groups) if groups else default_groups
    marker = UNAUTHENTICATED if name == ANONYMOUS else AUTHENTICATED
    if marker not in out:
        out.append(marker)
    return UserInfo(name, out, uid, extra)
