"""Fixtures shared by the integration tests' modules."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ostinato.mesh import Mesh
from tests.integration.fault_mesh import start_mesh


@pytest.fixture(scope="module")
def faults() -> Iterator[Mesh]:
    """Two workers, health checks off (a hung engine keeps its worker eligible)."""
    mesh = start_mesh()
    yield mesh
    mesh.close()
