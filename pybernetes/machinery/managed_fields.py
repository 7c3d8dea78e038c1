"""metadata.managedFields: who set which field, and server-side apply on top of it.

Every write records its field manager's fields (operation Update); an apply records the
fields of its configuration (operation Apply), merges it into the live object, removes
what that manager applied before and no longer applies (unless someone else owns it),
and refuses — 409 with upstream's conflict message — to change a field another manager
owns unless forced. The algorithm is upstream's (structured-merge-diff's Updater):

  update:  others lose the fields the write modified or removed;
           the writer owns (its set − removed) ∪ modified ∪ added
  apply:   merged = live ⊕ config; the applier owns exactly config's set; prune what it
           dropped; conflicts = others' sets ∩ (modified ∪ added), an error unless force
"""
from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass

from . import errors
from . import fieldpath as fp

# fields no manager owns (identity and server bookkeeping), as upstream strips them
_IGNORED_META = ("name", "namespace", "uid", "resourceVersion", "generation",
                 "creationTimestamp", "selfLink", "managedFields", "deletionTimestamp",
                 "deletionGracePeriodSeconds")
MAX_MANAGER_LENGTH = 128


@dataclass
class Entry:
    manager: str
    operation: str          # Apply | Update
    api_version: str
    time: str
    fields: frozenset
    subresource: str = ""

    @property
    def key(self) -> tuple[str, str, str]:
        return self.manager, self.operation, self.subresource


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def manager_from_user_agent(user_agent: str) -> str:
    """Upstream's default manager for writes without ?fieldManager: the user agent up to
    its first '/' (kubectl sets fieldManager itself)."""
    return user_agent.split("/", 1)[0][:MAX_MANAGER_LENGTH]


def decode(managed: object) -> list[Entry]:
    """Entries of metadata.managedFields; malformed ones are dropped (upstream resets)."""
    out = []
    for raw in managed if isinstance(managed, list) else []:
        if not isinstance(raw, dict) or raw.get("fieldsType", "FieldsV1") != "FieldsV1":
            continue
        try:
            fields = frozenset(fp.from_fields_v1(raw.get("fieldsV1") or {}))
        except ValueError:
            continue
        if not raw.get("manager") or raw.get("operation") not in ("Apply", "Update"):
            continue
        out.append(Entry(raw["manager"], raw["operation"], raw.get("apiVersion", ""),
                         raw.get("time", ""), fields, raw.get("subresource", "")))
    return out


def encode(entries: list[Entry]) -> list[dict]:
    out = []
    for e in entries:
        if not e.fields:
            continue
        raw = {"manager": e.manager, "operation": e.operation, "apiVersion": e.api_version,
               "time": e.time, "fieldsType": "FieldsV1", "fieldsV1": fp.to_fields_v1(e.fields)}
        if e.subresource:
            raw["subresource"] = e.subresource
        out.append(raw)
    return out


def tracked_part(obj: dict, subresource: str) -> dict:
    """What ownership is tracked on: a status write owns only status; other writes all
    but status (the strategy resets it) and the server's bookkeeping."""
    if subresource == "status":
        return {"status": obj["status"]} if "status" in obj else {}
    out = {k: v for k, v in obj.items() if k not in ("apiVersion", "kind", "status")}
    md = {k: v for k, v in (obj.get("metadata") or {}).items() if k not in _IGNORED_META}
    if md:
        out["metadata"] = md
    else:
        out.pop("metadata", None)
    return out


# ----- update (create, update, non-apply patch) --------------------------------------------
def record_update(old: dict | None, new: dict, manager: str, node: fp.Node,
                  subresource: str = "") -> None:
    """Set new.metadata.managedFields for a write by `manager` (upstream's Update).

    Works on the FieldsV1 trees directly and copies only the entries it changes: a write
    touches a few paths, and the entries may be shared with the stored object."""
    md = new.setdefault("metadata", {})
    entries = md.get("managedFields") if isinstance(md.get("managedFields"), list) else []
    before = tracked_part(old, subresource) if old is not None else {}
    cmp = fp.compare(before, tracked_part(new, subresource), node)
    if cmp.empty():
        return
    lost, key = cmp.modified | cmp.removed, (manager, "Update", subresource)
    out, mine_at = [], -1
    for raw in entries:
        if not isinstance(raw, dict) or not isinstance(raw.get("fieldsV1"), dict):
            continue
        if (raw.get("manager"), raw.get("operation"), raw.get("subresource", "")) == key:
            mine_at = len(out)
        elif lost and any(fp.fields_v1_has(raw["fieldsV1"], p) for p in lost):
            fields = fp.copy_fields_v1(raw["fieldsV1"])
            for p in lost:
                fp.fields_v1_remove(fields, p)
            if not fields:
                continue
            raw = {**raw, "fieldsV1": fields}
        out.append(raw)
    mine = out[mine_at]["fieldsV1"] if mine_at >= 0 else {}
    gained = [p for p in cmp.modified | cmp.added if not fp.fields_v1_has(mine, p)]
    dropped = [p for p in cmp.removed if fp.fields_v1_has(mine, p)]
    if gained or dropped or mine_at < 0:
        fields = fp.copy_fields_v1(mine)
        for p in dropped:
            fp.fields_v1_remove(fields, p)
        for p in gained:
            fp.fields_v1_add(fields, p)
        entry = {"manager": manager, "operation": "Update",
                 "apiVersion": new.get("apiVersion", ""), "time": now(),
                 "fieldsType": "FieldsV1", "fieldsV1": fields}
        if subresource:
            entry["subresource"] = subresource
        if mine_at >= 0:
            out[mine_at] = entry
        elif fields:
            out.append(entry)
    if mine_at >= 0 and not out[mine_at]["fieldsV1"]:
        del out[mine_at]
    if out:
        md["managedFields"] = out
    else:
        md.pop("managedFields", None)


def _store(obj: dict, entries: list[Entry]) -> None:
    encoded = encode(entries)
    md = obj.setdefault("metadata", {})
    if encoded:
        md["managedFields"] = encoded
    else:
        md.pop("managedFields", None)


def take_client_managed_fields(new: dict, old: dict) -> None:
    """Which managedFields an update starts from: the stored ones, unless the client wrote
    its own (tools rename managers that way); `[{}]` clears them, an empty list does not."""
    md, old_managed = new.setdefault("metadata", {}), (old.get("metadata") or {}).get(
        "managedFields")
    sent = md.get("managedFields")
    if sent == [{}]:
        md.pop("managedFields", None)
    elif not sent or sent == old_managed:
        if old_managed:
            md["managedFields"] = old_managed
        else:
            md.pop("managedFields", None)


# ----- apply ------------------------------------------------------------------------------
def apply(live: dict | None, config: dict, manager: str, node: fp.Node,
          force: bool = False) -> dict:
    """The object `config` applied by `manager` makes of `live` (None: it is created), with
    its managedFields; 409 Conflict (upstream's message and causes) unless `force`."""
    entries = decode((live or {}).get("metadata", {}).get("managedFields"))
    applied = frozenset(fp.field_set(tracked_part(config, ""), node))
    key = (manager, "Apply", "")
    mine = next((e for e in entries if e.key == key), None)
    last = mine.fields if mine else frozenset()
    base = live if live is not None else {}
    merged = fp.merge(base, _strip_server_fields(config), node)
    others = [e for e in entries if e is not mine]
    owned_elsewhere = frozenset().union(*(e.fields for e in others)) if others else frozenset()
    dropped = last - applied - owned_elsewhere
    if dropped:
        merged = fp.remove(merged, dropped, node)
    cmp = fp.compare(tracked_part(base, ""), tracked_part(merged, ""), node)
    changed = cmp.modified | cmp.added
    conflicts = [(e, sorted(e.fields & changed)) for e in others if e.fields & changed]
    if conflicts and not force:
        raise conflict_error(conflicts)
    for e in others:
        e.fields = e.fields - changed - cmp.removed if force else e.fields - cmp.removed
    if mine is None:
        mine = Entry(manager, "Apply", config.get("apiVersion", ""), "", frozenset())
        entries.append(mine)
    if applied != mine.fields or not mine.time:
        mine.fields, mine.time = applied, now()
    mine.api_version = config.get("apiVersion", mine.api_version)
    _store(merged, entries)
    return merged


def _strip_server_fields(config: dict) -> dict:
    """An applied configuration's own managedFields and resourceVersion are not merged."""
    md = config.get("metadata")
    if not isinstance(md, dict):
        return config
    md = {k: v for k, v in md.items() if k not in ("managedFields", "resourceVersion")}
    return {**config, "metadata": md}


def _who(e: Entry) -> str:
    text = f'"{e.manager}"'
    if e.subresource:
        text += f' with subresource "{e.subresource}"'
    if e.operation == "Update":
        text += f" using {e.api_version}"
    return text


def conflict_error(conflicts: list[tuple[Entry, list]]) -> errors.StatusError:
    pairs = [(e, p) for e, paths in conflicts for p in paths]
    causes = [{"reason": "FieldManagerConflict", "message": f"conflict with {_who(e)}",
               "field": fp.readable(p)} for e, p in pairs]
    if len(pairs) == 1:
        e, p = pairs[0]
        message = f"Apply failed with 1 conflict: conflict with {_who(e)}: {fp.readable(p)}"
    else:
        lines = []
        for e, paths in sorted(conflicts, key=lambda c: _who(c[0])):
            lines.append(f"conflicts with {_who(e)}:")
            lines += [f"- {fp.readable(p)}" for p in paths]
        message = f"Apply failed with {len(pairs)} conflicts: " + "\n".join(lines)
    return errors.StatusError(409, "Conflict", message, {"causes": causes})


def check_manager(manager: str, apply_patch: bool) -> None:
    """Upstream's PatchOptions/UpdateOptions validation of fieldManager."""
    if apply_patch and not manager:
        raise _invalid_options("fieldManager: Required value: is required for apply patch")
    if len(manager) > MAX_MANAGER_LENGTH:
        raise _invalid_options(f"fieldManager: Too long: may not be more than "
                               f"{MAX_MANAGER_LENGTH} bytes")
    if manager and not manager.isprintable():
        raise _invalid_options("fieldManager: Invalid value: must only contain printable "
                               "characters")


def _invalid_options(detail: str) -> errors.StatusError:
    return errors.StatusError(422, "Invalid", f'PatchOptions.meta.k8s.io "" is invalid: {detail}',
                              {"group": "meta.k8s.io", "kind": "PatchOptions", "name": ""})
