"""A planner killed (SIGKILL) in the middle of a live program: after a restart on the same
port the program completes, and every call runs exactly once."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
import redis

import ostinato
from cache import keys
from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh
from tests.prometheus_text import parse, value

USER = [{"role": "user", "content": "Summarize the quarterly report."}]


@pytest.fixture
def mesh1() -> Iterator[Mesh]:
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": 1, "worker": {"max_inflight": 4, "heartbeat_s": 0.5},
        "sim_engine": {"time_scale": 1.0}, "gateway": {"allow_anonymous": True},
    })
    m = Mesh(cfg, ephemeral_ports=True)
    m.start()
    yield m
    m.close()


def _engine_requests(url: str) -> int:
    text = urllib.request.urlopen(f"{url}/metrics", timeout=5).read().decode()
    return int(value(parse(text), "sglang:num_requests_total"))


def _wait_for(predicate, timeout_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def test_planner_killed_mid_program_recovers_every_call_exactly_once(mesh1: Mesh) -> None:
    ep = mesh1.endpoints
    r = redis.Redis.from_url(ep.redis_url, decode_responses=True)
    results: dict[str, ostinato.CallOutput] = {}
    errors: list[BaseException] = []

    def in_thread(name: str, **kw: object) -> threading.Thread:
        def run() -> None:
            try:
                results[name] = program.call(**kw)  # type: ignore[arg-type]
            except BaseException as exc:
                errors.append(exc)
        t = threading.Thread(target=run)
        t.start()
        return t

    def state(call_id: str) -> str:
        raw = r.hget(keys.program_calls(program.program_id), call_id)
        return json.loads(raw)["state"] if raw else ""

    with ostinato.Client(ep.gateway) as client, client.program() as program:
        first = program.call(messages=USER, max_tokens=4, call_id="c1")
        program.call(messages=USER, max_tokens=4, call_id="c2", parents=[first.call_id])
        # c3: long enough to be running on the engine when the planner dies
        long_call = in_thread("c3", messages=USER, max_tokens=300, call_id="c3", parents=["c2"],
                              thread_id="main", ignore_eos=True)
        _wait_for(lambda: state("c3") == "running")
        mesh1.kill("planner")
        # c4: admitted while the planner is down; the gateway retries through the restart
        branch = in_thread("c4", messages=USER, max_tokens=4, call_id="c4", parents=["c2"],
                           thread_id="side")
        time.sleep(0.5)
        assert "c4" not in results and "c3" not in results
        mesh1.restart("planner")
        long_call.join(30)
        branch.join(30)
        assert not errors, errors
        join = program.call(messages=USER, max_tokens=4, call_id="c5", parents=["c3", "c4"])
    assert join.text and results["c3"].usage.completion_tokens > 4
    summary = program.summary
    assert summary is not None and summary.calls_completed == 5 and summary.calls_failed == 0
    calls = {k: json.loads(v) for k, v in r.hgetall(keys.program_calls(program.program_id)).items()}
    assert sorted(calls) == ["c1", "c2", "c3", "c4", "c5"]
    assert all(c["state"] == "done" for c in calls.values())
    assert _engine_requests(ep.engines[0]) == 5  # each call reached the engine exactly once
    planner_log = (mesh1.workdir / "logs" / "planner.log").read_text()
    assert "programs recovered" in planner_log  # the restarted planner took the program back
