"""Helpers for plain JSON values (what API objects are on the hot path)."""
from __future__ import annotations

import copy
from typing import Any

import orjson


def clone(value: Any) -> Any:
    """A private deep copy of a JSON value: an orjson round trip, several times faster
    than copy.deepcopy on an API object. For values decoded from JSON or stored ones:
    a float NaN or infinity (which JSON cannot carry) would come back as None."""
    try:
        return orjson.loads(orjson.dumps(value))
    except TypeError:  # not plain JSON (a non-string key, an int beyond 64 bits): the slow way
        return copy.deepcopy(value)
