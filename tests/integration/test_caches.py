"""Answer caches through the real mesh: gateway, planner, sim engines and a real Redis.

Paired isolation: each positive control (the cache works for tenant A) is followed by the
isolated case (tenant B gets nothing of A's). The last test stops Redis mid-run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import grpc
import pytest

import ostinato
from cache.redis_server import find_vector_redis
from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh
from ostinato.sdk_types import call_spec
from ostinato.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.conftest import API_KEYS


@pytest.fixture(scope="module")
def cache_mesh() -> Iterator[Mesh]:
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": 1,
        "gateway": {"api_keys": API_KEYS, "allow_anonymous": False, "cache_mode": "exact"},
        "sim_engine": {"time_scale": 0.2},
    })
    m = Mesh(cfg, ephemeral_ports=True)
    m.start()
    yield m
    m.close()


def ask(mesh: Mesh, key: str, text: str, **kw) -> ostinato.CallOutput:  # type: ignore[no-untyped-def]
    with ostinato.Client(mesh.endpoints.gateway, api_key=key) as client, client.program() as p:
        return p.call(messages=[{"role": "user", "content": text}], max_tokens=6,
                      temperature=0.0, **kw)


def stats(mesh: Mesh, key: str = "key-acme") -> gateway_pb2.CacheStatsResponse:
    with grpc.insecure_channel(mesh.endpoints.gateway) as channel:
        return gateway_pb2_grpc.GatewayStub(channel).CacheStats(
            gateway_pb2.CacheStatsRequest(), metadata=[("x-api-key", key)], timeout=5)


def test_exact_cache_serves_the_same_tenant_only(cache_mesh: Mesh) -> None:
    first = ask(cache_mesh, "key-acme", "Name three rivers in France.")
    again = ask(cache_mesh, "key-acme", "Name three rivers in France.")
    assert first.cache_hit == "miss" and again.cache_hit == "exact"  # positive control
    assert again.text == first.text and again.worker_id == ""  # no engine was asked
    # a sim engine's answer from the cache is still simulated (new-user review)
    assert first.simulated and again.simulated
    other = ask(cache_mesh, "key-globex", "Name three rivers in France.")
    assert other.cache_hit == "miss" and other.worker_id  # tenant B ran its own call
    off = ask(cache_mesh, "key-acme", "Name three rivers in France.", cache="off")
    assert off.cache_hit == "miss"


def twice(mesh: Mesh, spec: common_pb2.CallSpec) -> tuple[common_pb2.CallResult, ...]:
    """The same call made twice over gRPC by tenant acme: a miss, then a hit (checked)."""
    md = (("authorization", "Bearer key-acme"),)
    with grpc.insecure_channel(mesh.endpoints.gateway) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        results = tuple(list(stub.Call(gateway_pb2.CallRequest(call=spec), metadata=md,
                                       timeout=30))[-1].result for _ in range(2))
    assert tuple(r.cache_hit for r in results) == (common_pb2.CACHE_HIT_MISS,
                                                   common_pb2.CACHE_HIT_EXACT)  # positive control
    return results


def test_a_cached_tool_call_gets_an_id_of_its_own(cache_mesh: Mesh) -> None:
    # a tool call's id names one answer's call (the client sends it back with the tool's
    # result): a cache hit repeats the call, not the id the first caller got
    params = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    spec = call_spec(messages=[{"role": "user", "content": "Weather in Bergen?"}],
                     max_tokens=64, temperature=0.0)
    spec.tools.append(common_pb2.Tool(name="weather", parameters_json=json.dumps(params)))
    first, again = twice(cache_mesh, spec)
    [a], [b] = first.tool_calls, again.tool_calls
    assert (a.name, a.arguments) == (b.name, b.arguments) and a.id != b.id


def test_a_cached_answer_has_the_logprobs_asked_for(cache_mesh: Mesh) -> None:
    spec = call_spec(messages=[{"role": "user", "content": "Spell Reykjavik."}],
                     max_tokens=6, temperature=0.0)
    spec.logprobs, spec.top_logprobs = True, 2
    first, again = twice(cache_mesh, spec)
    assert len(first.logprobs) == first.usage.completion_tokens > 0
    assert all(len(t.top_logprobs) == 2 for t in first.logprobs)
    assert list(again.logprobs) == list(first.logprobs)


def test_semantic_cache_paraphrase_hits_near_miss_and_other_tenant_do_not(cache_mesh: Mesh) -> None:
    stored = ask(cache_mesh, "key-acme", "Send 100 dollars from Alice to Bob.", cache="semantic")
    assert stored.cache_hit == "miss"
    para = ask(cache_mesh, "key-acme", "Transfer 100 dollars from Alice to Bob.", cache="semantic")
    assert para.cache_hit == "semantic" and para.text == stored.text  # positive control
    reversed_ = ask(cache_mesh, "key-acme", "Send 100 dollars from Bob to Alice.", cache="semantic")
    assert reversed_.cache_hit == "miss"  # cosine ~0.99, stopped by the guard
    other = ask(cache_mesh, "key-globex", "Transfer 100 dollars from Alice to Bob.", cache="semantic")
    assert other.cache_hit == "miss"
    s = stats(cache_mesh)
    assert s.enabled and s.redis_up and s.counts["hit_semantic"] >= 1
    # the mesh's embedded Redis is Redis 8 when `make redis8` built it: then the server's
    # vector sets are the index, else the in-process one
    assert s.server_vector_search is (find_vector_redis() is not None)
    assert s.counts["near_miss_rejected"] >= 1 and s.index_entries >= 2
    # globex sees its own activity only: one miss, its one entry, none of acme's hits
    theirs = stats(cache_mesh, "key-globex")
    assert "hit_semantic" not in theirs.counts and "near_miss_rejected" not in theirs.counts
    assert theirs.index_entries == 1 and theirs.counts["stored_semantic"] == 1
    assert theirs.lookup_ms_p50 > 0 and s.lookup_ms_p50 > 0  # each its own lookups


def test_a_semantic_hit_reports_its_own_prompts_tokens(cache_mesh: Mesh) -> None:
    # the review's F7: a semantic hit reported the cached request's prompt_tokens
    stored = ask(cache_mesh, "key-acme", "What's the capital of Italy?", cache="semantic")
    longer = "What is the capital of Italy, please?"
    hit = ask(cache_mesh, "key-acme", longer, cache="semantic")
    assert hit.cache_hit == "semantic" and hit.text == stored.text
    fresh = ask(cache_mesh, "key-acme", longer, cache="off")
    assert fresh.cache_hit == "miss" and fresh.usage.prompt_tokens > stored.usage.prompt_tokens
    assert hit.usage.prompt_tokens == fresh.usage.prompt_tokens
    again = ask(cache_mesh, "key-acme", "What's the capital of Italy?", cache="exact")
    assert again.cache_hit == "exact" and again.usage.prompt_tokens == stored.usage.prompt_tokens


def test_a_cached_call_can_be_a_parent(cache_mesh: Mesh) -> None:
    ask(cache_mesh, "key-acme", "List two prime numbers.")
    with ostinato.Client(cache_mesh.endpoints.gateway, api_key="key-acme") as client, \
            client.program() as p:
        hit = p.call(messages=[{"role": "user", "content": "List two prime numbers."}],
                     max_tokens=6, temperature=0.0)
        child = p.call(messages=[{"role": "user", "content": "And their sum?"}], max_tokens=6,
                       parents=[hit.call_id])
    assert hit.cache_hit == "exact" and child.text
    assert p.summary is not None and p.summary.calls_completed == 2


def test_bad_cache_threshold_is_invalid_argument(cache_mesh: Mesh) -> None:
    with pytest.raises(ostinato.OstinatoError) as err:
        ask(cache_mesh, "key-acme", "Hello?", cache="exact", semantic_threshold=0.5)
    assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT


def test_redis_stopped_mid_run_calls_complete_and_metrics_show_it(cache_mesh: Mesh) -> None:
    assert stats(cache_mesh).redis_up
    cache_mesh.stop_redis()
    outs = [ask(cache_mesh, "key-acme", f"Question number {i} after the outage?", cache="semantic")
            for i in range(3)]
    assert all(o.text and o.cache_hit == "miss" for o in outs)
    s = stats(cache_mesh)
    assert not s.redis_up and s.counts["redis_error"] >= 1

