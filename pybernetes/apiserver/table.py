"""Server-side printing: objects -> meta.k8s.io Table / PartialObjectMetadata."""
from __future__ import annotations

from typing import Any

from ..api.strategy import Strategy


def partial_metadata(obj: dict, version: str = "v1") -> dict:
    return {"kind": "PartialObjectMetadata", "apiVersion": f"meta.k8s.io/{version}",
            "metadata": obj.get("metadata", {})}


def column_definitions(strategy: Strategy) -> list[dict]:
    return [{"name": c.name, "type": c.type, "format": c.format,
             "description": c.description, "priority": c.priority}
            for c in strategy.columns]


def row(strategy: Strategy, obj: dict, include: str, version: str) -> dict:
    r: dict[str, Any] = {"cells": strategy.table_row(obj)}
    if include == "Object":
        r["object"] = obj
    elif include != "None":
        r["object"] = partial_metadata(obj, version)
    return r


def table(strategy: Strategy, objs: list[dict], list_meta: dict, include: str = "Metadata",
          version: str = "v1", with_columns: bool = True) -> dict:
    t: dict[str, Any] = {"kind": "Table", "apiVersion": f"meta.k8s.io/{version}",
                         "metadata": list_meta}
    if with_columns:
        t["columnDefinitions"] = column_definitions(strategy)
    t["rows"] = [row(strategy, o, include, version) for o in objs]
    return t


def partial_list(objs: list[dict], list_meta: dict, version: str = "v1") -> dict:
    return {"kind": "PartialObjectMetadataList", "apiVersion": f"meta.k8s.io/{version}",
            "metadata": list_meta, "items": [partial_metadata(o, version) for o in objs]}
