"""The generic registry: create/get/list/update/patch/delete for any Strategy.

Upstream's genericregistry.Store in our shape. It knows objects only through
their strategy and ObjectMeta; every write is a compare-and-swap on the
object's mod revision, so concurrent writers never lose an update.
"""
from __future__ import annotations

import base64
import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Collection

import orjson

from ..admission.chain import Attributes
from ..api.strategy import Strategy
from ..machinery import errors, fieldpath, managed_fields, objectmeta, schema
from ..machinery.jsonvalues import clone
from ..machinery.selectors import FieldSelector, LabelSelector
from ..storage.store import CompactedError, ConflictError, KeyExistsError, KeyNotFoundError
from ..storage.watch_cache import WatchCache

if TYPE_CHECKING:
    from ..auth.authn import UserInfo
    from .state import APIState

MAX_CAS_RETRIES = 8


@dataclass
class Context:
    """Per-request facts the write paths need."""

    user: "UserInfo"
    dry_run: bool = False
    field_manager: str = ""     # who managedFields credit the write to ("": nobody)
    warnings: list[str] = field(default_factory=list)
    applied: bool = False       # server-side apply already set managedFields


@dataclass
class ListOptions:
    label_selector: LabelSelector | None = None
    field_selector: FieldSelector | None = None
    limit: int = 0
    continue_token: str = ""
    resource_version: str = ""
    resource_version_match: str = ""

    def matches(self, strategy: Strategy, obj: dict) -> bool:
        if self.label_selector is not None and not self.label_selector.matches(
                obj.get("metadata", {}).get("labels")):
            return False
        if self.field_selector is not None and not self.field_selector.matches(
                strategy.field_labels(obj)):
            return False
        return True

    @property
    def filtered(self) -> bool:
        return self.label_selector is not None or self.field_selector is not None


def encode_continue(rev: int, start_after: str) -> str:
    raw = orjson.dumps({"v": "meta.k8s.io/v1", "rv": rev, "start": start_after})
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_continue(token: str) -> tuple[int, str]:
    try:
        pad = "=" * (-len(token) % 4)
        d = orjson.loads(base64.urlsafe_b64decode(token + pad))
        return int(d["rv"]), str(d["start"])
    except Exception:
        raise errors.bad_request("continue key is not valid: incorrect encoded start "
                                 "resourceVersion (version meta.k8s.io/v1)")


def scoped(obj: dict, only: Collection[str] | None) -> dict:
    """The object itself, or a shallow view of its top-level fields in `only` (in the
    object's order, so the first problem found is the one a whole check finds)."""
    if only is None:
        return obj
    return {k: v for k, v in obj.items() if k in only}


def unscope(obj: dict, part: dict, only: Collection[str] | None) -> None:
    """Carry top-level changes made to a view (a null or unknown field dropped) back."""
    if part is obj or only is None:
        return
    for k in only:
        if k in part:
            obj[k] = part[k]
        else:
            obj.pop(k, None)


def _spec_part(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _strip_for_compare(obj: dict) -> dict:
    o = dict(obj)
    md = dict(o.get("metadata", {}))
    md.pop("resourceVersion", None)
    md.pop("managedFields", None)
    o["metadata"] = md
    return o


class ResourceStore:
    """All operations on one resource (one strategy), against store + watch cache."""

    def __init__(self, api: "APIState", strategy: Strategy, cache: WatchCache):
        self.api = api
        self.s = strategy
        self.cache = cache
        self.store = api.store
        # storage-side hooks of this resource (e.g. service IP allocation): objects with
        # optional async before_create(obj, ctx), before_update(new, old, ctx), after_delete(obj)
        self.hooks: list[Any] = []

    async def _run_hooks(self, name: str, *args: Any) -> None:
        for h in self.hooks:
            fn = getattr(h, name, None)
            if fn is not None:
                await fn(*args)

    # ----- encoding ------------------------------------------------------------
    def encode(self, obj: dict) -> bytes:
        """The stored form: storage conversion applied, no resourceVersion."""
        stored = self.s.to_storage(obj)
        md = dict(stored.get("metadata", {}))
        md.pop("resourceVersion", None)
        stored = dict(stored)
        stored["metadata"] = md
        return orjson.dumps(stored)

    def decode(self, value: bytes, rev: int) -> dict:
        """Stored bytes -> this strategy's form, with resourceVersion set."""
        obj = orjson.loads(value)
        obj.setdefault("metadata", {})["resourceVersion"] = str(rev)
        return self.s.from_storage(obj)

    def out(self, cached: dict) -> dict:
        """A cached (storage-form, shared) object in this strategy's form."""
        return self.s.from_storage(cached)

    def key(self, namespace: str, name: str) -> str:
        return self.s.key(namespace if self.s.namespaced else None, name)

    def prefix(self, namespace: str) -> str:
        p = self.s.storage_prefix()
        return f"{p}{namespace}/" if (self.s.namespaced and namespace) else p

    # ----- reads ---------------------------------------------------------------
    async def get(self, namespace: str, name: str) -> dict:
        if self.s.virtual_list is not None:
            for obj in self.s.virtual_list():
                if obj.get("metadata", {}).get("name") == name:
                    return obj
            raise self._not_found(name)
        kv = await self.store.get(self.key(namespace, name))
        if kv is None:
            raise self._not_found(name)
        return self.decode(kv.value, kv.mod_revision)

    async def get_for_read(self, namespace: str, name: str) -> dict:
        """A GET's answer: from the watch cache once it has caught up with every write
        acknowledged so far (when the store can tell that without I/O), else from the
        store. The result is shared with the cache: render it, never mutate it."""
        known = self.store.known_revision()
        if known is None or self.s.virtual_list is not None:
            return await self.get(namespace, name)
        await self._wait_fresh(known)
        cached = self.cache.get(self.key(namespace, name))
        if cached is None:
            raise self._not_found(name)
        return self.out(cached)

    async def try_get(self, namespace: str, name: str) -> tuple[dict, int] | None:
        kv = await self.store.get(self.key(namespace, name))
        if kv is None:
            return None
        return self.decode(kv.value, kv.mod_revision), kv.mod_revision

    async def list(self, namespace: str, opts: ListOptions) -> tuple[list[dict], dict]:
        """Items (this strategy's form) and the list metadata."""
        if self.s.virtual_list is not None:
            items = [o for o in self.s.virtual_list() if opts.matches(self.s, o)]
            return items, {"resourceVersion": str(self.cache.revision)}
        if opts.continue_token:
            rev, start = decode_continue(opts.continue_token)
            return await self._list_from_store(namespace, opts, rev, start)
        rv, match = opts.resource_version, opts.resource_version_match
        if match == "Exact":
            if not rv or rv == "0":
                raise errors.bad_request("resourceVersionMatch=Exact requires a resourceVersion "
                                         "other than \"0\"")
            return await self._list_from_store(namespace, opts, _parse_rv(rv), "")
        if match and match not in ("NotOlderThan", "Exact"):
            raise errors.bad_request(f'resourceVersionMatch: unsupported value: "{match}"')
        if rv and rv != "0":
            await self._wait_fresh(_parse_rv(rv))
        elif rv != "0":
            known = self.store.known_revision()
            await self._wait_fresh(known if known is not None else
                                   await self.store.current_revision())
        return self._list_from_cache(namespace, opts)

    async def _wait_fresh(self, rev: int) -> None:
        try:
            await self.cache.wait_until(rev, timeout=3.0)
        except TimeoutError:
            raise errors.StatusError(
                504, "Timeout",
                f"Too large resource version: {rev}, current: {self.cache.revision}",
                {"causes": [{"reason": "ResourceVersionTooLarge",
                             "message": "Too large resource version"}], "retryAfterSeconds": 1})

    def _list_from_cache(self, namespace: str, opts: ListOptions) -> tuple[list[dict], dict]:
        rev = self.cache.revision
        objs = self.cache.list(self.prefix(namespace))
        if opts.filtered:
            objs = [o for o in objs if opts.matches(self.s, self.out(o))]
        meta: dict[str, Any] = {"resourceVersion": str(rev)}
        if opts.limit and len(objs) > opts.limit:
            page = objs[:opts.limit]
            last_key = self.key(page[-1]["metadata"].get("namespace", ""),
                                page[-1]["metadata"]["name"])
            meta["continue"] = encode_continue(rev, last_key)
            if not opts.filtered:
                meta["remainingItemCount"] = len(objs) - opts.limit
            objs = page
        return [self.out(o) for o in objs], meta

    async def _list_from_store(self, namespace: str, opts: ListOptions, rev: int,
                               start_after: str) -> tuple[list[dict], dict]:
        prefix = self.prefix(namespace)
        out: list[dict] = []
        last_key = start_after
        more = True
        try:
            while more and (not opts.limit or len(out) < opts.limit):
                want = (opts.limit - len(out)) if opts.limit else 0
                batch = max(want, 1) if not opts.filtered else max(want * 2, 100)
                kvs, list_rev, more = await self.store.list(prefix, limit=batch if opts.limit else 0,
                                                            start_after=last_key, at_rev=rev)
                rev = rev or list_rev
                for kv in kvs:
                    obj = self.decode(kv.value, kv.mod_revision)
                    last_key = kv.key
                    if opts.matches(self.s, obj):
                        out.append(obj)
                        if opts.limit and len(out) == opts.limit:
                            more = more or kv is not kvs[-1]
                            break
                if not opts.limit:
                    more = False
        except CompactedError:
            if opts.continue_token:
                raise errors.expired(
                    "The provided continue parameter is too old to display a consistent list "
                    "result. You can start a new list without the continue parameter, or use the "
                    "continue token in this response to retrieve the remainder of the results. "
                    "Continuing with the provided token results in an inconsistent list - objects "
                    "that were created, modified, or deleted between the time the first chunk was "
                    "returned and now may show up in the list.")
            raise errors.expired("The resourceVersion for the provided list is too old.")
        meta: dict[str, Any] = {"resourceVersion": str(rev)}
        if more and opts.limit:
            meta["continue"] = encode_continue(rev, last_key)
        return out, meta

    # ----- writes --------------------------------------------------------------
    def _not_found(self, name: str) -> errors.StatusError:
        return errors.not_found(self.s.plural, name, self.s.group)

    def _invalid(self, obj: dict, causes: list) -> errors.StatusError:
        return errors.invalid(self.s.kind, obj.get("metadata", {}).get("name", ""), causes,
                              self.s.group)

    def check_body(self, obj: Any, namespace: str, name: str | None = None,
                   only: Collection[str] | None = None) -> dict:
        """The request body is an object of this kind for this URL. With `only`, the
        JSON types are checked under those top-level fields alone (the rest is known good:
        what a patch did not touch of an object already stored)."""
        if not isinstance(obj, dict):
            raise errors.bad_request(f"the body of the request must be a {self.s.kind} object")
        av, kind = obj.get("apiVersion"), obj.get("kind")
        if kind and kind != self.s.kind:
            raise errors.bad_request(
                f"the kind in the data ({kind}) does not match the expected kind ({self.s.kind})"
                if not av or av == self.s.api_version() else
                f"the API version in the data ({av}) does not match the expected API version "
                f"({self.s.api_version()})")
        if av and av != self.s.api_version():
            raise errors.bad_request(f"the API version in the data ({av}) does not match the "
                                     f"expected API version ({self.s.api_version()})")
        obj["apiVersion"], obj["kind"] = self.s.api_version(), self.s.kind
        self._check_types(obj, only)
        md = obj.get("metadata")
        if md is None:
            md = obj["metadata"] = {}
        elif not isinstance(md, dict):
            raise errors.bad_request("metadata must be an object")
        if self.s.namespaced:
            body_ns = md.get("namespace")
            if body_ns and namespace and body_ns != namespace:
                raise errors.bad_request("the namespace of the provided object does not match "
                                         "the namespace sent on the request")
            if namespace:
                md["namespace"] = namespace
        else:
            md.pop("namespace", None)
        if name is not None and md.get("name") and md["name"] != name:
            raise errors.bad_request(f"the name of the object ({md['name']}) does not match the "
                                     f"name on the URL ({name})")
        if name is not None and not md.get("name"):
            md["name"] = name
        return obj

    def _check_types(self, obj: dict, only: Collection[str] | None = None) -> None:
        """Wrong JSON types are a 400 before any strategy sees the object, like upstream's
        decoder; JSON nulls decode to Go zero values."""
        from ..machinery import fieldvalidation
        name = schema.definition_name_for(self.s.group, self.s.version, self.s.kind)
        if name is None:
            return
        part = scoped(obj, only)
        problems = fieldvalidation.type_errors(part, name)
        if problems:
            raise errors.bad_request(f'{self.s.kind} in version "{self.s.version}" cannot be '
                                     f"handled as a {self.s.kind}: {problems[0]}")
        fieldvalidation.zero_nulls(part, name)
        unscope(obj, part, only)

    def _validate_meta(self, obj: dict, old: dict | None) -> list:
        from ..machinery import validation
        name_fn = self.s.name_validator or validation.is_dns1123_subdomain
        causes = validation.validate_object_meta(obj["metadata"], self.s.namespaced, name_fn)
        if old is not None:
            causes += validation.validate_object_meta_update(obj["metadata"], old["metadata"])
        return causes

    async def create(self, namespace: str, obj: dict, ctx: Context) -> dict:
        obj = self.check_body(obj, namespace)
        md = obj["metadata"]
        if self.s.namespaced and not md.get("namespace"):
            raise errors.bad_request("the namespace of the object is required "
                                     "(set metadata.namespace or use a namespaced URL)")
        if not md.get("name") and md.get("generateName"):
            md["name"] = objectmeta.generate_name(md["generateName"])
        objectmeta.stamp_new(md)
        self.s.prepare_for_create(obj)
        if self.s.tracks_generation:
            md["generation"] = 1
        else:
            md.pop("generation", None)
        self.s.default(obj)
        attrs = Attributes("CREATE", self.s, md.get("namespace", ""), md.get("name", ""), obj,
                           None, ctx.user, dry_run=ctx.dry_run)
        for plugin in self.api.admission.plugins:
            await plugin.admit(attrs, self.api)
        causes = self._validate_meta(obj, None) + self.s.validate(obj)
        if causes:
            raise self._invalid(obj, causes)
        for plugin in self.api.admission.plugins:
            await plugin.validate(attrs, self.api)
        self.record_fields(None, obj, ctx)
        await self._run_hooks("before_create", obj, ctx)
        if ctx.dry_run:
            return obj
        try:
            rev = await self.store.create(self.key(md.get("namespace", ""), md["name"]),
                                          self.encode(obj))
        except KeyExistsError:
            await self._undo_create(obj, ctx)
            raise errors.already_exists(self.s.plural, md["name"], self.s.group)
        except BaseException:
            await self._undo_create(obj, ctx)
            raise
        md["resourceVersion"] = str(rev)
        return obj

    async def _undo_create(self, obj: dict, ctx: Context) -> None:
        if not ctx.dry_run:
            await self._run_hooks("after_delete", obj)

    async def guaranteed_update(self, namespace: str, name: str,
                                mutate: Callable[[dict | None], Awaitable[dict | None]],
                                ctx: Context) -> tuple[dict, bool]:
        """Read-modify-CAS loop. `mutate(current)` gets a private copy and returns the new
        object, or None for "no change"; it raises StatusErrors to refuse. Returns
        (object, created).

        The first try starts from the watch cache's copy (no hop to the storage thread),
        as upstream does: the CAS on its mod revision keeps the write correct, and a
        conflict re-reads from the store. When the cache may lag behind an acknowledged
        write, only a successful CAS is trusted: a refusal, "no change" or a dry run
        judged against that copy is decided again from the store."""
        key = self.key(namespace, name)
        for attempt in range(MAX_CAS_RETRIES):
            found = self._cached_current(key) if attempt == 0 else None
            trusted = found is None or found[2]
            if found is None:
                kv = await self.store.get(key)
                found = (self.decode(kv.value, kv.mod_revision), kv.mod_revision, True) \
                    if kv else None
            current, mod_rev = (found[0], found[1]) if found is not None else (None, 0)
            try:
                new = await mutate(clone(current) if current is not None else None)
            except errors.StatusError:
                if trusted:
                    raise
                continue
            if not trusted and (new is None or ctx.dry_run):
                continue
            if new is None:
                assert current is not None
                return clone(current), False
            if ctx.dry_run:
                return new, current is None
            try:
                if current is None:
                    rev = await self.store.create(key, self.encode(new))
                elif self._deletes(new):
                    rev, _ = await self.store.delete(key, expected_rev=mod_rev)
                    await self._after_delete(new)
                else:
                    rev = await self.store.update(key, self.encode(new), mod_rev)
            except (ConflictError, KeyExistsError, KeyNotFoundError):
                continue
            new["metadata"]["resourceVersion"] = str(rev)
            return new, current is None
        raise errors.conflict(self.s.plural, name, errors.STALE_UPDATE, self.s.group)

    def _cached_current(self, key: str) -> tuple[dict, int, bool] | None:
        """(object, mod revision, current) from the watch cache, where the object is
        shared (read-only) and `current` says the cache has seen every write acknowledged
        so far; None: read the store (no cached copy, or a store other API servers write)."""
        known = self.store.known_revision()
        if known is None or self.s.virtual_list is not None:
            return None
        cached = self.cache.get(key)
        if cached is None:  # created a moment ago, or gone: the store knows
            return None
        return (self.out(cached), int(cached["metadata"]["resourceVersion"]),
                self.cache.revision >= known)

    def _holds(self, obj: dict) -> bool:
        """Does the kind itself keep this object from going (namespace spec.finalizers)?"""
        return self.s.holds_deletion(obj)

    def _deletes(self, obj: dict) -> bool:
        """An object being deleted whose last finalizer went away is removed for good."""
        md = obj["metadata"]
        return bool(md.get("deletionTimestamp")) and not md.get("finalizers") and \
            not md.get("deletionGracePeriodSeconds") and not self._holds(obj)

    async def _after_delete(self, obj: dict) -> None:
        await self._run_hooks("after_delete", obj)

    async def update(self, namespace: str, name: str, body: dict, ctx: Context,
                     subresource: str = "") -> tuple[dict, bool]:
        body = self.check_body(body, namespace, name)
        want_rv = body["metadata"].get("resourceVersion")

        async def mutate(old: dict | None) -> dict | None:
            new = copy.deepcopy(body)
            if old is None:
                if subresource or not self.s.allow_create_on_update:
                    raise self._not_found(name)
                if want_rv:
                    raise self._not_found(name)
                return await self._prepare_create_on_update(new, ctx)
            if want_rv and want_rv != old["metadata"].get("resourceVersion"):
                raise errors.conflict(self.s.plural, name, errors.STALE_UPDATE, self.s.group)
            return await self.prepare_update(new, old, ctx, subresource)

        return await self.guaranteed_update(namespace, name, mutate, ctx)

    async def _prepare_create_on_update(self, obj: dict, ctx: Context) -> dict:
        md = obj["metadata"]
        objectmeta.stamp_new(md)
        self.s.prepare_for_create(obj)
        if self.s.tracks_generation:
            md["generation"] = 1
        self.s.default(obj)
        causes = self._validate_meta(obj, None) + self.s.validate(obj)
        if causes:
            raise self._invalid(obj, causes)
        await self.api.admission.run(Attributes("CREATE", self.s, md.get("namespace", ""),
                                                md["name"], obj, None, ctx.user,
                                                dry_run=ctx.dry_run), self.api)
        self.record_fields(None, obj, ctx)
        return obj

    @property
    def field_node(self) -> "fieldpath.Node":
        """The schema position ownership is tracked against (managedFields)."""
        node = getattr(self, "_field_node", None)
        if node is None:
            name = schema.definition_name_for(self.s.group, self.s.version, self.s.kind)
            node = self._field_node = fieldpath.root(name)
        return node

    def record_fields(self, old: dict | None, new: dict, ctx: Context,
                      subresource: str = "") -> None:
        """Credit the write's fields to its manager in metadata.managedFields."""
        if ctx.applied:
            return
        if old is not None:
            managed_fields.take_client_managed_fields(new, old)
        if ctx.field_manager:
            managed_fields.record_update(old, new, ctx.field_manager, self.field_node,
                                         subresource)

    async def prepare_update(self, new: dict, old: dict, ctx: Context,
                             subresource: str = "") -> dict | None:
        """Everything an update does before the write; None when nothing changed."""
        md, old_md = new["metadata"], old["metadata"]
        if subresource == "status":
            # upstream: /status keeps the spec but takes metadata changes (labels,
            # annotations) like a main update, minus what the strategy resets
            objectmeta.carry_over(md, old_md)
            self.s.prepare_for_status_update(new, old)
            causes = self._validate_meta(new, old) + self.s.validate_status_update(new, old)
        elif subresource in ("approval", "finalize"):
            # these change only their part; metadata stays as stored
            new["metadata"] = copy.deepcopy(old_md)
            getattr(self.s, f"prepare_for_{subresource}_update")(new, old)
            validate = getattr(self.s, f"validate_{subresource}_update", None)
            causes = validate(new, old) if validate else []
        else:
            objectmeta.carry_over(md, old_md)
            self.s.prepare_for_update(new, old)
            self.s.default(new)
            await self._run_hooks("fill_update", new, old, ctx)
            if self.s.tracks_generation:
                gen = old_md.get("generation", 1)
                changed = _spec_part(new) != _spec_part(old) or (
                    self.s.annotations_bump_generation
                    and md.get("annotations") != old_md.get("annotations"))
                md["generation"] = gen + 1 if changed else gen
            causes = self._validate_meta(new, old) + self.s.validate_update(new, old)
        if causes:
            raise self._invalid(new, causes)
        await self.api.admission.run(
            Attributes("UPDATE", self.s, old_md.get("namespace", ""), old_md["name"], new, old,
                       ctx.user, subresource=subresource, dry_run=ctx.dry_run), self.api)
        await self._run_hooks("before_update", new, old, ctx)
        same = _strip_for_compare(new) == _strip_for_compare(old)
        self.record_fields(old, new, ctx, subresource)
        if same and new["metadata"].get("managedFields") == old_md.get("managedFields"):
            return None
        return new

    # ----- delete --------------------------------------------------------------
    async def delete(self, namespace: str, name: str, options: dict, ctx: Context) -> tuple[dict, bool]:
        """Returns (object, deleted_now). Graceful or finalized objects are only marked."""
        key = self.key(namespace, name)
        pre = options.get("preconditions") or {}
        for _ in range(MAX_CAS_RETRIES):
            kv = await self.store.get(key)
            if kv is None:
                raise self._not_found(name)
            obj = self.decode(kv.value, kv.mod_revision)
            md = obj["metadata"]
            self._check_preconditions(name, md, pre)
            await self.api.admission.run(
                Attributes("DELETE", self.s, md.get("namespace", ""), name, None, obj, ctx.user,
                           dry_run=ctx.dry_run, options=options), self.api)
            marked = self._mark_for_deletion(obj, options)
            if marked is not None:
                if marked is obj or ctx.dry_run:
                    return marked, False
                try:
                    rev = await self.store.update(key, self.encode(marked), kv.mod_revision)
                except (ConflictError, KeyNotFoundError):
                    continue
                marked["metadata"]["resourceVersion"] = str(rev)
                return marked, False
            if ctx.dry_run:
                return obj, True
            try:
                await self.store.delete(key, expected_rev=kv.mod_revision)
            except (ConflictError, KeyNotFoundError):
                continue
            await self._after_delete(obj)
            return obj, True
        raise errors.conflict(self.s.plural, name, errors.STALE_UPDATE, self.s.group)

    def _check_preconditions(self, name: str, md: dict, pre: dict) -> None:
        if pre.get("uid") and pre["uid"] != md.get("uid"):
            raise errors.conflict(self.s.plural, name,
                                  f"Precondition failed: UID in precondition: {pre['uid']}, "
                                  f"UID in object meta: {md.get('uid')}", self.s.group)
        if pre.get("resourceVersion") and pre["resourceVersion"] != md.get("resourceVersion"):
            raise errors.conflict(self.s.plural, name,
                                  f"Precondition failed: ResourceVersion in precondition: "
                                  f"{pre['resourceVersion']}, ResourceVersion in object meta: "
                                  f"{md.get('resourceVersion')}", self.s.group)

    def _mark_for_deletion(self, obj: dict, options: dict) -> dict | None:
        """None: delete now. Otherwise the object to store (deletionTimestamp set)."""
        md = obj["metadata"]
        finalizers = list(md.get("finalizers") or [])
        policy = options.get("propagationPolicy")
        if policy is None and options.get("orphanDependents") is not None:
            policy = "Orphan" if options["orphanDependents"] else "Background"
        if policy is None:
            policy = self.s.default_propagation
        if policy == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if policy == "Orphan" and "orphan" not in finalizers:
            finalizers.append("orphan")
        grace = self.s.deletion_grace_period(obj, options.get("gracePeriodSeconds"))
        held = self._holds(obj)
        if md.get("deletionTimestamp"):
            # already being deleted: only a shorter grace period or new finalizers change it
            cur = md.get("deletionGracePeriodSeconds") or 0
            new_grace = grace if grace is not None and grace < cur else cur
            if not finalizers and new_grace == 0 and not held:
                return None
            if new_grace == cur and finalizers == (md.get("finalizers") or []):
                return obj
            return self._stamp_deletion(copy.deepcopy(obj), new_grace, finalizers)
        if not finalizers and not grace and not held:
            return None
        return self._stamp_deletion(copy.deepcopy(obj), grace or 0, finalizers)

    def _stamp_deletion(self, obj: dict, grace: int, finalizers: list[str]) -> dict:
        import datetime as dt
        md = obj["metadata"]
        when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=grace)
        if not md.get("deletionTimestamp") or grace < (md.get("deletionGracePeriodSeconds") or 0):
            md["deletionTimestamp"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        md["deletionGracePeriodSeconds"] = grace
        if finalizers:
            md["finalizers"] = finalizers
        if grace == 0 and not finalizers:
            md.pop("deletionGracePeriodSeconds", None)
        self.s.on_deletion_marked(obj)
        return obj

    def deleted_response(self, obj: dict) -> dict:
        if self.s.return_deleted_object:
            return obj
        md = obj["metadata"]
        details: dict[str, Any] = {"name": md.get("name", "")}
        if self.s.group:
            details["group"] = self.s.group
        details["kind"] = self.s.plural
        details["uid"] = md.get("uid", "")
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": details}


def _parse_rv(rv: str) -> int:
    try:
        n = int(rv)
        if n < 0:
            raise ValueError
        return n
    except ValueError:
        raise errors.bad_request(f'invalid resource version "{rv}"') from None


parse_rv = _parse_rv
