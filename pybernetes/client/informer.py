"""Informers (client-go's shared informer): list once, then watch from that
resourceVersion, keeping a local cache that handlers and controllers read instead of
the API server. A dropped watch resumes from the last resourceVersion seen (bookmarks
keep it fresh); a 410 Gone lists again and reports what changed while away."""
from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Callable, Iterable

from pybernetes.client.api import APIClient, Resource
from pybernetes.machinery.errors import StatusError

log = logging.getLogger(__name__)

Handler = Callable[..., None]
IndexFunc = Callable[[dict], Iterable[str]]

PAGE = 500
WATCH_TIMEOUT = (300, 600)  # seconds; upstream picks at random in [5, 10) minutes
BACKOFF = (0.2, 5.0)        # retry delay after an error: first, cap


def object_key(obj: dict) -> str:
    """`namespace/name`, or `name` for cluster-scoped objects (client-go's MetaNamespaceKey)."""
    md = obj.get("metadata") or {}
    return f"{md['namespace']}/{md['name']}" if md.get("namespace") else md.get("name", "")


def by_namespace(obj: dict) -> list[str]:
    return [(obj.get("metadata") or {}).get("namespace") or ""]


def by_node(obj: dict) -> list[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return [node] if node else []


def by_owner_uid(obj: dict) -> list[str]:
    return [r["uid"] for r in (obj.get("metadata") or {}).get("ownerReferences") or []
            if r.get("uid")]


def by_uid(obj: dict) -> list[str]:
    uid = (obj.get("metadata") or {}).get("uid")
    return [uid] if uid else []


DEFAULT_INDEXES: dict[str, IndexFunc] = {
    "namespace": by_namespace, "node": by_node, "owner-uid": by_owner_uid, "uid": by_uid}


class Informer:
    """Cache of one resource (optionally one namespace / selector), kept by list+watch.
    Handlers are plain functions called on the event loop; they must not block."""

    def __init__(self, client: APIClient, res: Resource, namespace: str | None = None,
                 label_selector: str | None = None, field_selector: str | None = None):
        self.client, self.res, self.namespace = client, res, namespace
        self.label_selector, self.field_selector = label_selector, field_selector
        self.items: dict[str, dict] = {}
        self.resource_version = ""
        self._handlers: list[tuple[Handler | None, Handler | None, Handler | None]] = []
        self._index_funcs: dict[str, IndexFunc] = dict(DEFAULT_INDEXES)
        self._indexes: dict[str, dict[str, set[str]]] = {n: {} for n in self._index_funcs}
        self._synced = asyncio.Event()
        self._task: asyncio.Task | None = None

    # -- setup ------------------------------------------------------------------------------

    def add_handler(self, on_add: Handler | None = None, on_update: Handler | None = None,
                    on_delete: Handler | None = None) -> None:
        """on_add(obj), on_update(old, new), on_delete(obj). A handler added after the
        first list is replayed an add for everything already cached, as client-go does."""
        self._handlers.append((on_add, on_update, on_delete))
        if self._synced.is_set() and on_add:
            for obj in list(self.items.values()):
                self._call(on_add, obj)

    def add_index(self, name: str, fn: IndexFunc) -> None:
        """Index the cache by fn(obj) -> values; adding a known name again is a no-op."""
        if name in self._index_funcs:
            return
        self._index_funcs[name] = fn
        idx: dict[str, set[str]] = {}
        for key, obj in self.items.items():
            for v in fn(obj):
                idx.setdefault(v, set()).add(key)
        self._indexes[name] = idx

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"informer-{self.res.plural}")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping anyway
                pass
            self._task = None

    @property
    def has_synced(self) -> bool:
        return self._synced.is_set()

    async def wait_synced(self, timeout: float = 60) -> None:
        await asyncio.wait_for(self._synced.wait(), timeout)

    # -- reads ------------------------------------------------------------------------------

    def get(self, namespace: str | None, name: str) -> dict | None:
        return self.items.get(f"{namespace}/{name}" if namespace else name)

    def get_by_key(self, key: str) -> dict | None:
        return self.items.get(key)

    def list(self, namespace: str | None = None) -> list[dict]:
        if namespace is None:
            return list(self.items.values())
        return self.by_index("namespace", namespace)

    def keys(self) -> list[str]:
        return list(self.items)

    def by_index(self, name: str, value: str) -> list[dict]:
        keys = self._indexes[name].get(value) or ()
        return [self.items[k] for k in keys if k in self.items]

    # -- cache upkeep -------------------------------------------------------------------

    def _store(self, key: str, obj: dict) -> dict | None:
        old = self.items.get(key)
        if old is not None:
            self._unindex(key, old)
        self.items[key] = obj
        for name, fn in self._index_funcs.items():
            for v in fn(obj):
                self._indexes[name].setdefault(v, set()).add(key)
        return old

    def _remove(self, key: str) -> dict | None:
        old = self.items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def _unindex(self, key: str, obj: dict) -> None:
        for name, fn in self._index_funcs.items():
            idx = self._indexes[name]
            for v in fn(obj):
                keys = idx.get(v)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del idx[v]

    def _call(self, fn: Handler, *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - one bad handler must not stop the informer
            log.exception("%s informer: handler %s failed", self.res.plural,
                          getattr(fn, "__qualname__", fn))

    def _fire(self, which: int, *args: Any) -> None:
        for h in self._handlers:
            if h[which]:
                self._call(h[which], *args)

    def _apply(self, typ: str, obj: dict) -> None:
        key = object_key(obj)
        if typ == "DELETED":
            old = self._remove(key)
            self._fire(2, old if old is not None else obj)
            return
        old = self._store(key, obj)
        if old is None:
            self._fire(0, obj)
        else:
            self._fire(1, old, obj)

    def _replace(self, items: list[dict]) -> None:
        """A fresh list: deletes for what vanished, adds/updates for the rest."""
        fresh = {object_key(o): o for o in items}
        for key in [k for k in self.items if k not in fresh]:
            old = self._remove(key)
            self._fire(2, old)
        for key, obj in fresh.items():
            old = self._store(key, obj)
            if old is None:
                self._fire(0, obj)
            elif old["metadata"].get("resourceVersion") != obj["metadata"].get("resourceVersion"):
                self._fire(1, old, obj)

    # -- list + watch ---------------------------------------------------------------------

    async def _list(self) -> None:
        items, rv = await self.client.list_all(self.res, self.namespace, self.label_selector,
                                               self.field_selector, page=PAGE)
        self._replace(items)
        self.resource_version = rv
        self._synced.set()

    async def _watch(self) -> int:
        """Watch from self.resource_version until the server closes the stream; returns
        how many events came."""
        seen = 0
        events = self.client.watch(self.res, self.namespace, self.resource_version,
                                   self.label_selector, self.field_selector,
                                   timeout_seconds=random.randint(*WATCH_TIMEOUT))
        async for typ, obj in events:
            seen += 1
            if typ == "ERROR":
                code = obj.get("code", 500)
                raise StatusError(code, obj.get("reason", ""), obj.get("message", ""))
            rv = (obj.get("metadata") or {}).get("resourceVersion")
            if typ != "BOOKMARK":
                self._apply(typ, obj)
            if rv:
                self.resource_version = rv
        return seen

    async def _run(self) -> None:
        delay = BACKOFF[0]
        while True:
            try:
                if not self.resource_version:
                    await self._list()
                began = asyncio.get_running_loop().time()
                seen = await self._watch()
                if seen or asyncio.get_running_loop().time() - began >= 1:
                    delay = BACKOFF[0]
                    continue  # the server ended the watch (timeout): resume at once
                # an empty watch closed at once (a server shutting down): back off, as
                # client-go's "very short watch", instead of spinning
                log.info("%s informer: watch closed at once, retrying in %.1fs",
                         self.res.plural, delay)
            except asyncio.CancelledError:
                raise
            except StatusError as e:
                if e.code == 410:
                    log.info("%s informer: resourceVersion too old, listing again",
                             self.res.plural)
                    self.resource_version = ""
                    continue
                log.warning("%s informer: %s (retrying in %.1fs)", self.res.plural, e, delay)
            except Exception as e:  # noqa: BLE001 - connection trouble: back off, retry
                log.warning("%s informer: %s: %s (retrying in %.1fs)", self.res.plural,
                            type(e).__name__, e, delay)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, BACKOFF[1])
