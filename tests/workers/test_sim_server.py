"""The sim engine's SGLang HTTP API, as a real process (and in-process, with its test hooks):
prefix caching, n > 1, metrics, a caller gone before its stream began."""

from __future__ import annotations

import asyncio
import json
import uuid

import aiohttp
import pytest

from ostinato.config import SimEngineConfig
from tests.workers.test_sglang_client import _serving
from workers.sim.engine import RealtimeSimEngine, SimRequest
from workers.sim.server import build_app
from workers.sim.tokenizer import tokenize


async def generate(session: aiohttp.ClientSession, url: str, body: dict) -> dict | list:
    async with session.post(url + "/generate", json=body) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


def words(n: int, tag: str) -> str:
    return " ".join(f"{tag}{i}" for i in range(n))


async def test_prefix_caching_through_http(sim_engine_url: str) -> None:
    tag = uuid.uuid4().hex[:4]  # " ab12399": at most 8 bytes, one sim token a word
    prompt = words(400, tag)
    half = words(200, tag) + " " + words(200, "other" + tag)
    sp = {"max_new_tokens": 4, "ignore_eos": True}
    async with aiohttp.ClientSession() as s:
        first = await generate(s, sim_engine_url, {"text": prompt, "sampling_params": sp})
        again = await generate(s, sim_engine_url, {"text": prompt, "sampling_params": sp})
        shared = await generate(s, sim_engine_url, {"text": half, "sampling_params": sp})
        salted = await generate(s, sim_engine_url, {"text": prompt, "sampling_params": sp,
                                                    "cache_salt": "tenant-b"})
        async with s.post(sim_engine_url + "/flush_cache") as resp:
            assert resp.status == 200
        flushed = await generate(s, sim_engine_url, {"text": prompt, "sampling_params": sp})
    n = first["meta_info"]["prompt_tokens"]
    assert n == 400 and first["meta_info"]["cached_tokens"] == 0
    assert again["meta_info"]["cached_tokens"] == n - 1  # all but the recomputed last token
    assert abs(shared["meta_info"]["cached_tokens"] - n / 2) <= 2
    assert salted["meta_info"]["cached_tokens"] == 0  # cache_salt namespaces the prefix
    assert flushed["meta_info"]["cached_tokens"] == 0
    assert again["meta_info"]["e2e_latency"] < first["meta_info"]["e2e_latency"]


async def test_n_samples_non_streaming_and_streaming(sim_engine_url: str) -> None:
    body = {"text": "pick a name", "sampling_params": {"max_new_tokens": 5, "n": 3,
                                                       "ignore_eos": True}}
    async with aiohttp.ClientSession() as s:
        outs = await generate(s, sim_engine_url, body)
        async with s.post(sim_engine_url + "/generate", json={**body, "stream": True}) as resp:
            raw = (await resp.read()).decode()
    assert isinstance(outs, list) and len(outs) == 3
    assert len({o["text"] for o in outs}) == 3  # different seeds, different samples
    assert all(o["meta_info"]["completion_tokens"] == 5 for o in outs)
    for i in range(3):
        assert f'"index": {i}' in raw
    assert raw.rstrip().endswith("data: [DONE]")


@pytest.mark.parametrize("path", ["/get_server_info", "/get_model_info", "/health",
                                  "/health_generate", "/metrics"])
async def test_info_endpoints(sim_engine_url: str, path: str) -> None:
    async with aiohttp.ClientSession() as s, s.get(sim_engine_url + path) as resp:
        assert resp.status == 200
        body = await resp.text()
    if path == "/get_server_info":
        assert '"simulated": true' in body and "h100-llama3.1-8b" in body
    if path == "/metrics":
        assert "sglang:num_running_reqs" in body and "sglang:cache_hit_rate" in body


@pytest.mark.parametrize(("tokens", "max_new", "message"), [
    # in SGLang's words (tokenizer_manager): the input, then the input with its output
    (131_072, 1, "The input (131072 tokens) is longer than the model's context length "
                 "(131072 tokens)."),
    (131_000, 73, "Requested token count exceeds the model's maximum context length of "
                  "131072 tokens. You requested a total of 131073 tokens: 131000 tokens from "
                  "the input messages and 73 tokens for the completion."),
])
async def test_a_request_past_the_context_window_is_a_400(
        sim_engine_url: str, tokens: int, max_new: int, message: str) -> None:
    async with aiohttp.ClientSession() as s, s.post(sim_engine_url + "/generate", json={
            "input_ids": [1] * tokens, "sampling_params": {"max_new_tokens": max_new}}) as resp:
        assert resp.status == 400
        assert (await resp.json())["error"]["message"].startswith(message)
    async with aiohttp.ClientSession() as s, s.get(sim_engine_url + "/v1/models") as resp:
        model = (await resp.json())["data"][0]
    assert model["max_model_len"] == 131_072 and model["id"] == "sim/llama-3.1-8b"


def test_prompt_longer_than_the_kv_pool_is_refused() -> None:
    engine = RealtimeSimEngine(SimEngineConfig(max_total_tokens=1000, context_length=4096))
    with pytest.raises(ValueError, match="exceeds the KV pool"):
        engine.validate(SimRequest("r", [1] * 2000, max_new_tokens=1))


@pytest.mark.parametrize("ids", [[5, -1], [5, 1 << 64]])
async def test_token_ids_outside_the_packed_range_are_a_400(sim_engine_url: str,
                                                             ids: list[int]) -> None:
    async with aiohttp.ClientSession() as s, s.post(sim_engine_url + "/generate", json={
            "input_ids": ids, "sampling_params": {"max_new_tokens": 1}}) as resp:
        assert resp.status == 400
        assert "token id" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize(("seed", "status"), [
    (0, 200), (-1, 200), (-(1 << 63), 200), ((1 << 63) - 1, 200),
    (1 << 63, 400), ((1 << 64) - 1, 400), (-(1 << 63) - 1, 400), ("7", 400), (1.5, 400)])
async def test_sampling_seed_is_an_int64_as_sglangs(sim_engine_url: str, seed: object,
                                                    status: int) -> None:
    """Real SGLang 0.5 answers 2**64 - 1 with a 400 (seen on `make sglang-cpu`'s server);
    the sim engine does too, so the mesh is tested against what the engine takes."""
    async with aiohttp.ClientSession() as s, s.post(sim_engine_url + "/generate", json={
            "text": "hi", "sampling_params": {"max_new_tokens": 2, "sampling_seed": seed}}) as resp:
        assert resp.status == status
        if status == 400:
            assert "sampling_seed" in (await resp.json())["error"]["message"]


@pytest.mark.parametrize("ids", [5, True, 0, {"a": 1}, "12", [1, True], [1.0]])
async def test_input_ids_that_are_not_a_list_of_integers_are_a_400(sim_engine_url: str,
                                                                    ids: object) -> None:
    async with aiohttp.ClientSession() as s, s.post(sim_engine_url + "/generate", json={
            "input_ids": ids, "sampling_params": {"max_new_tokens": 1}}) as resp:
        assert resp.status == 400
        assert "input_ids" in (await resp.json())["error"]["message"]


async def test_a_prompt_whose_ids_use_all_64_bits_is_served(sim_engine_url: str) -> None:
    # the sim tokenizer reads 8 bytes of UTF-8 as one id: from 0xC3 up, ids >= 2**63
    ids = tokenize("ééééé über")
    assert max(ids) >= 1 << 63
    async with aiohttp.ClientSession() as s, s.post(sim_engine_url + "/generate", json={
            "input_ids": ids, "sampling_params": {"max_new_tokens": 2}}) as resp:
        assert resp.status == 200, await resp.text()


async def test_abort_all_ends_every_request_as_sglang_does(sim_engine_url: str) -> None:
    """Sim engine review 2026-12-06: SGLang's /abort_request takes {"abort_all": true}
    (io_struct.AbortReq.abort_all); the sim engine answered 400 and the streams ran on."""
    body = {"text": "a long story", "stream": True,
            "sampling_params": {"max_new_tokens": 100_000, "ignore_eos": True}}
    async with aiohttp.ClientSession() as s:
        async with s.post(sim_engine_url + "/generate", json=body) as stream:
            assert stream.status == 200
            await stream.content.readline()  # it runs
            async with s.post(sim_engine_url + "/abort_request",
                              json={"abort_all": True}) as resp:
                assert resp.status == 200
            last = None
            async for line in stream.content:
                if line.startswith(b"data: {"):
                    last = line
        assert last is not None and b'"abort"' in last  # its finish reason: an abort


async def test_a_caller_gone_before_its_stream_began_is_no_error(
        caplog: pytest.LogCaptureFixture) -> None:
    """A worker that cut a call (an early run guessed wrong, say) before its stream's
    headers: the engine drops it, no "Error handling request" at level error (a helper's
    walkthrough 2026-12-07 found four in a sim engine's log)."""
    app = build_app(SimEngineConfig(debug_endpoints=True, time_scale=0.1))
    body = json.dumps({"text": "hi", "stream": True,
                       "sampling_params": {"max_new_tokens": 2}}).encode()
    async with _serving(app) as (url, _), aiohttp.ClientSession() as s:
        async with s.post(url + "/_debug/hang", json={"hang": True}) as resp:
            assert resp.status == 200
        host, port = url.removeprefix("http://").split(":")
        _, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"POST /generate HTTP/1.1\r\nHost: e\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        await writer.drain()
        await asyncio.sleep(0.2)  # (this wait can only let a wrong engine pass, never fail one)
        writer.close()  # gone before the engine answered
        await writer.wait_closed()
        async with s.post(url + "/_debug/hang", json={"hang": False}) as resp:
            assert resp.status == 200
        # the next request answered: the one before it has met its closed connection
        async with s.post(url + "/generate", json={"text": "hello", "sampling_params": {
                "max_new_tokens": 2}}) as resp:
            assert resp.status == 200
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
