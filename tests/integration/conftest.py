"""Fixtures shared by the integration tests."""
from __future__ import annotations

from pathlib import Path
from typing import AsyncIterator

import pytest

from pybernetes.api.registry import registry
from pybernetes.apiserver.bootstrap import bootstrap
from pybernetes.apiserver.config import APIServerConfig
from pybernetes.apiserver.state import APIState
from pybernetes.storage.store import open_store


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[APIState]:
    """The API server's state (stores, watch caches, admission) in this process, on a
    fresh SQLite store with the bootstrap objects, for tests that call it directly."""
    store = open_store("sqlite", data_dir=str(tmp_path))
    await store.start()
    api = APIState(APIServerConfig(data_dir=str(tmp_path)), store, registry())
    await api.start()
    try:
        await bootstrap(api)
        yield api
    finally:
        await api.stop()
        await store.close()
