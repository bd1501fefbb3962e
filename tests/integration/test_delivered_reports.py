"""A worker killed after streaming a call's whole result to the gateway, before its own
completion report reached the planner (worker.debug_drop_reports: it never sends the report;
the test kills it once the client has the answer): the gateway, which delivered the answer,
reports the outcome too, so the planner records the call done, exactly once, instead of
running for good.

(The worker used to exit by itself right after writing the result; on the long-lived
GenerateStream the write could still be in gRPC's buffers when it exited, so the answer was
sometimes lost and the test flaked. Killing it after the client has the answer is the
scenario without that race.)"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import redis

import ostinato
from cache import keys
from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh
from ostinato.program_ids import inner_id

USER = [{"role": "user", "content": "Classify this ticket: the invoice total looks wrong."}]


@pytest.fixture(scope="module")
def dying() -> Iterator[Mesh]:
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": 1, "worker": {"debug_drop_reports": True, "health_check_s": 0.0},
        "sim_engine": {"zero_cost": True}, "gateway": {"allow_anonymous": True, "semantic_cache": False}})
    with Mesh(cfg, ephemeral_ports=True) as mesh:
        yield mesh


def test_an_answer_delivered_by_a_worker_that_died_unreported_is_recorded_done(
        dying: Mesh) -> None:
    with ostinato.Client(dying.endpoints.gateway) as client, client.program() as program:
        out = program.call(messages=USER, max_tokens=6, temperature=1.0, call_id="x")
    assert out.text and out.worker_id == "worker-0" and out.usage.completion_tokens == 6
    dying.kill("worker-0")  # it dies after the result, its report unsent
    # EndProgram waits for the call's report: the gateway's, since the worker sent none
    assert program.summary is not None
    assert (program.summary.calls_completed, program.summary.calls_failed) == (1, 0)
    assert program.summary.usage.completion_tokens == 6  # counted once
    r = redis.Redis.from_url(dying.endpoints.redis_url, decode_responses=True)
    rec = json.loads(r.hget(keys.program_calls(inner_id("default", program.program_id)), "x") or "{}")
    assert (rec["state"], rec["attempt"], rec["completion_tokens"]) == ("done", 1, 6)
