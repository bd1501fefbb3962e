"""Test ports (tests/ports.py): each test process on the machine holds a block of its own,
however many pytest runs are at work (a developer's beside CI's took the same block once),
and a process that asks for no port (pytest-xdist's controller) holds none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests import ports

ROOT = Path(__file__).parents[1]
HOLDS = ("from tests import ports; ports.fixed_port(); print(ports.blocks()[0], flush=True); "
         "input()")
ASKS_NONE = "from tests import ports; print(ports.blocks.cache_info().currsize)"


def _python(code: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            env={**os.environ, "PYTEST_XDIST_WORKER": "gw0"})


def test_processes_running_at_once_hold_blocks_of_their_own() -> None:
    ours = ports.blocks()[0]
    others = [_python(HOLDS) for _ in range(2)]
    try:
        indexes = [int(p.stdout.readline()) for p in others]  # type: ignore[union-attr]
    finally:
        for p in others:
            p.communicate("\n")
    assert len({ours, *indexes}) == 3  # this process's, and each other's
    assert ports.blocks()[1].low not in {ports._EPHEMERAL - ports._BLOCK * (1 + i)
                                         for i in indexes}


def test_a_process_that_asks_for_no_port_claims_no_block() -> None:
    out, _ = _python(ASKS_NONE).communicate("")
    assert out.strip() == "0"
