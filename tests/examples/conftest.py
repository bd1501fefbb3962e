"""The examples run in-process against the session mesh (tests/conftest.py), each under a
tenant of its own, so the planner's records of a tenant are one example's."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis

from ostinato.mesh import Mesh
from tests.examples.mesh_records import provision_tenants

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"
TENANTS = ("ex-react", "ex-dag", "ex-tot", "ex-openai", "ex-langgraph", "ex-agents",
           "ex-agents-chat", "ex-agents-streamed", "ex-agents-chained")


@pytest.fixture(scope="module")
def example() -> Iterator[Callable[[str], ModuleType]]:
    """Imports an example by its file name, as `python examples/NAME.py` would find it (the
    examples import their shared tools from their own folder)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(EXAMPLES_DIR))
        yield importlib.import_module


@pytest.fixture(scope="module")
def api_keys(mesh: Mesh) -> dict[str, str]:
    return provision_tenants(mesh.endpoints.redis_url, mesh.endpoints.gateway, TENANTS)


@pytest.fixture(scope="module")
def store(mesh: Mesh) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(mesh.endpoints.redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="module")
def base_url(mesh: Mesh) -> str:
    assert mesh.endpoints.gateway_http, "the session mesh serves the HTTP API"
    return f"http://{mesh.endpoints.gateway_http}/v1"

