"""The fault tests' mesh and what they wait on (tests/integration/test_faults.py,
test_worker_faults.py): real processes, and sim engines that serve a test hook
(sim_engine.debug_endpoints): POST /_debug/hang makes one hang, so that a call is known to
sit on a worker with nothing streamed yet. Every wait is for an observable condition (a
call's record in Redis, an engine's counter, a log line, a health status), bounded; none is
a sleep.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import grpc
import redis

from cache import keys
from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh
from ostinato.v1 import worker_pb2, worker_pb2_grpc
from tests.ports import fixed_port
from tests.stored_ids import stored_program_id

USER = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]


def start_mesh(**overrides: Any) -> Mesh:
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": 2,
        "worker": {"max_inflight": 4, "heartbeat_s": 0.5, "health_check_s": 0.0},
        "sim_engine": {"time_scale": 0.5, "debug_endpoints": True},
        # drain_s: a stopping gateway's grace (5 s by default), shorter here
        "gateway": {"allow_anonymous": True, "semantic_cache": False, "drain_s": 1.0},
        **overrides,
    })
    mesh = Mesh(cfg, ephemeral_ports=True, port_source=fixed_port)  # restarted in place
    mesh.start()
    return mesh


def wait_for(predicate: Callable[[], object], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def hang(mesh: Mesh, hung: bool, engines: tuple[int, ...] = (0, 1)) -> None:
    for i in engines:
        req = urllib.request.Request(f"{mesh.endpoints.engines[i]}/_debug/hang",
                                     data=json.dumps({"hang": hung}).encode(),
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(req, timeout=5).read()


def record(mesh: Mesh, program_id: str, call_id: str, tenant: str = "default") -> dict[str, Any]:
    """The call's record in Redis, as the planner persisted it ({} before its first), for
    `tenant`'s program `program_id` (the client's id)."""
    r = redis.Redis.from_url(mesh.endpoints.redis_url, decode_responses=True)
    raw = r.hget(keys.program_calls(stored_program_id(r, tenant, program_id)), call_id)
    return json.loads(raw) if raw else {}


def running_on(mesh: Mesh, program_id: str, call_id: str, attempt: int = 1,
               tenant: str = "default") -> str:
    """Waits until the call's `attempt` runs; its worker."""
    def running() -> bool:
        rec = record(mesh, program_id, call_id, tenant)
        return rec.get("state") == "running" and rec.get("attempt") == attempt
    wait_for(running)
    return str(record(mesh, program_id, call_id, tenant)["worker_id"])


def in_thread(work: Callable[[], object]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = work()
        except BaseException as exc:  # reported by the test
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def worker_running(mesh: Mesh, worker_id: str) -> int:
    """Calls streaming from the worker's engine now (its Stats)."""
    with grpc.insecure_channel(mesh.endpoints.workers[worker_id]) as channel:
        stats = worker_pb2_grpc.WorkerStub(channel).Stats(worker_pb2.StatsRequest(), timeout=5)
    return stats.running


def restart_dead_engines(mesh: Mesh) -> None:
    for i in (0, 1):
        if mesh.child(f"engine-{i}").poll() is not None:
            mesh.restart(f"engine-{i}")


def other(worker_id: str) -> str:
    return "worker-1" if worker_id == "worker-0" else "worker-0"


def index(worker_id: str) -> int:
    return int(worker_id.rsplit("-", 1)[1])


def generated(mesh: Mesh, engine: int) -> float:
    """Tokens the engine has generated so far (its sglang:generation_tokens counter)."""
    body = urllib.request.urlopen(f"{mesh.endpoints.engines[engine]}/metrics",
                                  timeout=5).read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines()
               if line.startswith("sglang:generation_tokens_total"))
