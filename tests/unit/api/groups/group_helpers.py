"""Run objects through a strategy the way the REST layer does on create/update."""
from __future__ import annotations

import copy

from pybernetes.machinery import objectmeta
from pybernetes.machinery.errors import FieldError


def create(strategy, obj: dict) -> tuple[dict, list[FieldError]]:
    obj = copy.deepcopy(obj)
    md = obj.setdefault("metadata", {})
    if strategy.namespaced:
        md.setdefault("namespace", "default")
    objectmeta.stamp_new(md)
    strategy.prepare_for_create(obj)
    strategy.default(obj)
    return obj, strategy.validate(obj)


def update(strategy, new: dict, old: dict) -> tuple[dict, list[FieldError]]:
    new = copy.deepcopy(new)
    objectmeta.carry_over(new["metadata"], old["metadata"])
    strategy.prepare_for_update(new, old)
    strategy.default(new)
    return new, strategy.validate_update(new, old)


def messages(errs: list[FieldError]) -> list[str]:
    return [f"{e.field}: {e.message()}" for e in errs]


def pod_template(labels: dict | None = None, restart: str | None = None) -> dict:
    spec: dict = {"containers": [{"name": "c", "image": "busybox"}]}
    if restart:
        spec["restartPolicy"] = restart
    return {"metadata": {"labels": labels if labels is not None else {"app": "x"}}, "spec": spec}


def column_names(strategy) -> list[str]:
    return [c.name for c in strategy.columns]
