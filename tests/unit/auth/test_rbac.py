"""RBAC rule matching and evaluation, case by case as upstream's authorizer decides."""
from __future__ import annotations

import pytest

from pybernetes.apiserver.request_info import RequestInfo, parse
from pybernetes.auth import bootstrap_policy
from pybernetes.auth.authn import UserInfo
from pybernetes.auth.authz import Authorizer, forbidden, parse_modes
from pybernetes.auth.rbac import Policy, rule_allows
from pybernetes.controllers.clusterrole_aggregation import aggregated_rules


def req(method: str, path: str, **query: str) -> RequestInfo:
    return parse(method, path, dict(query))


POD_READER = {"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods"]}
CASES = [
    # (rule, request, allowed)
    (POD_READER, req("GET", "/api/v1/namespaces/a/pods"), True),
    (POD_READER, req("GET", "/api/v1/namespaces/a/pods/web"), True),
    (POD_READER, req("GET", "/api/v1/namespaces/a/pods", watch="1"), False),
    (POD_READER, req("DELETE", "/api/v1/namespaces/a/pods/web"), False),
    (POD_READER, req("GET", "/apis/apps/v1/namespaces/a/deployments"), False),
    (POD_READER, req("GET", "/api/v1/namespaces/a/pods/web/log"), False),
    ({**POD_READER, "apiGroups": ["apps"]}, req("GET", "/api/v1/namespaces/a/pods"), False),
    ({**POD_READER, "verbs": ["*"]}, req("DELETE", "/api/v1/namespaces/a/pods"), True),
    ({"verbs": ["get"], "apiGroups": ["*"], "resources": ["*"]},
     req("GET", "/apis/apps/v1/namespaces/a/deployments/x/scale"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]},
     req("GET", "/api/v1/namespaces/a/pods/web/log"), True),
    ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]},
     req("GET", "/api/v1/namespaces/a/pods/web"), False),
    ({"verbs": ["update"], "apiGroups": ["*"], "resources": ["*/status"]},
     req("PUT", "/apis/apps/v1/namespaces/a/deployments/x/status"), True),
    ({"verbs": ["update"], "apiGroups": ["*"], "resources": ["*/status"]},
     req("PUT", "/apis/apps/v1/namespaces/a/deployments/x"), False),
    # resourceNames: only requests that name the object
    ({**POD_READER, "resourceNames": ["web"]}, req("GET", "/api/v1/namespaces/a/pods/web"), True),
    ({**POD_READER, "resourceNames": ["web"]}, req("GET", "/api/v1/namespaces/a/pods/db"), False),
    ({**POD_READER, "resourceNames": ["web"]}, req("GET", "/api/v1/namespaces/a/pods"), False),
    ({"verbs": ["create"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["web"]},
     req("POST", "/api/v1/namespaces/a/pods"), False),
    # non-resource URLs: exact, or a prefix ending in *
    ({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}, req("GET", "/healthz"), True),
    ({"verbs": ["get"], "nonResourceURLs": ["/healthz"]}, req("GET", "/healthz/ping"), False),
    ({"verbs": ["get"], "nonResourceURLs": ["/healthz*"]}, req("GET", "/healthz/ping"), True),
    ({"verbs": ["get"], "nonResourceURLs": ["/apis/*"]}, req("GET", "/apis/apps/v1"), True),
    ({"verbs": ["get"], "nonResourceURLs": ["*"]}, req("GET", "/anything"), True),
    ({"verbs": ["get"], "nonResourceURLs": ["*"]}, req("POST", "/anything"), False),
    # a resource rule never covers a path and the other way round
    ({"verbs": ["*"], "nonResourceURLs": ["*"]}, req("GET", "/api/v1/namespaces/a/pods"), False),
    ({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}, req("GET", "/healthz"), False),
]


@pytest.mark.parametrize("rule,info,allowed", CASES)
def test_rule_matching_as_upstream(rule, info, allowed):
    assert rule_allows(rule, info) is allowed


def role(kind: str, name: str, rules: list[dict], namespace: str = "") -> dict:
    md = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"kind": kind, "metadata": md, "rules": rules}


def bind(kind: str, name: str, ref_kind: str, ref: str, subjects: list[dict],
         namespace: str = "") -> dict:
    md = {"name": name, **({"namespace": namespace} if namespace else {})}
    return {"kind": kind, "metadata": md, "subjects": subjects,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": ref_kind, "name": ref}}


SA = UserInfo("system:serviceaccount:team:bot",
              ["system:serviceaccounts", "system:serviceaccounts:team", "system:authenticated"])
ALICE = UserInfo("alice", ["devs", "system:authenticated"])


def policy() -> Policy:
    return Policy.build(
        roles=[role("Role", "pod-reader", [POD_READER], "team")],
        cluster_roles=[role("ClusterRole", "node-reader",
                            [{"verbs": ["get"], "apiGroups": [""], "resources": ["nodes"]}]),
                       role("ClusterRole", "view", [{"verbs": ["list"], "apiGroups": ["apps"],
                                                      "resources": ["deployments"]}])],
        role_bindings=[
            # a ServiceAccount subject without a namespace is in the binding's own
            bind("RoleBinding", "bot-reads", "Role", "pod-reader",
                 [{"kind": "ServiceAccount", "name": "bot"}], "team"),
            bind("RoleBinding", "devs-view", "ClusterRole", "view",
                 [{"kind": "Group", "name": "devs"}], "web"),
            bind("RoleBinding", "dangling", "Role", "gone",
                 [{"kind": "User", "name": "alice"}], "team")],
        cluster_role_bindings=[
            bind("ClusterRoleBinding", "alice-nodes", "ClusterRole", "node-reader",
                 [{"kind": "User", "name": "alice"}])])


def test_bindings_by_user_group_and_serviceaccount():
    p = policy()
    ok, reason = p.authorize(SA, req("GET", "/api/v1/namespaces/team/pods"))
    assert ok and reason == ('RBAC: allowed by RoleBinding "bot-reads/team" of Role '
                             '"pod-reader" to ServiceAccount "bot"')
    assert not p.authorize(SA, req("GET", "/api/v1/namespaces/other/pods"))[0]
    assert not p.authorize(SA, req("GET", "/api/v1/pods"))[0]   # all namespaces
    assert p.authorize(ALICE, req("GET", "/api/v1/nodes/n1"))[0]
    assert p.authorize(ALICE, req("GET", "/apis/apps/v1/namespaces/web/deployments"))[0]
    # a RoleBinding to a ClusterRole grants it only in the binding's namespace
    assert not p.authorize(ALICE, req("GET", "/apis/apps/v1/namespaces/team/deployments"))[0]
    # a missing role is named in the reason
    ok, reason = p.authorize(ALICE, req("GET", "/api/v1/namespaces/team/pods"))
    assert not ok and reason == 'RBAC: role.rbac.authorization.k8s.io "gone" not found'


def test_forbidden_message_is_upstreams():
    e = forbidden(SA, req("GET", "/api/v1/namespaces/default/pods"))
    assert e.code == 403 and e.reason == "Forbidden"
    assert e.message == ('pods is forbidden: User "system:serviceaccount:team:bot" cannot list '
                         'resource "pods" in API group "" in the namespace "default"')
    e = forbidden(ALICE, req("GET", "/apis/apps/v1/namespaces/a/deployments/web/scale"))
    assert e.message == ('deployments.apps "web" is forbidden: User "alice" cannot get '
                         'resource "deployments/scale" in API group "apps" in the namespace "a"')
    e = forbidden(ALICE, req("GET", "/api/v1/nodes"))
    assert e.message.endswith('cannot list resource "nodes" in API group "" at the cluster scope')
    e = forbidden(ALICE, req("GET", "/logs"))
    assert e.message == 'forbidden: User "alice" cannot get path "/logs"'


def test_authorization_modes_flag():
    assert parse_modes("RBAC,AlwaysAllow") == ["RBAC", "AlwaysAllow"]
    for bad in ("", "Node", "RBAC,RBAC"):
        with pytest.raises(ValueError):
            parse_modes(bad)
    # the default: every authenticated user; anonymous only the public endpoints
    authz = Authorizer()
    anonymous = UserInfo("system:anonymous", ["system:unauthenticated"])
    assert authz.decide(ALICE, req("DELETE", "/api/v1/nodes/x"))[0]
    assert authz.decide(anonymous, req("GET", "/readyz"))[0]
    assert not authz.decide(anonymous, req("GET", "/api/v1/pods"))[0]
    assert Authorizer(["AlwaysDeny"]).decide(UserInfo("root", ["system:masters"]),
                                             req("GET", "/api/v1/pods"))[0]


def test_aggregation_unions_selected_roles_in_name_order():
    view = {"metadata": {"name": "view"}, "aggregationRule": {"clusterRoleSelectors": [
        {"matchLabels": {"rbac.authorization.k8s.io/aggregate-to-view": "true"}}]}}
    label = {"rbac.authorization.k8s.io/aggregate-to-view": "true"}
    b = {"metadata": {"name": "b", "labels": label}, "rules": [POD_READER]}
    a = {"metadata": {"name": "a", "labels": label}, "rules": [{"verbs": ["get"],
                                                                "nonResourceURLs": ["/x"]},
                                                               POD_READER]}
    other = {"metadata": {"name": "c"}, "rules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}]}
    assert aggregated_rules(view, [view, b, other, a]) == a["rules"]


def test_bootstrap_policy_is_consistent():
    roles = {r["metadata"]["name"]: r for r in bootstrap_policy.cluster_roles()}
    for b in bootstrap_policy.cluster_role_bindings():
        assert b["roleRef"]["name"] in roles
    p = Policy.build([], roles.values(), [], bootstrap_policy.cluster_role_bindings())
    anonymous = UserInfo("system:anonymous", ["system:unauthenticated"])
    assert p.authorize(anonymous, req("GET", "/version"))[0]
    assert not p.authorize(anonymous, req("GET", "/api"))[0]
    assert p.authorize(ALICE, req("GET", "/apis/apps/v1"))[0]
    assert p.authorize(ALICE, req("POST", "/apis/authorization.k8s.io/v1/"
                                          "selfsubjectaccessreviews"))[0]
    assert not p.authorize(ALICE, req("GET", "/api/v1/namespaces/a/pods"))[0]
    node = UserInfo("system:node:n1", ["system:nodes", "system:authenticated"])
    assert p.authorize(node, req("PATCH", "/api/v1/namespaces/a/pods/x/status"))[0]
    sched = UserInfo("system:kube-scheduler", ["system:authenticated"])
    assert p.authorize(sched, req("POST", "/api/v1/namespaces/a/pods/x/binding"))[0]


def test_impersonation_needs_the_impersonate_verb():
    from multidict import CIMultiDict

    from pybernetes.auth.impersonation import impersonate
    from pybernetes.machinery.errors import StatusError
    impersonator = role("ClusterRole", "impersonator", [
        {"verbs": ["impersonate"], "apiGroups": [""], "resources": ["serviceaccounts"]}])
    p = Policy.build([], [impersonator], [], [
        bind("ClusterRoleBinding", "alice-impersonates", "ClusterRole", "impersonator",
             [{"kind": "User", "name": "alice"}])])
    authz = Authorizer(["RBAC"], api=object())
    authz.rbac._policy = p  # the index as the watch caches would have built it
    as_sa = CIMultiDict({"Impersonate-User": "system:serviceaccount:team:bot"})
    who = impersonate(ALICE, as_sa, authz)
    assert who.username == "system:serviceaccount:team:bot"
    assert who.groups == ["system:serviceaccounts", "system:serviceaccounts:team",
                          "system:authenticated"]
    with pytest.raises(StatusError) as e:
        impersonate(ALICE, CIMultiDict({"Impersonate-User": "bob"}), authz)
    assert e.value.code == 403 and e.value.message == (
        'users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API '
        'group "" at the cluster scope')
    with pytest.raises(StatusError) as e:
        impersonate(ALICE, CIMultiDict({"Impersonate-Group": "x"}), authz)
    assert e.value.code == 400
    root = UserInfo("root", ["system:masters"])
    who = impersonate(root, CIMultiDict([("Impersonate-User", "bob"),
                                         ("Impersonate-Group", "a"),
                                         ("Impersonate-Group", "b")]), authz)
    assert (who.username, who.groups) == ("bob", ["a", "b", "system:authenticated"])


def test_escalation_check_as_upstream():
    from pybernetes.auth.rbac_escalation import compact_string, missing_rules
    owner = [{"verbs": ["get", "list"], "apiGroups": [""], "resources": ["pods", "*/status"]},
             {"verbs": ["get"], "nonResourceURLs": ["/logs/*"]}]
    assert not missing_rules(owner, [{"verbs": ["get"], "apiGroups": [""],
                                      "resources": ["pods", "nodes/status"]}])
    assert not missing_rules(owner, [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"],
                                      "resourceNames": ["web"]}])
    assert not missing_rules(owner, [{"verbs": ["get"], "nonResourceURLs": ["/logs/x"]}])
    missing = missing_rules(owner, [{"verbs": ["get", "delete"], "apiGroups": ["", "apps"],
                                     "resources": ["pods"]}])
    assert [compact_string(m) for m in missing] == [
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}',
        '{APIGroups:["apps"], Resources:["pods"], Verbs:["get"]}',
        '{APIGroups:["apps"], Resources:["pods"], Verbs:["delete"]}']
    # a rule limited to names never covers the whole resource
    named = [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"],
              "resourceNames": ["web"]}]
    assert missing_rules(named, [{"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}])
