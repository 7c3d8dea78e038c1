"""The RBAC authorizer: may this user do this request, by the Roles and bindings stored?

As upstream's plugin/pkg/auth/authorizer/rbac: a request is allowed when a
ClusterRoleBinding, or a RoleBinding in the request's namespace, names the user (by
user name, one of its groups, or as a ServiceAccount) and points at a role with a
rule covering the request. Nothing denies; a missing role only adds to the reason.

Every request is checked, so the policy is read from an in-memory index, rebuilt
only after one of the four RBAC watch caches saw an event (a background
subscription per cache marks the index stale) — never a storage read per request.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterable

from ..apiserver.request_info import RequestInfo
from .authn import UserInfo

if TYPE_CHECKING:
    from ..apiserver.state import APIState

log = logging.getLogger("pybernetes.auth.rbac")
GROUP = "rbac.authorization.k8s.io"
SA_PREFIX = "system:serviceaccount:"
PLURALS = ("roles", "rolebindings", "clusterroles", "clusterrolebindings")


# ---- rule matching (upstream's pkg/apis/rbac/v1 evaluation helpers) ------------------

def verb_matches(rule: dict, verb: str) -> bool:
    return any(v == "*" or v == verb for v in rule.get("verbs") or ())


def api_group_matches(rule: dict, group: str) -> bool:
    return any(g == "*" or g == group for g in rule.get("apiGroups") or ())


def resource_matches(rule: dict, resource: str, subresource: str) -> bool:
    """`*`, the exact `resource[/subresource]`, or `*/subresource` for any resource's."""
    combined = f"{resource}/{subresource}" if subresource else resource
    for r in rule.get("resources") or ():
        if r == "*" or r == combined or (subresource and r == "*/" + subresource):
            return True
    return False


def resource_name_matches(rule: dict, name: str) -> bool:
    """A rule with resourceNames never covers a request without a name (list, watch,
    create of a generated name), as upstream."""
    names = rule.get("resourceNames") or ()
    return not names or name in names


def non_resource_url_matches(rule: dict, path: str) -> bool:
    for url in rule.get("nonResourceURLs") or ():
        if url == "*" or url == path:
            return True
        if url.endswith("*") and path.startswith(url.rstrip("*")):
            return True
    return False


def rule_allows(rule: dict, info: RequestInfo) -> bool:
    if not verb_matches(rule, info.verb):
        return False
    if info.is_resource_request:
        return (api_group_matches(rule, info.group)
                and resource_matches(rule, info.resource, info.subresource)
                and resource_name_matches(rule, info.name))
    return non_resource_url_matches(rule, info.path)


# ---- subjects --------------------------------------------------------------------

def subject_keys(subject: dict, binding_namespace: str) -> str | None:
    """The key a user must hold for `subject` to name it: "u:<name>" or "g:<group>"
    (a ServiceAccount is the user system:serviceaccount:<ns>:<name>; a RoleBinding's
    ServiceAccount without a namespace is in the binding's own, as upstream)."""
    kind, name = subject.get("kind"), subject.get("name") or ""
    if kind == "User":
        return "u:" + name
    if kind == "Group":
        return "g:" + name
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return f"u:{SA_PREFIX}{ns}:{name}" if ns and name else None
    return None


def user_keys(user: UserInfo) -> list[str]:
    return ["u:" + user.username, *("g:" + g for g in user.groups)]


# ---- the index ---------------------------------------------------------------------

def _describe_subject(subject: dict) -> str:
    """As upstream prints a subject in an "allowed by" reason."""
    kind, name, ns = subject.get("kind"), subject.get("name", ""), subject.get("namespace")
    return f'{kind} "{name}/{ns}"' if ns else f'{kind} "{name}"'


@dataclass
class Policy:
    """A snapshot of the stored policy, indexed by subject key."""
    cluster_roles: dict[str, list[dict]] = field(default_factory=dict)
    roles: dict[tuple[str, str], list[dict]] = field(default_factory=dict)
    # subject key -> (ClusterRole name, "ClusterRoleBinding "b" of ClusterRole "r" to ...")
    cluster_bindings: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # (namespace, subject key) -> (roleRef kind, roleRef name, description)
    bindings: dict[tuple[str, str], list[tuple[str, str, str]]] = field(default_factory=dict)

    @classmethod
    def build(cls, roles: Iterable[dict], cluster_roles: Iterable[dict],
              role_bindings: Iterable[dict], cluster_role_bindings: Iterable[dict]) -> "Policy":
        p = cls()
        for r in cluster_roles:
            p.cluster_roles[r["metadata"]["name"]] = r.get("rules") or []
        for r in roles:
            md = r["metadata"]
            p.roles[(md.get("namespace", ""), md["name"])] = r.get("rules") or []
        for b in cluster_role_bindings:
            role = (b.get("roleRef") or {}).get("name", "")
            for s in b.get("subjects") or ():
                key = subject_keys(s, "")
                if key:
                    what = (f'ClusterRoleBinding "{b["metadata"]["name"]}" of ClusterRole '
                            f'"{role}" to {_describe_subject(s)}')
                    p.cluster_bindings.setdefault(key, []).append((role, what))
        for b in role_bindings:
            ref, md = b.get("roleRef") or {}, b["metadata"]
            ns = md.get("namespace", "")
            kind, role = ref.get("kind", ""), ref.get("name", "")
            for s in b.get("subjects") or ():
                key = subject_keys(s, ns)
                if key:
                    what = (f'RoleBinding "{md["name"]}/{ns}" of {kind} "{role}" to '
                            f'{_describe_subject(s)}')
                    p.bindings.setdefault((ns, key), []).append((kind, role, what))
        return p

    def rule_sets(self, user: UserInfo, namespace: str
                  ) -> Iterable[tuple[list[dict] | None, str, str]]:
        """(rules or None when the role is missing, the role, the binding) of every role
        bound to `user` that applies in `namespace` ("" = ClusterRoleBindings only)."""
        keys = user_keys(user)
        for key in keys:
            for role, what in self.cluster_bindings.get(key, ()):
                yield self.cluster_roles.get(role), f'clusterrole.{GROUP} "{role}"', what
        if not namespace:
            return
        for key in keys:
            for kind, role, what in self.bindings.get((namespace, key), ()):
                if kind == "ClusterRole":
                    yield self.cluster_roles.get(role), f'clusterrole.{GROUP} "{role}"', what
                else:
                    yield self.roles.get((namespace, role)), f'role.{GROUP} "{role}"', what

    def authorize(self, user: UserInfo, info: RequestInfo) -> tuple[bool, str]:
        """(allowed, reason), as upstream's: "RBAC: allowed by ..." or the missing roles."""
        missing: list[str] = []
        namespace = info.namespace if info.is_resource_request else ""
        for rules, role, binding in self.rule_sets(user, namespace):
            if rules is None:
                missing.append(f"{role} not found")
                continue
            if any(rule_allows(r, info) for r in rules):
                return True, f"RBAC: allowed by {binding}"
        return False, ("RBAC: " + ", ".join(sorted(set(missing)))) if missing else ""

    def rules_for(self, user: UserInfo, namespace: str) -> list[dict]:
        """Every rule that applies to `user` in `namespace` (SelfSubjectRulesReview)."""
        out: list[dict] = []
        for rules, _, _ in self.rule_sets(user, namespace):
            out.extend(rules or ())
        return out


class RBACIndex:
    """The Policy of an API server's watch caches, rebuilt lazily after RBAC events."""

    def __init__(self, api: "APIState"):
        self.api = api
        self._policy: Policy | None = None
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        for plural in PLURALS:
            rs = self.api.resource(GROUP, "v1", plural)
            if rs is not None:
                self._tasks.append(asyncio.create_task(self._follow(rs.cache),
                                                       name=f"rbac-index {plural}"))

    async def stop(self) -> None:
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):
                pass
        self._tasks.clear()

    async def _follow(self, cache) -> None:
        """Mark the policy stale on each event; resubscribe when the cache drops us."""
        while True:
            self._policy = None
            sub = cache.subscribe(cache.prefix, cache.revision)
            try:
                async for _ in sub:
                    self._policy = None
            finally:
                sub.close()
            await asyncio.sleep(0.05)

    @property
    def policy(self) -> Policy:
        policy = self._policy
        if policy is None:
            policy = self._policy = self._build()
        return policy

    def _build(self) -> Policy:
        def objs(plural: str) -> list[dict]:
            rs = self.api.resource(GROUP, "v1", plural)
            return rs.cache.list(rs.prefix("")) if rs is not None else []
        return Policy.build(objs("roles"), objs("clusterroles"), objs("rolebindings"),
                            objs("clusterrolebindings"))
