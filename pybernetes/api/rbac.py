"""rbac.authorization.k8s.io/v1: roles, rolebindings, clusterroles, clusterrolebindings."""
from __future__ import annotations

from typing import Any

from ..machinery import errors, validation
from ..machinery.errors import FieldError
from ..machinery.printing import age
from .apps import GoValue, name_of
from .strategy import AGE_COLUMN, NAME_COLUMN, Column, Strategy

GROUP = "rbac.authorization.k8s.io"
CREATED_AT_COLUMN = Column("Created At", "date", "", AGE_COLUMN.description)


def _created_at(obj: dict) -> str:
    return obj.get("metadata", {}).get("creationTimestamp", "")


def validate_policy_rule(rule: dict, namespaced: bool, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    if not rule.get("verbs"):
        out.append(errors.required(f"{path}.verbs", "verbs must contain at least one value"))
    urls = rule.get("nonResourceURLs") or []
    if urls:
        bad = GoValue("[]string{" + ", ".join(f'"{u}"' for u in urls) + "}")
        if namespaced:
            out.append(errors.invalid_value(f"{path}.nonResourceURLs", bad,
                                            "namespaced rules cannot apply to non-resource URLs"))
        if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
            out.append(errors.invalid_value(f"{path}.nonResourceURLs", bad,
                                            "rules cannot apply to both regular resources and "
                                            "non-resource URLs"))
        return out
    if not rule.get("apiGroups"):
        out.append(errors.required(f"{path}.apiGroups",
                                   "resource rules must supply at least one api group"))
    if not rule.get("resources"):
        out.append(errors.required(f"{path}.resources",
                                   "resource rules must supply at least one resource"))
    return out


def _validate_rules(obj: dict, namespaced: bool) -> list[FieldError]:
    out: list[FieldError] = []
    for i, rule in enumerate(obj.get("rules") or []):
        out += validate_policy_rule(rule, namespaced, f"rules[{i}]")
    return out


def default_subjects(obj: dict) -> None:
    ref = obj.get("roleRef")
    if isinstance(ref, dict) and not ref.get("apiGroup"):
        ref["apiGroup"] = GROUP
    for s in obj.get("subjects") or []:
        if isinstance(s, dict) and not s.get("apiGroup"):
            if s.get("kind") in ("User", "Group"):
                s["apiGroup"] = GROUP
            elif s.get("kind") == "ServiceAccount":
                s["apiGroup"] = ""


def validate_subject(s: dict, namespaced: bool, path: str) -> list[FieldError]:
    out: list[FieldError] = []
    name, kind, group = s.get("name", ""), s.get("kind"), s.get("apiGroup", "")
    if not name:
        out.append(errors.required(f"{path}.name", ""))
    if kind == "ServiceAccount":
        if name:
            out += [errors.invalid_value(f"{path}.name", name, m)
                    for m in validation.is_dns1123_subdomain(name)]
        if group:
            out.append(errors.not_supported(f"{path}.apiGroup", group, [""]))
        if not namespaced and not s.get("namespace"):
            out.append(errors.required(f"{path}.namespace", ""))
    elif kind in ("User", "Group"):
        if group != GROUP:
            out.append(errors.not_supported(f"{path}.apiGroup", group, [GROUP]))
    else:
        out.append(errors.not_supported(f"{path}.kind", kind, ["ServiceAccount", "User", "Group"]))
    return out


def validate_binding(obj: dict, namespaced: bool) -> list[FieldError]:
    ref = obj.get("roleRef") or {}
    out: list[FieldError] = []
    kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
    if ref.get("apiGroup") != GROUP:
        out.append(errors.not_supported("roleRef.apiGroup", ref.get("apiGroup", ""), [GROUP]))
    if ref.get("kind") not in kinds:
        out.append(errors.not_supported("roleRef.kind", ref.get("kind", ""), kinds))
    if not ref.get("name"):
        out.append(errors.required("roleRef.name", ""))
    else:
        out += [errors.invalid_value("roleRef.name", ref["name"], m)
                for m in validation.is_path_segment_name(ref["name"])]
    for i, s in enumerate(obj.get("subjects") or []):
        out += validate_subject(s, namespaced, f"subjects[{i}]")
    return out


def role_ref_immutable(obj: dict, old: dict) -> list[FieldError]:
    new_ref, old_ref = obj.get("roleRef") or {}, old.get("roleRef") or {}
    if new_ref != old_ref:
        text = (f'rbac.RoleRef{{APIGroup:"{new_ref.get("apiGroup", "")}", '
                f'Kind:"{new_ref.get("kind", "")}", Name:"{new_ref.get("name", "")}"}}')
        return [errors.invalid_value("roleRef", GoValue(text), "cannot change roleRef")]
    return []


def subjects_strings(subjects: list[dict]) -> tuple[str, str, str]:
    users, groups, sas = [], [], []
    for s in subjects:
        kind = s.get("kind")
        if kind == "User":
            users.append(s.get("name", ""))
        elif kind == "Group":
            groups.append(s.get("name", ""))
        elif kind == "ServiceAccount":
            sas.append(f"{s.get('namespace', '')}/{s.get('name', '')}")
    return ", ".join(users), ", ".join(groups), ", ".join(sas)


class _RBAC(Strategy):
    allow_create_on_update = True  # as upstream
    group, version = GROUP, "v1"

    @staticmethod
    def name_validator(name: str) -> list[str]:
        return validation.is_path_segment_name(name)


class RoleStrategy(_RBAC):
    kind, plural = "Role", "roles"
    columns = (NAME_COLUMN, CREATED_AT_COLUMN)

    def validate(self, obj: dict) -> list[FieldError]:
        return _validate_rules(obj, True)

    def table_row(self, obj: dict) -> list[Any]:
        return [name_of(obj), _created_at(obj)]


class ClusterRoleStrategy(_RBAC):
    kind, plural = "ClusterRole", "clusterroles"
    namespaced = False
    columns = (NAME_COLUMN, CREATED_AT_COLUMN)

    def validate(self, obj: dict) -> list[FieldError]:
        out = _validate_rules(obj, False)
        agg = obj.get("aggregationRule")
        if isinstance(agg, dict):
            from ..machinery.selectors import validate_label_selector
            selectors = agg.get("clusterRoleSelectors") or []
            if not selectors:
                out.append(errors.required("aggregationRule.clusterRoleSelectors", ""))
            for i, sel in enumerate(selectors):
                out += validate_label_selector(sel, f"aggregationRule.clusterRoleSelectors[{i}]")
        return out

    def table_row(self, obj: dict) -> list[Any]:
        return [name_of(obj), _created_at(obj)]


_BINDING_COLUMNS = (NAME_COLUMN,
                    Column("Role", "string", "", "RoleRef can only reference the current namespace "
                           "and the global namespace. If the RoleRef cannot be resolved, the "
                           "Authorizer must return an error."),
                    AGE_COLUMN,
                    Column("Users", "string", "", "Users in the roleBinding", 1),
                    Column("Groups", "string", "", "Groups in the roleBinding", 1),
                    Column("ServiceAccounts", "string", "", "ServiceAccounts in the roleBinding", 1))


class _Binding(_RBAC):
    columns = _BINDING_COLUMNS

    def default(self, obj: dict) -> None:
        default_subjects(obj)

    def validate(self, obj: dict) -> list[FieldError]:
        return validate_binding(obj, self.namespaced)

    def validate_update(self, obj: dict, old: dict) -> list[FieldError]:
        return self.validate(obj) + role_ref_immutable(obj, old)

    def table_row(self, obj: dict) -> list[Any]:
        ref = obj.get("roleRef") or {}
        return [name_of(obj), f"{ref.get('kind', '')}/{ref.get('name', '')}", age(obj),
                *subjects_strings(obj.get("subjects") or [])]


class RoleBindingStrategy(_Binding):
    kind, plural = "RoleBinding", "rolebindings"


class ClusterRoleBindingStrategy(_Binding):
    kind, plural = "ClusterRoleBinding", "clusterrolebindings"
    namespaced = False


STRATEGIES = [ClusterRoleBindingStrategy(), ClusterRoleStrategy(), RoleBindingStrategy(),
              RoleStrategy()]
