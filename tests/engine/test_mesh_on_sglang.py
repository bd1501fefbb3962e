"""The mesh against real SGLang (CPU, tiny random-weight model): prefix cache, the KV index
from the engine's own KV events, priority and cache_salt inside the engine, cancellation,
input_ids, metrics (the OpenAI features it serves: test_openai_on_sglang.py)."""

from __future__ import annotations

import time
import uuid

import grpc
import pytest
import redis

import ostinato
from cache.block_hash import block_hex, prefix_block_hashes
from gateway.mesh_run import cache_salt
from ostinato.mesh import Mesh
from ostinato.tokenizers import load_renderer
from ostinato.v1 import common_pb2, worker_pb2, worker_pb2_grpc
from tests.engine.conftest import MODEL
from tests.engine.sglang_mesh_helpers import ACME, user
from tests.integration.test_metrics import scrape
from tests.prometheus_text import names, value
from tests.stored_ids import tenant_namespace
from workers.sglang_client import EngineRejected, EngineRequest, SGLangClient

pytestmark = pytest.mark.engine  # `make test-engine`; `make test` deselects it


def context(topic: str) -> str:
    return f"Background for the analyst: a long report on {topic}. " * 30


def worker_stub(mesh: Mesh, worker_id: str) -> worker_pb2_grpc.WorkerStub:
    return worker_pb2_grpc.WorkerStub(grpc.insecure_channel(mesh.endpoints.workers[worker_id]))


def wait_until(check, timeout_s: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.1)


def test_engines_are_real_sglang(sglang_mesh: Mesh) -> None:
    for wid in sglang_mesh.endpoints.workers:
        stats = worker_stub(sglang_mesh, wid).Stats(worker_pb2.StatsRequest(), timeout=10)
        assert not stats.simulated and stats.kv_index_source == "events"


async def test_the_workers_health_probe_passes_on_real_sglang(sglang_mesh: Mesh) -> None:
    """GET /health_generate, as the workers probe their engines (worker.health_check_s)."""
    for url in sglang_mesh.endpoints.engines:
        client = SGLangClient(url)
        try:
            assert await client.health_generate(25.0)
        finally:
            await client.close()
    log = "".join((sglang_mesh.workdir / "logs" / f"{w}.log").read_text()
                  for w in sglang_mesh.endpoints.workers)
    assert "failed its health check" not in log


@pytest.mark.parametrize("stream", [True, False])
async def test_a_request_sglang_refuses_is_rejected_streamed_or_not(sglang_mesh: Mesh,
                                                                   stream: bool) -> None:
    # SGLang answers its request validation's ValueError as a 400 unstreamed and as an error
    # event in a 200 stream: both are the caller's fault (INVALID_ARGUMENT), neither retried
    client = SGLangClient(sglang_mesh.endpoints.engines[0])
    request = EngineRequest(rid=uuid.uuid4().hex, text="", input_ids=list(range(10, 20)),
                            sampling_params={"max_new_tokens": 10_000_000})
    try:
        with pytest.raises(EngineRejected, match="context length"):
            async for _ in client.generate(request, stream=stream):
                pass
    finally:
        await client.close()


def test_second_call_of_a_program_hits_the_engines_prefix_cache(sglang_mesh: Mesh) -> None:
    history = user(context(f"tides {uuid.uuid4().hex[:6]}"))
    with ostinato.Client(sglang_mesh.endpoints.gateway, api_key=ACME) as client, \
            client.program() as program:
        first = program.call(messages=history, max_tokens=8, ignore_eos=True)
        history += [first.message(), *user("Summarize it.")]
        second = program.call(messages=history, max_tokens=8, ignore_eos=True)
    assert not first.simulated and first.usage.cached_tokens == 0
    assert second.worker_id == first.worker_id  # affinity: the engine holding the context
    # The engine (not the mesh) reports it: the whole first prompt came from its radix cache.
    assert second.usage.cached_tokens >= first.usage.prompt_tokens - 1


def test_kv_index_follows_the_engines_events_and_routes_new_programs(sglang_mesh: Mesh) -> None:
    topic = context(f"copper prices {uuid.uuid4().hex[:6]}")
    with ostinato.Client(sglang_mesh.endpoints.gateway, api_key=ACME) as client:
        with client.program() as p:
            seed = p.call(messages=user(topic), max_tokens=4)
        _, ids = load_renderer(f"hf:{MODEL}").render(user(topic), None)
        r = redis.Redis.from_url(sglang_mesh.endpoints.redis_url)
        salt = cache_salt(tenant_namespace(r, "acme"))
        hashes = [block_hex(h) for h in prefix_block_hashes(ids, salt)]

        def held() -> int:
            scores = r.zmscore(f"ost:kv:{{w:{seed.worker_id}}}:blocks", hashes)
            return next((i for i, s in enumerate(scores) if s is None), len(scores))

        wait_until(lambda: held() >= len(hashes) - 1)  # events arrive asynchronously
        stats = worker_stub(sglang_mesh, seed.worker_id).Stats(worker_pb2.StatsRequest(), timeout=10)
        assert stats.kv_event_batches > 0 and stats.kv_index_blocks > 0
        with client.program() as p:  # a new program, no parents: routed by the index
            follow = p.call(messages=user(topic + "One line, please."), max_tokens=4)
    assert follow.worker_id == seed.worker_id and follow.usage.cached_tokens > 0


def test_cache_salt_isolates_tenants_inside_the_engine(sglang_mesh: Mesh) -> None:
    wid = next(iter(sglang_mesh.endpoints.workers))
    stub = worker_stub(sglang_mesh, wid)
    _, ids = load_renderer(f"hf:{MODEL}").render(user(uuid.uuid4().hex + context("salts")), None)

    def run(salt: str) -> common_pb2.Usage:
        chunks = list(stub.Generate(worker_pb2.GenerateRequest(
            request_id=uuid.uuid4().hex, program_id="salt", call_id=uuid.uuid4().hex,
            input_ids=ids, cache_salt=salt,
            sampling=common_pb2.SamplingParams(max_new_tokens=2)), timeout=120))
        return chunks[-1].result.usage

    first = run("tenant:acme").cached_tokens  # at most the chat template's header, from earlier calls
    assert first < 16
    assert run("tenant:acme").cached_tokens >= len(ids) - 1  # positive control
    assert run("tenant:globex-salt-test").cached_tokens == 0  # the same tokens, another tenant


def test_a_cancelled_call_aborts_the_engine_request(sglang_mesh: Mesh) -> None:
    with ostinato.Client(sglang_mesh.endpoints.gateway, api_key=ACME) as client, \
            client.program() as program:
        stream = program.stream(messages=user("Write a very long saga."), max_tokens=2000,
                                ignore_eos=True)
        next(iter(stream))  # it is running on the engine
        stream.cancel()
    stats = {w: worker_stub(sglang_mesh, w) for w in sglang_mesh.endpoints.workers}
    wait_until(lambda: all(s.Stats(worker_pb2.StatsRequest(), timeout=10).running == 0
                           for s in stats.values()), timeout_s=60)


def test_real_sglang_engines_and_their_workers_serve_metrics(sglang_mesh: Mesh) -> None:
    """Launched with --enable-metrics, SGLang serves the sglang:* names the sim engine and
    the dashboard use; the worker's GenAI timings cover real engine calls."""
    ep = sglang_mesh.endpoints
    with ostinato.Client(ep.gateway, api_key=ACME) as client, client.program() as program:
        # streamed: a short call taken whole is answered by the engine at once (unstreamed),
        # which has no time to first token
        streamed = program.stream(messages=user(uuid.uuid4().hex), max_tokens=4)
        assert "".join(streamed) == streamed.text
    for i in range(len(ep.workers)):
        engine = scrape(ep.metrics[f"engine-{i}"])
        for name in ("sglang:num_running_reqs", "sglang:num_queue_reqs", "sglang:token_usage",
                     "sglang:prompt_tokens_total", "sglang:generation_tokens_total",
                     "sglang:num_requests_total"):
            assert name in names(engine), name
    served = [scrape(ep.metrics[w]) for w in ep.workers]
    assert sum(value(s, "ostinato_worker_calls_total", outcome="ok") for s in served) >= 1
    assert sum(value(s, "gen_ai_server_time_to_first_token_seconds_count") for s in served) >= 1
    assert sum(value(s, "sglang:generation_tokens_total") for s in map(
        scrape, [ep.metrics[f"engine-{i}"] for i in range(len(ep.workers))])) >= 1
