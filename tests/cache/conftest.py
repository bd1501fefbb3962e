"""Real parts for the cache tests: the MiniLM embedder (offline), a tenant directory on
tests/conftest.py's Redis (one server and a cluster)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from cache.embedder import MiniLM
from cache.tenant_directory import TenantDirectory
from tests.redis_cluster import RedisTarget


@pytest.fixture
async def directory(redis_target: RedisTarget) -> AsyncIterator[TenantDirectory]:
    client = redis_target.client()
    yield TenantDirectory(client)
    await client.aclose()


def tenant_name() -> str:
    """A tenant name no other test uses."""
    return "t-" + uuid.uuid4().hex[:8]


@pytest.fixture(scope="session")
def minilm() -> MiniLM:
    return MiniLM()
