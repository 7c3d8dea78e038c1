"""A continue token from before a compaction answers 410 Expired, as upstream."""
from __future__ import annotations

import pytest

from pybernetes.api.registry import registry
from pybernetes.apiserver.bootstrap import SYSTEM, bootstrap
from pybernetes.apiserver.config import APIServerConfig
from pybernetes.apiserver.resource_store import Context, ListOptions
from pybernetes.apiserver.state import APIState
from pybernetes.machinery.errors import StatusError
from pybernetes.storage.store import open_store


async def test_expired_continue_token(tmp_path) -> None:
    cfg = APIServerConfig(data_dir=str(tmp_path))
    store = open_store("sqlite", data_dir=str(tmp_path))
    await store.start()
    api = APIState(cfg, store, registry())
    await api.start()
    try:
        await bootstrap(api)
        cms = api.resource("", "v1", "configmaps")
        for i in range(5):
            await cms.create("default", {"metadata": {"name": f"c{i}"}, "data": {}},
                             Context(SYSTEM))
        page, meta = await cms.list("default", ListOptions(limit=2))
        assert [o["metadata"]["name"] for o in page] == ["c0", "c1"] and meta["continue"]
        rest, _ = await cms.list("default", ListOptions(limit=10, continue_token=meta["continue"]))
        assert [o["metadata"]["name"] for o in rest] == ["c2", "c3", "c4"]
        await cms.create("default", {"metadata": {"name": "later"}, "data": {}}, Context(SYSTEM))
        await store.compact(await store.current_revision())
        with pytest.raises(StatusError) as e:
            await cms.list("default", ListOptions(limit=2, continue_token=meta["continue"]))
        assert (e.value.code, e.value.reason) == (410, "Expired")
        assert "continue parameter is too old" in e.value.message
    finally:
        await api.stop()
        await store.close()
