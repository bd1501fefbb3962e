"""The fuzzers' mesh: real processes on loopback (Redis, planner, one worker and sim engine,
gateway), auth on, small limits so a fuzzed call stays short, and the planner's own
gauges to check that refused input left nothing behind."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Iterator

import pytest
import redis

from cache import keys
from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh
from tests.prometheus_text import parse

FUZZ_KEY = "fuzz-key-0123456789"
TENANT = "fuzzer"
MAX_NEW_TOKENS = 8
MAX_PROMPT_CHARS = 20_000
DEFAULT_MAX_NEW_TOKENS = 4


@pytest.fixture(scope="package")
def fuzz_mesh() -> Iterator[Mesh]:
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": 1,
        "gateway": {"api_keys": {FUZZ_KEY: TENANT}, "allow_anonymous": False,
                    "semantic_cache": False, "max_prompt_chars": MAX_PROMPT_CHARS,
                    "max_messages": 16, "default_max_new_tokens": DEFAULT_MAX_NEW_TOKENS,
                    "max_new_tokens_limit": MAX_NEW_TOKENS, "call_timeout_s": 30.0},
        "sim_engine": {"time_scale": 0.01},
    })
    mesh = Mesh(cfg, ephemeral_ports=True)
    mesh.start()
    yield mesh
    mesh.close()


def planner_state(mesh: Mesh) -> dict[str, float]:
    """Open programs and calls queued, parked or running at the planner (its /metrics)."""
    with urllib.request.urlopen(f"http://{mesh.endpoints.metrics['planner']}/metrics",
                                timeout=10) as resp:
        samples = parse(resp.read().decode())
    out: dict[str, float] = {}
    for name in ("ostinato_planner_programs_open", "ostinato_planner_queue_depth",
                 "ostinato_planner_parked_calls", "ostinato_planner_running_calls"):
        out[name] = sum(v for (n, _labels), v in samples.items() if n == name)
    return out


def assert_nothing_left(mesh: Mesh, within_s: float = 15.0) -> None:
    """Nothing open, queued, parked or running at the planner, once what is in flight has
    landed: a call's completion report reaches the planner after its answer reaches the
    client (write-behind), so the state is read until it is empty or `within_s` has passed
    (a bound for a loaded machine, not a timing the test relies on)."""
    deadline = time.monotonic() + within_s
    state = planner_state(mesh)
    while any(state.values()) and time.monotonic() < deadline:
        time.sleep(0.05)
        state = planner_state(mesh)
    assert state == {k: 0.0 for k in state}, open_records(mesh)


def open_records(mesh: Mesh) -> str:
    """What the planner's store says of the programs still open (their meta and calls), so
    that a failure names what was left (a fresh-clone run once left one program open here
    that no rerun reproduced: session 62)."""
    client = redis.Redis.from_url(mesh.endpoints.redis_url, socket_timeout=5)
    try:
        lines = []
        for raw in client.zrange(keys.open_programs(), 0, 20):
            program_id = raw.decode()
            lines.append(f"{program_id}: {client.hgetall(keys.program_meta(program_id))} "
                         f"calls {client.hgetall(keys.program_calls(program_id))}")
        return "open programs in Redis:\n" + "\n".join(lines or ["(none)"])
    finally:
        client.close()
