"""Run objects through a core strategy in the REST layer's order (create/update)."""
from __future__ import annotations

import copy
import datetime as dt

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
    objectmeta.carry_over(new.setdefault("metadata", {}), old["metadata"])
    strategy.prepare_for_update(new, old)
    strategy.default(new)
    return new, strategy.validate_update(new, old)


def messages(errs: list[FieldError]) -> list[str]:
    return [f"{e.field}: {e.message()}" for e in errs]


def ago(seconds: int) -> str:
    t = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
