"""clusterrole-aggregation (upstream's controller of the same name): a ClusterRole with an
aggregationRule gets as its rules the union of the rules of every ClusterRole its
clusterRoleSelectors select (in name order, duplicates dropped) — how `admin`, `edit`
and `view` grow when a CRD's author labels a role `aggregate-to-view`."""
from __future__ import annotations

import logging

from pybernetes.client.api import Resource
from pybernetes.controllers.base import Controller
from pybernetes.machinery.selectors import LabelSelector

log = logging.getLogger(__name__)
CLUSTER_ROLES = Resource("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole",
                         False)


def aggregated_rules(role: dict, all_roles: list[dict]) -> list[dict]:
    """The rules `role`'s aggregationRule selects, in the selected roles' name order."""
    selectors = [LabelSelector.from_api(s) for s in
                 (role.get("aggregationRule") or {}).get("clusterRoleSelectors") or ()]
    name = role["metadata"]["name"]
    out: list[dict] = []
    for other in sorted(all_roles, key=lambda r: r["metadata"]["name"]):
        if other["metadata"]["name"] == name:
            continue
        labels = other["metadata"].get("labels") or {}
        if not any(s.matches(labels) for s in selectors):
            continue
        for rule in other.get("rules") or ():
            if rule not in out:
                out.append(rule)
    return out


class ClusterRoleAggregationController(Controller):
    name = "clusterrole-aggregation"
    workers = 1

    def setup(self) -> None:
        self.roles = self.informers.get(CLUSTER_ROLES)
        # any change may change what an aggregating role selects: requeue every one
        self.roles.add_handler(on_add=self._changed, on_update=lambda old, new:
                               self._changed(new), on_delete=self._changed)

    def _changed(self, _role: dict) -> None:
        for role in self.roles.list():
            if role.get("aggregationRule"):
                self.enqueue(role)

    async def reconcile(self, key: str) -> None:
        role = self.roles.get_by_key(key)
        if role is None or not role.get("aggregationRule"):
            return
        rules = aggregated_rules(role, self.roles.list())
        if rules == (role.get("rules") or []):
            return
        await self.client.update(CLUSTER_ROLES, {**role, "rules": rules})
        log.info("aggregated %d rules into clusterrole %s", len(rules), key)
