"""Test ports (tests/ports.py): each test process on the machine holds a block of its own,
however many pytest runs are at work (a developer's beside CI's took the same block once)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests import ports

ROOT = Path(__file__).parents[1]
HOLDS = "from tests import ports; print(ports._INDEX, flush=True); input()"


def test_processes_running_at_once_hold_blocks_of_their_own() -> None:
    others = [subprocess.Popen([sys.executable, "-c", HOLDS], cwd=ROOT, text=True,
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               env={"PYTEST_XDIST_WORKER": "gw0", "PATH": ""})
              for _ in range(2)]
    try:
        indexes = [int(p.stdout.readline()) for p in others]  # type: ignore[union-attr]
    finally:
        for p in others:
            p.communicate("")
    assert len({ports._INDEX, *indexes}) == 3  # this process's, and each other's
    low = {ports._EPHEMERAL - ports._BLOCK * (1 + i) for i in indexes}
    assert ports._fixed.low not in low
