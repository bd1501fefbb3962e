"""Fixtures shared by the integration tests' modules."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager

import openai
import pytest
import redis

from ostinato.mesh import Mesh
from tests.conftest import http_base, running_mesh
from tests.integration.agent_checks import API_KEYS
from tests.integration.fault_mesh import start_mesh


@pytest.fixture(scope="module")
def faults() -> Iterator[Mesh]:
    """Two workers, health checks off (a hung engine keeps its worker eligible)."""
    mesh = start_mesh()
    yield mesh
    mesh.close()


@pytest.fixture(scope="module")
def base_url(mesh: Mesh) -> str:
    """The OpenAI-compatible base URL of the module's mesh."""
    return http_base(mesh)


@pytest.fixture(scope="module")
def acme(base_url: str) -> Iterator[openai.OpenAI]:
    """The official openai client, as tenant acme (as agent frameworks use it)."""
    with openai.OpenAI(base_url=base_url, api_key="key-acme", max_retries=0) as client:
        yield client


@pytest.fixture(scope="module")
def agent_mesh() -> Iterator[Mesh]:
    """The agent tests' mesh: a key per test's tenant (agent_checks.py), none without one."""
    with running_mesh({
        "gateway": {"http_port": 0, "api_keys": API_KEYS, "allow_anonymous": False,
                    "semantic_cache": False},
        "sim_engine": {"time_scale": 0.05},
        "workers": 2,
    }) as m:
        yield m


@pytest.fixture(scope="module")
def agent_url(agent_mesh: Mesh) -> str:
    return http_base(agent_mesh)


@pytest.fixture(scope="module")
def agent_store(agent_mesh: Mesh) -> Iterator[redis.Redis]:
    """The agent mesh's Redis, where the planner keeps its program records."""
    client = redis.Redis.from_url(agent_mesh.endpoints.redis_url, decode_responses=True)
    yield client
    client.close()


def thinking_mesh(reasoning_format: str, api_key: str,
                  cache_mode: str = "off") -> AbstractContextManager[Mesh]:
    """A one-worker sim mesh whose model thinks in `reasoning_format` (the gateway reading
    it so), its callers tenant `thinker` by `api_key`."""
    return running_mesh({
        "workers": 1,
        "gateway": {"api_keys": {api_key: "thinker"}, "allow_anonymous": False,
                    "reasoning_parser": reasoning_format, "cache_mode": cache_mode,
                    "semantic_cache": False},  # no embedding model to load (~5 s a mesh)
        "sim_engine": {"reasoning_format": reasoning_format, "zero_cost": True},
    })
