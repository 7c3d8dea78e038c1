"""The default RBAC policy, as upstream's bootstrappolicy: the ClusterRoles every cluster
has (cluster-admin, admin/edit/view by aggregation, system:basic-user, the components'
roles) and the ClusterRoleBindings that give them to system:masters, every
authenticated user, anonymous users and each component's identity.

`reconcile` runs at API server start (upstream's rbac/bootstrap-roles post-start hook):
it creates what is missing and, on objects still annotated
`rbac.authorization.kubernetes.io/autoupdate: "true"`, adds missing rules and
subjects — it never removes anything a user added.

pybernetes' own deviations, each because one process runs what upstream splits:
  - the controller manager runs every controller under its own identity (upstream
    gives each controller a ServiceAccount), so `system:kube-controller-manager` is
    also bound to `system:pybernetes:controller-manager`, the union of upstream's
    per-controller roles;
  - there is no Node authorizer yet, so the `system:node` role is bound to the
    system:nodes group (upstream's pre-1.8 behaviour);
  - cluster DNS and the ingress controller get roles like CoreDNS's and ingress-nginx's.
"""
from __future__ import annotations

import copy
import logging
from typing import TYPE_CHECKING

from ..machinery import errors

if TYPE_CHECKING:
    from ..apiserver.state import APIState

log = logging.getLogger("pybernetes.apiserver")
GROUP = "rbac.authorization.k8s.io"
AUTOUPDATE = "rbac.authorization.kubernetes.io/autoupdate"
AGGREGATE_TO = "rbac.authorization.k8s.io/aggregate-to-"
READ = ["get", "list", "watch"]
WRITE = ["create", "update", "patch", "delete", "deletecollection"]
READ_WRITE = READ + WRITE


def rule(verbs: list[str], groups: list[str], resources: list[str],
         names: list[str] | None = None) -> dict:
    r: dict = {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}
    if names:
        r["resourceNames"] = list(names)
    return r


def urls(verbs: list[str], paths: list[str]) -> dict:
    return {"verbs": list(verbs), "nonResourceURLs": list(paths)}


def cluster_role(name: str, rules: list[dict], labels: dict | None = None,
                 aggregate: list[str] | None = None) -> dict:
    md: dict = {"name": name, "labels": {"kubernetes.io/bootstrapping": "rbac-defaults",
                                         **(labels or {})},
                "annotations": {AUTOUPDATE: "true"}}
    role: dict = {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRole", "metadata": md,
                  "rules": rules}
    if aggregate:
        role["aggregationRule"] = {"clusterRoleSelectors": [
            {"matchLabels": {AGGREGATE_TO + a: "true"}} for a in aggregate]}
        role["rules"] = []  # filled by the clusterrole-aggregation controller
    return role


def binding(name: str, role: str, *subjects: tuple[str, str]) -> dict:
    return {"apiVersion": f"{GROUP}/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": name,
                         "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
                         "annotations": {AUTOUPDATE: "true"}},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": GROUP, "kind": kind, "name": name}
                         for kind, name in subjects]}


EVENTS = [rule(["create", "update", "patch"], ["", "events.k8s.io"], ["events"])]
REVIEWS = [rule(["create"], ["authentication.k8s.io"], ["tokenreviews"]),
           rule(["create"], ["authorization.k8s.io"], ["subjectaccessreviews"])]
DISCOVERY_URLS = ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                  "/openapi/*", "/readyz", "/version", "/version/"]
PUBLIC_INFO_URLS = ["/healthz", "/livez", "/readyz", "/version", "/version/"]

VIEW_RULES = [
    rule(READ, [""], ["pods", "replicationcontrollers", "replicationcontrollers/scale",
                      "serviceaccounts", "services", "services/status", "endpoints",
                      "persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps"]),
    rule(READ, [""], ["limitranges", "resourcequotas", "bindings", "events", "pods/status",
                      "resourcequotas/status", "namespaces/status",
                      "replicationcontrollers/status", "pods/log"]),
    rule(READ, [""], ["namespaces"]),
    rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
    rule(READ, ["apps"], ["controllerrevisions", "statefulsets", "statefulsets/status",
                          "statefulsets/scale", "daemonsets", "daemonsets/status",
                          "deployments", "deployments/status", "deployments/scale",
                          "replicasets", "replicasets/status", "replicasets/scale"]),
    rule(READ, ["autoscaling"], ["horizontalpodautoscalers", "horizontalpodautoscalers/status"]),
    rule(READ, ["batch"], ["jobs", "cronjobs", "cronjobs/status", "jobs/status"]),
    rule(READ, ["policy"], ["poddisruptionbudgets", "poddisruptionbudgets/status"]),
    rule(READ, ["networking.k8s.io"], ["networkpolicies", "ingresses", "ingresses/status"]),
]

EDIT_RULES = [
    rule(READ, [""], ["pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets",
                      "services/proxy"]),
    rule(["impersonate"], [""], ["serviceaccounts"]),
    rule(WRITE, [""], ["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
    rule(["create"], [""], ["pods/eviction"]),
    rule(WRITE, [""], ["replicationcontrollers", "replicationcontrollers/scale",
                       "serviceaccounts", "services", "services/proxy",
                       "persistentvolumeclaims", "configmaps", "secrets", "events"]),
    rule(["create"], [""], ["serviceaccounts/token"]),
    rule(WRITE, ["apps"], ["statefulsets", "statefulsets/scale", "daemonsets", "deployments",
                           "deployments/scale", "deployments/rollback", "replicasets",
                           "replicasets/scale"]),
    rule(WRITE, ["autoscaling"], ["horizontalpodautoscalers"]),
    rule(WRITE, ["batch"], ["jobs", "cronjobs"]),
    rule(WRITE, ["policy"], ["poddisruptionbudgets"]),
    rule(WRITE, ["networking.k8s.io"], ["networkpolicies", "ingresses"]),
    rule(READ_WRITE, ["coordination.k8s.io"], ["leases"]),
]

ADMIN_RULES = [
    rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
    rule(READ_WRITE, [GROUP], ["roles", "rolebindings"]),
]

SCHEDULER_RULES = EVENTS + REVIEWS + [
    rule(["create"], ["coordination.k8s.io"], ["leases"]),
    rule(["get", "update"], ["coordination.k8s.io"], ["leases"], ["kube-scheduler"]),
    rule(READ, [""], ["nodes"]),
    rule(READ + ["delete"], [""], ["pods"]),
    rule(["create"], [""], ["pods/binding", "bindings"]),
    rule(["patch", "update"], [""], ["pods/status"]),
    rule(READ, [""], ["replicationcontrollers", "services"]),
    rule(READ, ["apps", "extensions"], ["replicasets"]),
    rule(READ, ["apps"], ["statefulsets"]),
    rule(READ, ["policy"], ["poddisruptionbudgets"]),
    rule(READ, [""], ["persistentvolumeclaims", "persistentvolumes"]),
    rule(READ, ["storage.k8s.io"], ["csinodes"]),
    rule(READ, [""], ["namespaces"]),
    rule(READ, ["storage.k8s.io"], ["csidrivers"]),
    rule(READ, ["storage.k8s.io"], ["csistoragecapacities"]),
]

VOLUME_SCHEDULER_RULES = [
    rule(["get", "list", "patch", "update", "watch"], [""], ["persistentvolumes"]),
    rule(READ, ["storage.k8s.io"], ["storageclasses"]),
    rule(["get", "list", "patch", "update", "watch"], [""], ["persistentvolumeclaims"]),
]

CONTROLLER_MANAGER_RULES = EVENTS + REVIEWS + [
    rule(["create"], ["coordination.k8s.io"], ["leases"]),
    rule(["get", "update"], ["coordination.k8s.io"], ["leases"], ["kube-controller-manager"]),
    rule(["create"], [""], ["secrets", "serviceaccounts"]),
    rule(["delete"], [""], ["secrets"]),
    rule(["get"], [""], ["namespaces", "secrets", "serviceaccounts"]),
    rule(["update"], [""], ["secrets", "serviceaccounts"]),
    rule(["list", "watch"], ["*"], ["*"]),
    rule(["create"], [""], ["serviceaccounts/token"]),
]

# what upstream's per-controller roles add up to (the garbage collector and the
# namespace controller alone reach every resource): pybernetes' controllers share
# the controller manager's identity
PYBERNETES_CONTROLLERS_RULES = [
    rule(["get", "list", "watch", "patch", "update", "delete", "deletecollection"],
         ["*"], ["*"]),
    rule(["create"], ["", "apps", "batch", "discovery.k8s.io", "coordination.k8s.io",
                      "events.k8s.io", "policy", "storage.k8s.io", "authentication.k8s.io",
                      "authorization.k8s.io"], ["*"]),
    # the clusterrole-aggregation controller writes rules it does not hold itself
    rule(["escalate"], [GROUP], ["clusterroles"]),
]

NODE_RULES = REVIEWS + [
    rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
    rule(READ, [""], ["services"]),
    rule(["create", "get", "list", "watch"], [""], ["nodes"]),
    rule(["update", "patch"], [""], ["nodes/status"]),
    rule(["update", "patch", "delete"], [""], ["nodes"]),
    rule(["create", "update", "patch"], [""], ["events"]),
    rule(READ, [""], ["pods"]),
    rule(["create", "delete"], [""], ["pods"]),
    rule(["update", "patch"], [""], ["pods/status"]),
    rule(["create"], [""], ["pods/eviction"]),
    rule(READ, [""], ["secrets", "configmaps"]),
    rule(["get"], [""], ["persistentvolumeclaims", "persistentvolumes"]),
    rule(["get"], [""], ["endpoints"]),
    rule(["create", "get", "list", "watch"], ["certificates.k8s.io"],
         ["certificatesigningrequests"]),
    rule(["get", "create", "update", "patch", "delete"], ["coordination.k8s.io"], ["leases"]),
    rule(["get"], ["storage.k8s.io"], ["volumeattachments"]),
    rule(["update", "patch"], [""], ["persistentvolumeclaims/status"]),
    rule(["create"], [""], ["serviceaccounts/token"]),
    rule(READ, ["storage.k8s.io"], ["csidrivers"]),
    rule(["get", "create", "update", "patch", "delete"], ["storage.k8s.io"], ["csinodes"]),
    rule(READ, ["node.k8s.io"], ["runtimeclasses"]),
]

NODE_PROXIER_RULES = [
    rule(["list", "watch"], [""], ["services", "endpoints"]),
    rule(READ, [""], ["nodes"]),
    rule(["create", "update", "patch"], ["", "events.k8s.io"], ["events"]),
    rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
]

# cluster DNS keeps the kube-dns Service and its endpoints in kube-system current
DNS_RULES = [
    rule(["list", "watch"], [""], ["endpoints", "services", "pods", "namespaces"]),
    rule(["list", "watch"], ["discovery.k8s.io"], ["endpointslices"]),
    rule(["get", "create", "update", "delete"], [""], ["services", "endpoints"]),
    rule(["get", "create", "update", "delete"], ["discovery.k8s.io"], ["endpointslices"]),
]

INGRESS_RULES = EVENTS + [
    rule(READ, ["networking.k8s.io"], ["ingresses", "ingressclasses"]),
    rule(["update", "patch"], ["networking.k8s.io"], ["ingresses/status"]),
    rule(["create"], ["networking.k8s.io"], ["ingressclasses"]),
    rule(READ, [""], ["services", "endpoints", "secrets", "configmaps", "nodes"]),
    rule(READ, ["discovery.k8s.io"], ["endpointslices"]),
]


def cluster_roles() -> list[dict]:
    to = {f"{AGGREGATE_TO}{a}": "true" for a in ("admin",)}
    return [
        cluster_role("cluster-admin", [rule(["*"], ["*"], ["*"]), urls(["*"], ["*"])]),
        cluster_role("admin", [], aggregate=["admin"]),
        cluster_role("edit", [], labels=to, aggregate=["edit"]),
        cluster_role("view", [], labels={f"{AGGREGATE_TO}edit": "true"}, aggregate=["view"]),
        cluster_role("system:aggregate-to-admin", ADMIN_RULES, labels=to),
        cluster_role("system:aggregate-to-edit", EDIT_RULES,
                     labels={f"{AGGREGATE_TO}edit": "true"}),
        cluster_role("system:aggregate-to-view", VIEW_RULES,
                     labels={f"{AGGREGATE_TO}view": "true"}),
        cluster_role("system:discovery", [urls(["get"], DISCOVERY_URLS)]),
        cluster_role("system:public-info-viewer", [urls(["get"], PUBLIC_INFO_URLS)]),
        cluster_role("system:monitoring", [urls(["get"], [
            "/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/metrics/slis",
            "/readyz", "/readyz/*"])]),
        cluster_role("system:basic-user", [
            rule(["create"], ["authorization.k8s.io"],
                 ["selfsubjectaccessreviews", "selfsubjectrulesreviews"]),
            rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"])]),
        cluster_role("system:auth-delegator", REVIEWS),
        cluster_role("system:service-account-issuer-discovery", [urls(["get"], [
            "/.well-known/openid-configuration", "/.well-known/openid-configuration/",
            "/openid/v1/jwks", "/openid/v1/jwks/"])]),
        cluster_role("system:kube-scheduler", SCHEDULER_RULES),
        cluster_role("system:volume-scheduler", VOLUME_SCHEDULER_RULES),
        cluster_role("system:kube-controller-manager", CONTROLLER_MANAGER_RULES),
        cluster_role("system:node", NODE_RULES),
        cluster_role("system:node-proxier", NODE_PROXIER_RULES),
        cluster_role("system:pybernetes:controller-manager", PYBERNETES_CONTROLLERS_RULES),
        cluster_role("system:pybernetes:dns", DNS_RULES),
        cluster_role("system:pybernetes:ingress", INGRESS_RULES),
    ]


def cluster_role_bindings() -> list[dict]:
    return [
        binding("cluster-admin", "cluster-admin", ("Group", "system:masters")),
        binding("system:basic-user", "system:basic-user", ("Group", "system:authenticated")),
        binding("system:discovery", "system:discovery", ("Group", "system:authenticated")),
        binding("system:public-info-viewer", "system:public-info-viewer",
                ("Group", "system:authenticated"), ("Group", "system:unauthenticated")),
        binding("system:monitoring", "system:monitoring", ("Group", "system:monitoring")),
        binding("system:service-account-issuer-discovery",
                "system:service-account-issuer-discovery",
                ("Group", "system:serviceaccounts")),
        binding("system:kube-scheduler", "system:kube-scheduler",
                ("User", "system:kube-scheduler")),
        binding("system:volume-scheduler", "system:volume-scheduler",
                ("User", "system:kube-scheduler")),
        binding("system:kube-controller-manager", "system:kube-controller-manager",
                ("User", "system:kube-controller-manager")),
        binding("system:node", "system:node", ("Group", "system:nodes")),
        binding("system:node-proxier", "system:node-proxier", ("User", "system:kube-proxy")),
        binding("system:pybernetes:controller-manager", "system:pybernetes:controller-manager",
                ("User", "system:kube-controller-manager")),
        binding("system:pybernetes:dns", "system:pybernetes:dns",
                ("User", "system:pybernetes:dns")),
        binding("system:pybernetes:ingress", "system:pybernetes:ingress",
                ("User", "system:pybernetes:ingress")),
    ]


def _merged(current: dict, want: dict) -> dict | None:
    """`current` plus what `want` has and it lacks (rules, subjects, aggregation
    selectors), or None when nothing is missing or it opted out of autoupdate."""
    annotations = (current.get("metadata") or {}).get("annotations") or {}
    if annotations.get(AUTOUPDATE) != "true":
        return None
    out = copy.deepcopy(current)
    changed = False
    if "aggregationRule" in want:
        selectors = out.setdefault("aggregationRule", {}).setdefault("clusterRoleSelectors", [])
        for s in want["aggregationRule"]["clusterRoleSelectors"]:
            if s not in selectors:
                selectors.append(s)
                changed = True
    else:
        for field in ("rules", "subjects"):
            if field not in want:
                continue
            have = out.setdefault(field, [])
            for item in want[field]:
                if item not in have:
                    have.append(item)
                    changed = True
    return out if changed else None


async def _reconcile_one(api: "APIState", plural: str, want: dict, ctx) -> None:
    rs = api.resource(GROUP, "v1", plural)
    if rs is None:
        return
    name = want["metadata"]["name"]
    found = await rs.try_get("", name)
    try:
        if found is None:
            await rs.create("", copy.deepcopy(want), ctx)
            return
        merged = _merged(found[0], want)
        if merged is not None:
            await rs.update("", name, merged, ctx)
            log.info("added missing rules/subjects to %s %s", want["kind"], name)
    except errors.StatusError as e:
        if e.code != 409:  # another API server did it meanwhile
            raise


async def reconcile(api: "APIState") -> None:
    from ..apiserver.bootstrap import SYSTEM
    from ..apiserver.resource_store import Context
    ctx = Context(SYSTEM)
    for role in cluster_roles():
        await _reconcile_one(api, "clusterroles", role, ctx)
    for b in cluster_role_bindings():
        await _reconcile_one(api, "clusterrolebindings", b, ctx)
    log.info("RBAC bootstrap policy reconciled (%d cluster roles, %d bindings)",
             len(cluster_roles()), len(cluster_role_bindings()))
