"""What `ostinato up`'s tests share: none of the caller's OSTINATO_ variables in their
configs (an autouse fixture: import it into a test module)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def no_mesh_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No OSTINATO_ variable of the caller's reaches these tests' configs."""
    for name in os.environ:
        if name.startswith("OSTINATO_"):
            monkeypatch.delenv(name)
