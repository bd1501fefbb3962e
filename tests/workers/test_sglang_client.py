"""The worker's SGLang client, against the sim engine's HTTP server running as a real process."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest
from aiohttp import web

from ostinato.config import SimEngineConfig
from tests.conftest import spawn_service, stop_service
from tests.ports import closed_port
from tests.prometheus_text import parse, value
from workers.sglang_client import (
    EngineFailed,
    EngineRejected,
    EngineRequest,
    EngineUnavailable,
    SGLangClient,
)
from workers.sim.server import build_app


@contextlib.asynccontextmanager
async def _serving(app: web.Application) -> AsyncIterator[tuple[str, SGLangClient]]:
    """`app` served on loopback, and a client of it."""
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    client = SGLangClient(url)
    try:
        yield url, client
    finally:
        await client.close()
        await runner.cleanup()


async def test_streaming_generate_reports_sglang_meta_info(sim_engine_url: str) -> None:
    client = SGLangClient(sim_engine_url)
    try:
        req = EngineRequest(rid="r1", text="Hello there, engine.",
                            sampling_params={"max_new_tokens": 7, "ignore_eos": True}, priority=3,
                            cache_salt="tenant:a")
        outs = [o async for o in client.generate(req)]
        final = outs[-1]
        assert final.finished and final.finish_reason == "length"
        assert final.completion_tokens == 7 and final.prompt_tokens == 5
        assert final.e2e_latency is not None and final.simulated
        assert "".join(o.delta for o in outs) == final.text  # deltas from cumulative text
        once = await client.generate_once(req)
        assert once.text == final.text  # deterministic
    finally:
        await client.close()


@pytest.mark.parametrize("cut", [0, 2, 5])  # where in a word the stop string begins
async def test_a_stop_string_across_tokens_is_streamed_once(sim_engine_url: str,
                                                              cut: int) -> None:
    """The engine's last event drops the stop string it matched, so its text is shorter than
    the text before it: the deltas still make the answer, once (the review saw
    "considers requestconsiders ")."""
    client = SGLangClient(sim_engine_url)
    try:
        params = {"max_new_tokens": 12, "temperature": 0.0}
        whole = (await client.generate_once(EngineRequest(
            rid="w", text="Weather in Paris?", sampling_params=params))).text
        words = whole.split(" ")
        start = len(" ".join(words[:2])) + 1 + cut
        stop = whole[start:whole.index(" ", start) + 3]  # to two letters of the next word
        outs = [o async for o in client.generate(EngineRequest(
            rid="s", text="Weather in Paris?", sampling_params={**params, "stop": [stop]}))]
        assert outs[-1].finish_reason == "stop" and outs[-1].text == whole[:start]
        # streamed in pieces (none while the text may begin the stop string, as SGLang's
        # scheduler sends none)
        assert len(outs) >= 2
        assert "".join(o.delta for o in outs) == whole[:start], [o.delta for o in outs]
    finally:
        await client.close()


async def test_the_sim_sends_nothing_while_its_text_may_begin_a_stop_string(
        sim_engine_url: str) -> None:
    """As SGLang's scheduler (check_match_stop_str_prefix): no event's text ends in a start
    of a stop string; the last keeps the stop string under no_stop_trim."""
    params = {"max_new_tokens": 24, "temperature": 0.0, "ignore_eos": True}
    async with aiohttp.ClientSession() as s:
        async with s.post(sim_engine_url + "/generate", json={
                "text": "Weather in Paris?", "sampling_params": params}) as resp:
            whole = (await resp.json())["text"]
        stop = whole[len(whole) // 2:len(whole) // 2 + 4]
        async with s.post(sim_engine_url + "/generate", json={
                "text": "Weather in Paris?", "stream": True,
                "sampling_params": {**params, "stop": [stop], "no_stop_trim": True}}) as resp:
            body = (await resp.read()).decode()
    texts = [json.loads(e[6:])["text"] for e in body.split("\n\n") if e.startswith("data: {")]
    assert texts[-1] == whole[:whole.index(stop) + len(stop)]
    assert not any(t.endswith(stop[:n]) for t in texts[:-1] for n in range(1, len(stop)))


async def test_raw_sse_framing_matches_sglang(sim_engine_url: str) -> None:
    async with aiohttp.ClientSession() as s, s.post(sim_engine_url + "/generate", json={
        "text": "hi", "sampling_params": {"max_new_tokens": 2, "ignore_eos": True}, "stream": True,
    }) as resp:
        body = (await resp.read()).decode()
    events = [line for line in body.split("\n\n") if line]
    assert events[-1] == "data: [DONE]"
    assert all(e.startswith("data: {") for e in events[:-1]) and len(events) == 3


@pytest.mark.parametrize(
    "body",
    [{}, {"text": ["a", "b"]}, {"text": "x", "sampling_params": {"max_new_tokens": -1}},
     {"text": "x", "priority": "high"}],
)
async def test_bad_requests_map_to_engine_rejected(sim_engine_url: str, body: dict) -> None:
    client = SGLangClient(sim_engine_url)
    try:
        with pytest.raises(EngineRejected):
            await client._open("/generate", body)
    finally:
        await client.close()


@pytest.mark.parametrize("stream", [True, False])
@pytest.mark.parametrize("body", [b"<html>oops</html>", b"data: not json\n\n", b"[1, 2]",
                                  b"data: [1]\n\ndata: [DONE]\n\n"])
async def test_an_answer_that_is_not_generates_fails_the_call(stream: bool, body: bytes) -> None:
    # a 200 whose body is not /generate's (a proxy's page, a truncated event): the call
    # fails with the engine's error (the worker reports it and ends it), it does not hang
    async def generate(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="text/event-stream" if stream
                            else "application/json")

    app = web.Application()
    app.router.add_post("/generate", generate)

    async def abort(_: web.Request) -> web.Response:
        return web.json_response({})

    app.router.add_post("/abort_request", abort)
    async with _serving(app) as (_, client):
        with pytest.raises(EngineFailed):
            async for _ in client.generate(EngineRequest(rid="r", text="hi"), stream=stream):
                pass


async def test_an_error_event_in_the_stream_is_a_rejection_as_a_400_is() -> None:
    # SGLang's /generate streams the ValueError of its request validation (what it answers
    # 400 when unstreamed) as an error event: the same EngineRejected, its message kept
    async def generate(_: web.Request) -> web.Response:
        return web.Response(body=b'data: {"error": {"message": "The input (9 tokens) is longer '
                                 b'than the model\'s context length (8 tokens)."}}\n\n'
                                 b"data: [DONE]\n\n", content_type="text/event-stream")

    async def abort(_: web.Request) -> web.Response:
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/generate", generate)
    app.router.add_post("/abort_request", abort)
    async with _serving(app) as (_, client):
        with pytest.raises(EngineRejected, match=r"refused: The input \(9 tokens\)"):
            async for _ in client.generate(EngineRequest(rid="r", text="hi")):
                pass


async def test_unreachable_engine_is_retried_then_unavailable() -> None:
    client = SGLangClient(f"http://127.0.0.1:{closed_port()}", connect_retries=2, backoff_s=0.01)
    try:
        with pytest.raises(EngineUnavailable):
            async for _ in client.generate(EngineRequest(rid="x", text="hi")):
                pass
        assert not await client.health()
    finally:
        await client.close()


async def test_abort_stops_a_running_request(sim_engine_url: str) -> None:
    client = SGLangClient(sim_engine_url)
    try:
        req = EngineRequest(rid="long-1", text="go",
                            sampling_params={"max_new_tokens": 5000, "ignore_eos": True})
        outs = []

        async def consume() -> None:
            async for o in client.generate(req):
                outs.append(o)

        task = asyncio.create_task(consume())
        while not outs:
            await asyncio.sleep(0.01)
        await client.abort("long-1")
        await asyncio.wait_for(task, 5)
        assert outs[-1].finish_reason == "abort" and outs[-1].completion_tokens < 5000
        assert await client.health()
        info = await client.server_info()
        assert info["simulated"] is True
    finally:
        await client.close()


async def _metric(client: SGLangClient, name: str) -> float:
    async with client._http().get(client.base_url + "/metrics") as resp:
        text = await resp.text()
    return value(parse(text), name)


async def _aborted_count(client: SGLangClient) -> int:
    return int(await _metric(client, "sglang:num_aborted_requests_total"))


async def test_consumer_that_stops_early_aborts_the_engine_request(sim_engine_url: str) -> None:
    client = SGLangClient(sim_engine_url)
    try:
        before = await _aborted_count(client)
        gen = client.generate(EngineRequest(rid="early-exit", text="tell me a long story",
                                            sampling_params={"max_new_tokens": 5000,
                                                             "ignore_eos": True}))
        async for _ in gen:
            break
        await gen.aclose()
        deadline = asyncio.get_running_loop().time() + 5
        while await _aborted_count(client) == before:
            assert asyncio.get_running_loop().time() < deadline, "engine request not aborted"
            await asyncio.sleep(0.02)
    finally:
        await client.close()


async def test_a_cancelled_unstreamed_request_is_aborted_at_the_engine(
        sim_engine_url: str) -> None:
    # unstreamed, the engine answers (headers and all) only when done: a caller cancelled
    # meanwhile is still waiting for the response to open, and must abort it there
    client = SGLangClient(sim_engine_url)
    try:
        before = await _aborted_count(client)

        async def whole() -> None:
            async for _ in client.generate(EngineRequest(
                    rid="whole-cancel", text="a long story",
                    sampling_params={"max_new_tokens": 5000, "ignore_eos": True}),
                    stream=False):
                pass

        task = asyncio.create_task(whole())
        async with asyncio.timeout(10):  # until the engine runs it
            while not await _metric(client, "sglang:num_running_reqs"):
                await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        async with asyncio.timeout(10):
            while await _aborted_count(client) == before:
                await asyncio.sleep(0.02)
    finally:
        await client.close()


async def test_health_generate_fails_while_the_engine_hangs(sim_engine_url: str) -> None:
    """The sim engine in-process, with its test hook to hang."""
    app = build_app(SimEngineConfig(debug_endpoints=True, time_scale=0.1))
    async with _serving(app) as (url, client):
        assert await client.health_generate(10.0)
        async with aiohttp.ClientSession() as s:
            async with s.post(url + "/_debug/hang", json={"hang": True}) as resp:
                assert resp.status == 200
            assert not await client.health_generate(0.3)  # it hangs: the probe times out
            async with s.post(url + "/_debug/hang", json={"hang": False}) as resp:
                assert resp.status == 200
            assert await client.health_generate(10.0)
            async with s.post(sim_engine_url + "/_debug/hang", json={"hang": True}) as resp:
                assert resp.status == 404  # only an engine started with debug_endpoints
            async with s.get(url + "/metrics") as resp:  # as SGLang's, probes are not metered
                assert value(parse(await resp.text()), "sglang:num_requests_total") == 0


async def test_outputs_that_arrive_together_are_marked_more() -> None:
    """An engine that writes its whole stream at once (one read here): every output but the
    last of the burst is marked `more`, so the worker sends them as one chunk."""
    def event(text: str, reason: str | None) -> bytes:
        meta = {"finish_reason": None if reason is None else {"type": reason},
                "completion_tokens": len(text)}
        return b"data: " + json.dumps({"text": text, "meta_info": meta}).encode() + b"\n\n"

    async def burst(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(event("a", None) + event("ab", None) + event("abc", "stop")
                         + b"data: [DONE]\n\n")
        return resp

    app = web.Application()
    app.add_routes([web.post("/generate", burst)])
    async with _serving(app) as (_, client):
        outs = [o async for o in client.generate(EngineRequest(rid="b", text="hi"))]
        assert [(o.delta, o.more) for o in outs] == [("a", True), ("b", True), ("c", False)]
        assert outs[-1].finish_reason == "stop"


async def test_a_connection_whose_body_ends_after_done_goes_back_to_the_pool() -> None:
    """SGLang writes the end of its chunked body after [DONE]: the client, done at [DONE],
    reads that end before giving the connection back, so the next request reuses it
    (released unread, it would be closed: a new connection per request)."""
    finish = b'data: {"text": "ok", "meta_info": {"finish_reason": {"type": "stop"}}}\n\n'
    body_may_end = asyncio.Event()
    peers: list[object] = []

    async def generate(request: web.Request) -> web.StreamResponse:
        peers.append(request.transport)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        await resp.write(finish + b"data: [DONE]\n\n")
        await body_may_end.wait()  # the body ends only after the client has read [DONE]
        return resp

    app = web.Application()
    app.add_routes([web.post("/generate", generate)])
    async with _serving(app) as (_, client):
        try:
            for rid in ("a", "b"):
                outs = [o async for o in client.generate(EngineRequest(rid=rid, text="hi"))]
                assert outs[-1].text == "ok" and outs[-1].finished
                body_may_end.set()  # now the end of the body comes
                while client._releasing:  # the first response's end is read, then released
                    await asyncio.gather(*client._releasing)
                body_may_end.clear()
            assert len(peers) == 2 and peers[0] is peers[1]  # one connection for both
        finally:
            body_may_end.set()  # (the server's handler ends before the server does)


@pytest.fixture(scope="module")
def incremental_engine_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A sim engine streaming as SGLang does with --incremental-streaming-output."""
    proc, info = spawn_service(tmp_path_factory.mktemp("incremental"), "sim-engine",
                               "--incremental-streaming-output")
    yield str(info["address"])
    stop_service(proc)


@pytest.mark.parametrize("cut", [0, 2])
async def test_an_incremental_stream_makes_the_answer_a_cumulative_one_makes(
        sim_engine_url: str, incremental_engine_url: str, cut: int) -> None:
    """The client learns the engine's way of streaming from /get_server_info; the same
    request (a stop string split across tokens, logprobs) gives the same deltas' text, the
    same whole text and the same logprobs either way."""
    whole_client, piece_client = SGLangClient(sim_engine_url), SGLangClient(incremental_engine_url)
    try:
        assert not (await whole_client.server_info()).get("incremental_streaming_output")
        assert (await piece_client.server_info())["incremental_streaming_output"]
        assert piece_client.incremental and not whole_client.incremental
        params = {"max_new_tokens": 12, "temperature": 0.0}
        text = (await whole_client.generate_once(EngineRequest(
            rid="w", text="Weather in Paris?", sampling_params=params))).text
        start = len(" ".join(text.split(" ")[:2])) + 1 + cut
        stop = text[start:text.index(" ", start) + 3]  # to two letters of the next word
        answers = []
        for client in (whole_client, piece_client):
            stopped = [o async for o in client.generate(EngineRequest(
                rid=uuid.uuid4().hex, text="Weather in Paris?",
                sampling_params={**params, "stop": [stop]}))]
            logged = [o async for o in client.generate(EngineRequest(
                rid=uuid.uuid4().hex, text="Weather in Paris?", top_logprobs_num=2,
                sampling_params=params))]
            answers.append(("".join(o.delta for o in stopped), stopped[-1].text,
                            logged[-1].token_logprobs, logged[-1].top_logprobs, len(stopped)))
        assert answers[0][:4] == answers[1][:4] and answers[0][0] == text[:start]
        assert len(answers[0][2]) == 12 and answers[1][4] >= 2  # (streamed in pieces)
    finally:
        await whole_client.close()
        await piece_client.close()


@pytest.mark.parametrize("stream", [False, True])
async def test_a_zero_cost_engine_reports_its_own_handling_as_its_e2e_latency(
        stream: bool) -> None:
    """Its model time is 0; SGLang's e2e_latency runs from the request's state (before it is
    tokenized) to its output handled, so the engine's work counts as the engine's (what
    `bench live` subtracts from a call's latency), and nothing of its caller's."""
    app = build_app(SimEngineConfig(zero_cost=True))
    async with _serving(app) as (url, _), aiohttp.ClientSession() as session:
        began = time.perf_counter()
        async with session.post(url + "/generate", json={
                "text": "hello " * 50, "stream": stream,
                "sampling_params": {"max_new_tokens": 4}}) as resp:
            body = await resp.text()
        wall = time.perf_counter() - began
    events = [json.loads(line[6:]) for line in body.splitlines()
              if line.startswith("data: {")] if stream else [json.loads(body)]
    e2e = events[-1]["meta_info"]["e2e_latency"]
    assert 0 < e2e < wall
