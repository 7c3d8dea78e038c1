"""Apply a PATCH body of any of the supported patch types to an object."""
from __future__ import annotations

from typing import Any

from ..machinery import errors, patch
from ..machinery.jsonvalues import clone
from .negotiation import PATCH_TYPES


def patch_type(content_type: str | None) -> str:
    media = (content_type or "").split(";")[0].strip().lower()
    kind = PATCH_TYPES.get(media)
    if kind is None:
        raise errors.StatusError(
            415, "UnsupportedMediaType",
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{', '.join(PATCH_TYPES)}")
    return kind


def touched_fields(kind: str, body: Any) -> frozenset[str] | None:
    """The top-level fields a patch can change, or None when it may change any.

    A merge or strategic merge patch only puts values at the paths it names (lists
    merge item by item at the same schema position), so an object that was valid
    before needs its types and fields checked again only under the patch's top-level
    keys. A JSON patch (move/copy) or a top-level directive ($patch, $retainKeys)
    can touch anything."""
    if kind not in ("merge", "strategic") or not isinstance(body, dict):
        return None
    if any(isinstance(k, str) and k.startswith("$") for k in body):
        return None
    return frozenset(body)


def apply_patch(obj: dict, kind: str, body: Any, schema_name: str) -> dict:
    doc = clone(obj)
    try:
        if kind == "json":
            if not isinstance(body, list):
                raise errors.bad_request("json patch must be a list of operations")
            result = patch.json_patch(doc, body)
        elif kind == "merge":
            result = patch.merge_patch(doc, body)
        else:
            if not isinstance(body, dict):
                raise errors.bad_request("strategic merge patch must be a JSON object")
            if not schema_name:
                raise errors.StatusError(415, "UnsupportedMediaType",
                                         "strategic merge patch is not supported for this "
                                         "resource: use a merge or JSON patch")
            result = patch.strategic_merge_patch(doc, body, schema_name)
    except errors.StatusError:
        raise
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise errors.StatusError(422, "Invalid", f"the server rejected our request due to an "
                                 f"error in our request: {e}")
    if not isinstance(result, dict):
        raise errors.bad_request("the patched object is not a JSON object")
    return result
