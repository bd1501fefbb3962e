"""Real parts for the cache tests: the MiniLM embedder (offline); Redis is tests/conftest.py's."""

from __future__ import annotations

import pytest

from cache.embedder import MiniLM


@pytest.fixture(scope="session")
def minilm() -> MiniLM:
    return MiniLM()
