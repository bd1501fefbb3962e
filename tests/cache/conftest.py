"""Real parts for the cache tests: an embedded redis-server and the MiniLM embedder (offline)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cache.embedder import MiniLM
from cache.redis_server import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    server = EmbeddedRedis(str(tmp_path_factory.mktemp("redis")))
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def minilm() -> MiniLM:
    return MiniLM()
