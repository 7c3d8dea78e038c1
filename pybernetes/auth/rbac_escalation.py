"""RBAC's escalation check on writing Roles and bindings, as upstream's policy-based
RBAC storage: nobody grants permissions they do not hold.

  - a Role/ClusterRole write is allowed to system:masters, to a user with `escalate`
    on it, or when the writer already holds every rule it contains (an
    aggregationRule, which may gather anything, needs everything: cluster-admin);
  - a binding write is allowed to system:masters, to a user with `bind` on the role it
    references, or when the writer holds every rule of that role (in the binding's
    namespace).

Installed as storage hooks of the four RBAC resources, only under RBAC.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..apiserver.request_info import RequestInfo
from ..machinery import errors
from .authn import UserInfo
from .rbac import GROUP

if TYPE_CHECKING:
    from ..apiserver.state import APIState
    from .authz import Authorizer

MASTERS = "system:masters"
FULL_AUTHORITY = [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
                  {"verbs": ["*"], "nonResourceURLs": ["*"]}]


def breakdown(rule: dict) -> list[dict]:
    """One rule per group x resource x verb (x name), or per URL x verb."""
    out = []
    names = rule.get("resourceNames") or []
    for g in rule.get("apiGroups") or ():
        for r in rule.get("resources") or ():
            for v in rule.get("verbs") or ():
                base = {"apiGroups": [g], "resources": [r], "verbs": [v]}
                out += [{**base, "resourceNames": [n]} for n in names] or [base]
    for url in rule.get("nonResourceURLs") or ():
        for v in rule.get("verbs") or ():
            out.append({"nonResourceURLs": [url], "verbs": [v]})
    return out


def _has_all(have: list[str], want: list[str]) -> bool:
    return all(w in have for w in want)


def _resources_cover(owner: list[str], wanted: list[str]) -> bool:
    if "*" in owner or _has_all(owner, wanted):
        return True
    for path in wanted:
        if path in owner:
            continue
        if "/" not in path or "*/" + path.split("/", 1)[1] not in owner:
            return False
    return True


def _urls_cover(owner: list[str], wanted: list[str]) -> bool:
    return all(any(o == w or (o.endswith("*") and w.startswith(o.rstrip("*")))
                   for o in owner) for w in wanted)


def rule_covers(owner: dict, sub: dict) -> bool:
    ov, og = owner.get("verbs") or [], owner.get("apiGroups") or []
    on, sn = owner.get("resourceNames") or [], sub.get("resourceNames") or []
    names_ok = (not on) if not sn else (not on or _has_all(on, sn))
    return (("*" in ov or _has_all(ov, sub.get("verbs") or []))
            and ("*" in og or _has_all(og, sub.get("apiGroups") or []))
            and _resources_cover(owner.get("resources") or [], sub.get("resources") or [])
            and _urls_cover(owner.get("nonResourceURLs") or [],
                            sub.get("nonResourceURLs") or [])
            and names_ok)


def missing_rules(owner: list[dict], requested: list[dict]) -> list[dict]:
    return [atom for r in requested for atom in breakdown(r)
            if not any(rule_covers(o, atom) for o in owner)]


def _go_list(values: list[str]) -> str:
    return "[" + " ".join(f'"{v}"' for v in values) + "]"


def compact_string(rule: dict) -> str:
    """As upstream's CompactString: `{APIGroups:["apps"], Resources:["x"], Verbs:["get"]}`."""
    parts = [f"{label}:{_go_list(rule[key])}" for label, key in (
        ("APIGroups", "apiGroups"), ("Resources", "resources"),
        ("ResourceNames", "resourceNames"), ("NonResourceURLs", "nonResourceURLs"),
        ("Verbs", "verbs")) if rule.get(key)]
    return "{" + ", ".join(parts) + "}"


def _compacted(atoms: list[dict]) -> list[dict]:
    """Atoms of one group and resource (no names) merged into one rule, verbs joined."""
    merged: dict[tuple, dict] = {}
    out: list[dict] = []
    for a in atoms:
        if a.get("resources") and not a.get("resourceNames"):
            key = (a["apiGroups"][0], a["resources"][0])
            if key in merged:
                if a["verbs"][0] not in merged[key]["verbs"]:
                    merged[key]["verbs"].append(a["verbs"][0])
                continue
            merged[key] = a = {**a, "verbs": list(a["verbs"])}
        out.append(a)
    return out


class EscalationCheck:
    """Storage hook of one RBAC resource."""

    def __init__(self, api: "APIState", authorizer: "Authorizer", plural: str):
        self.api, self.authorizer, self.plural = api, authorizer, plural
        self.binding = plural.endswith("bindings")

    async def before_create(self, obj: dict, ctx: Any) -> None:
        self._check(obj, ctx.user)

    async def before_update(self, new: dict, old: dict, ctx: Any) -> None:
        fields = ("rules", "aggregationRule", "roleRef", "subjects")
        if all(new.get(f) == old.get(f) for f in fields):
            return  # metadata only (labels, finalizers, owners): nothing is granted
        self._check(new, ctx.user)

    def _allowed(self, user: UserInfo, verb: str, resource: str, name: str, ns: str) -> bool:
        info = RequestInfo(True, "", verb, group=GROUP, namespace=ns, resource=resource,
                           name=name)
        return self.authorizer.decide(user, info)[0]

    def _check(self, obj: dict, user: UserInfo) -> None:
        if MASTERS in user.groups:
            return
        md = obj.get("metadata") or {}
        name, ns = md.get("name", ""), md.get("namespace", "")
        policy = self.authorizer.rbac.policy
        if self.binding:
            ref = obj.get("roleRef") or {}
            resource = "clusterroles" if ref.get("kind") == "ClusterRole" else "roles"
            role_ns = "" if resource == "clusterroles" else ns
            if self._allowed(user, "bind", resource, ref.get("name", ""), role_ns):
                return
            rules = (policy.cluster_roles.get(ref.get("name", "")) if role_ns == ""
                     else policy.roles.get((ns, ref.get("name", ""))))
            if rules is None:
                kind = "clusterrole" if role_ns == "" else "role"
                raise errors.forbidden_message(self.plural, name, f'{kind}.{GROUP} '
                                               f'"{ref.get("name", "")}" not found', GROUP)
        else:
            if self._allowed(user, "escalate", self.plural, name, ns):
                return
            if obj.get("aggregationRule") and missing_rules(policy.rules_for(user, ns),
                                                            FULL_AUTHORITY):
                raise errors.forbidden_message(self.plural, name, "must have cluster-admin "
                                               "privileges to use the aggregationRule", GROUP)
            rules = obj.get("rules") or []
        missing = missing_rules(policy.rules_for(user, ns), rules)
        if missing:
            lines = sorted({compact_string(r) for r in _compacted(missing)})
            raise errors.forbidden_message(
                self.plural, name, f'user "{user.username}" (groups={_go_list(user.groups)}) '
                "is attempting to grant RBAC permissions not currently held:\n"
                + "\n".join(lines), GROUP)


def install(api: "APIState", authorizer: "Authorizer") -> None:
    for plural in ("roles", "clusterroles", "rolebindings", "clusterrolebindings"):
        rs = api.resource(GROUP, "v1", plural)
        if rs is not None and not any(isinstance(h, EscalationCheck) for h in rs.hooks):
            rs.hooks.append(EscalationCheck(api, authorizer, plural))
