"""A worker whose planner never takes its registration exits 1 with one line naming the
planner's address, no traceback (docs review 2026-12-06: a raw AioRpcError traceback, then
grpc's "Event loop is closed" from a server left running). Real processes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import spawn_service, stop_service

# the worker with a shorter wait for its first registration (workers/main.py's is 10 s)
WORKER = ("import sys, workers.main as m; m.FIRST_REGISTER_S = 0.5; "
          "from ostinato.cli import main; sys.exit(main(sys.argv[1:]))")


def test_a_worker_whose_planner_never_answers_exits_1_with_one_line(tmp_path: Path) -> None:
    engine, info = spawn_service(tmp_path, "sim-engine", "--zero-cost")
    try:
        out = subprocess.run(
            [sys.executable, "-c", WORKER, "worker", "--port", "0", "--engine-url",
             str(info['address']), "--planner-address", "127.0.0.1:1"],
            capture_output=True, text=True, timeout=60)
    finally:
        stop_service(engine)
    assert out.returncode == 1, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    assert out.stderr.splitlines()[-1] == (
        "ostinato worker: the planner at 127.0.0.1:1 did not take this worker's registration "
        "within 0.5 s (DEADLINE_EXCEEDED): start it first, or check --planner-address")
