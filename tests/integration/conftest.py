"""Fixtures shared by the integration tests' modules."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from ostinato.mesh import Mesh
from tests.conftest import http_base
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
