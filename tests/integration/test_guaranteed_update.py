"""guaranteed_update starts from the watch cache's copy; the CAS on the mod revision keeps
it correct: a concurrent write makes it re-read from the store, and a cache that lags
behind an acknowledged write never decides a refusal or a "no change"."""
from __future__ import annotations

import asyncio

import pytest

from pybernetes.apiserver.bootstrap import SYSTEM
from pybernetes.apiserver.resource_store import Context, ResourceStore
from pybernetes.apiserver.state import APIState
from pybernetes.machinery.errors import StatusError


async def made(cms: ResourceStore, name: str, data: dict) -> dict:
    obj = await cms.create("default", {"metadata": {"name": name}, "data": data},
                           Context(SYSTEM))
    await cms.cache.wait_until(int(obj["metadata"]["resourceVersion"]))
    return obj


async def test_a_concurrent_write_is_not_lost(api: APIState) -> None:
    cms = api.resource("", "v1", "configmaps")
    await made(cms, "c", {"a": "1"})
    seen: list[dict] = []

    async def add_b(cm: dict | None) -> dict | None:
        assert cm is not None
        seen.append(dict(cm["data"]))
        if len(seen) == 1:  # another writer gets in between our read and our write
            await cms.guaranteed_update("default", "c", add_c, Context(SYSTEM))
        cm["data"]["b"] = "2"
        return cm

    async def add_c(cm: dict | None) -> dict | None:
        assert cm is not None
        cm["data"]["c"] = "3"
        return cm

    result, created = await cms.guaranteed_update("default", "c", add_b, Context(SYSTEM))
    assert not created and result["data"] == {"a": "1", "b": "2", "c": "3"}
    assert seen == [{"a": "1"}, {"a": "1", "c": "3"}]  # the retry read the new state
    stored = await cms.get("default", "c")
    assert stored["data"] == result["data"]
    assert stored["metadata"]["resourceVersion"] == result["metadata"]["resourceVersion"]


async def test_a_refused_mutation_leaves_the_cache_alone(api: APIState) -> None:
    cms = api.resource("", "v1", "configmaps")
    obj = await made(cms, "r", {"a": "1"})

    async def scribble_then_refuse(cm: dict | None) -> dict | None:
        assert cm is not None
        cm["data"]["a"] = "scribbled"
        cm["metadata"]["labels"] = {"x": "y"}
        raise StatusError(409, "Conflict", "no")

    with pytest.raises(StatusError):
        await cms.guaranteed_update("default", "r", scribble_then_refuse, Context(SYSTEM))
    cached = cms.cache.get(cms.key("default", "r"))
    assert cached["data"] == {"a": "1"} and "labels" not in cached["metadata"]
    same, changed = await cms.guaranteed_update(
        "default", "r", lambda cm: asyncio.sleep(0, None), Context(SYSTEM))
    assert not changed and same["metadata"]["resourceVersion"] == \
        obj["metadata"]["resourceVersion"]
    same["data"]["a"] = "mine"  # the answer is the caller's own copy
    assert cms.cache.get(cms.key("default", "r"))["data"] == {"a": "1"}


async def test_a_lagging_cache_never_decides_a_refusal(api: APIState) -> None:
    cms = api.resource("", "v1", "configmaps")
    obj = await made(cms, "l", {"a": "1"})
    api.hub._task.cancel()  # the cache stops following the store: it lags from now on
    with pytest.raises(asyncio.CancelledError):
        await api.hub._task
    newer = await api.store.update(cms.key("default", "l"), cms.encode(
        dict(obj, data={"a": "2"})), int(obj["metadata"]["resourceVersion"]))
    assert cms.cache.get(cms.key("default", "l"))["data"] == {"a": "1"}  # stale copy
    # an update naming the store's resourceVersion is no conflict, though the cache's
    # copy has an older one
    body = {"metadata": {"name": "l", "resourceVersion": str(newer)}, "data": {"a": "3"}}
    result, _ = await cms.update("default", "l", body, Context(SYSTEM))
    assert result["data"] == {"a": "3"}
    # and an update that changes nothing against the stale copy still writes
    body = {"metadata": {"name": "l"}, "data": {"a": "1"}}
    result, _ = await cms.update("default", "l", body, Context(SYSTEM))
    assert (await cms.get("default", "l"))["data"] == {"a": "1"}
    assert int(result["metadata"]["resourceVersion"]) > newer
