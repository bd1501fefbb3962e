"""The OpenAI-compatible HTTP API through the real mesh, driven by the official `openai`
client (as agent frameworks use it) and by raw HTTP for what that client cannot send."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
import uuid

import grpc
import openai
import pytest
import redis

from cache import keys
from ostinato.mesh import Mesh
from ostinato.v1 import gateway_pb2, gateway_pb2_grpc, worker_pb2, worker_pb2_grpc
from tests.conftest import raw_http
from tests.prometheus_text import Samples, parse, value

MODEL = "sim/llama-3.1-8b"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_chat_completion(acme: openai.OpenAI) -> None:
    raw_resp = acme.chat.completions.with_raw_response.create(
        model="sim/llama-3.1-8b", messages=ask("Name a colour."), max_tokens=8, temperature=0.7)
    out = raw_resp.parse()
    assert out.object == "chat.completion" and out.choices[0].message.role == "assistant"
    assert out.choices[0].message.content and out.choices[0].finish_reason in ("stop", "length")
    assert out.usage is not None and 0 < out.usage.completion_tokens <= 8
    assert raw_resp.headers["X-Ostinato-Cache-Hit"] == "miss"
    ext = out.model_extra["ostinato"]  # type: ignore[index]
    assert ext["simulated"] is True and ext["worker_id"].startswith("worker-")
    assert raw_resp.headers["X-Ostinato-Program"] == ext["program_id"]


def test_a_stream_names_its_program_before_its_first_event(acme: openai.OpenAI) -> None:
    """A client that leaves a stream early (n answers: n role chunks and deltas before any
    finish chunk names the program) knows its program from the header, and may end it."""
    with acme.chat.completions.with_streaming_response.create(
            model=MODEL, messages=ask("Count to five."), max_tokens=4, n=3,
            stream=True) as raw:
        named = raw.headers["X-Ostinato-Program"]
        chunks = list(raw.parse())
    ids = {c.model_extra["ostinato"]["program_id"] for c in chunks  # type: ignore[index]
           if c.model_extra and "ostinato" in c.model_extra}
    assert named and ids == {named}


def test_in_open_mode_an_openai_client_with_any_key_is_tenant_default(base_url: str,
                                                                      mesh: Mesh) -> None:
    # (this mesh runs in open mode) the openai library will not start without a key: any it
    # sends is taken as none over HTTP, while over gRPC a key that is sent must be valid
    with openai.OpenAI(base_url=base_url, api_key="none", max_retries=0) as anyone:
        out = anyone.chat.completions.create(model=MODEL, messages=ask("hi"), max_tokens=2)
        assert out.choices[0].message.content is not None
    with grpc.insecure_channel(mesh.endpoints.gateway) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        with pytest.raises(grpc.RpcError) as refused:
            stub.StartProgram(gateway_pb2.StartProgramRequest(), timeout=10,
                              metadata=(("authorization", "Bearer none"),))
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_streaming_with_usage(acme: openai.OpenAI) -> None:
    chunks = list(acme.chat.completions.create(
        model=MODEL, messages=ask("Count to five."), max_tokens=12, stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert text and finishes in (["stop"], ["length"])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens <= 12
    # every chunk before the last carries "usage": null, as OpenAI's (API review 2026-12-06)
    assert all("usage" in c.model_fields_set and c.usage is None for c in chunks[:-1])
    plain = list(acme.chat.completions.create(model=MODEL, messages=ask("Count to two."),
                                              max_tokens=4, stream=True))
    assert not any("usage" in c.model_fields_set for c in plain)  # not asked for: no key


def test_cache_header_and_tenant_isolation(acme: openai.OpenAI, base_url: str) -> None:
    question = ask(f"What is the tallest mountain? ({uuid.uuid4().hex[:6]})")
    kw = {"model": MODEL, "messages": question, "max_tokens": 6, "temperature": 0.0,
          "extra_headers": {"X-Ostinato-Cache": "exact"}}
    first = acme.chat.completions.with_raw_response.create(**kw)
    again = acme.chat.completions.with_raw_response.create(**kw)
    assert first.headers["X-Ostinato-Cache-Hit"] == "miss"
    assert again.headers["X-Ostinato-Cache-Hit"] == "exact"  # positive control
    assert again.parse().choices[0].message.content == first.parse().choices[0].message.content
    with openai.OpenAI(base_url=base_url, api_key="key-globex", max_retries=0) as globex:
        other = globex.chat.completions.with_raw_response.create(**kw)
    assert other.headers["X-Ostinato-Cache-Hit"] == "miss"
    off = acme.chat.completions.with_raw_response.create(
        **{**kw, "extra_headers": {"X-Ostinato-Cache": "off"}})
    assert off.headers["X-Ostinato-Cache-Hit"] == "miss"
    streamed = acme.chat.completions.with_raw_response.create(**kw, stream=True)
    assert streamed.headers["X-Ostinato-Cache-Hit"] == "exact"


def test_a_streamed_miss_is_stored_for_the_next_caller(acme: openai.OpenAI) -> None:
    kw = {"model": MODEL, "messages": ask(f"Name a river. ({uuid.uuid4().hex[:6]})"),
          "max_tokens": 6, "temperature": 0.0, "extra_headers": {"X-Ostinato-Cache": "exact"}}
    first = acme.chat.completions.with_raw_response.create(**kw, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in first.parse() if c.choices)
    assert first.headers["X-Ostinato-Cache-Hit"] == "miss" and text
    again = acme.chat.completions.with_raw_response.create(**kw)
    assert again.headers["X-Ostinato-Cache-Hit"] == "exact"
    assert again.parse().choices[0].message.content == text


def test_models_completions_logprobs_and_n(acme: openai.OpenAI) -> None:
    assert [m.id for m in acme.models.list()] == [MODEL]
    done = acme.completions.create(model=MODEL, prompt="Once upon a time", max_tokens=5,
                                   logprobs=2)
    assert done.choices[0].text and done.usage is not None and done.usage.completion_tokens == 5
    legacy = done.choices[0].logprobs  # where each token starts in the text
    assert legacy is not None and legacy.tokens and len(legacy.tokens) == 5
    assert legacy.text_offset == [sum(map(len, legacy.tokens[:i])) for i in range(5)]
    out = acme.chat.completions.create(model=MODEL, messages=ask("Pick a number."), max_tokens=5,
                                       n=3, logprobs=True, top_logprobs=2, presence_penalty=0.5,
                                       frequency_penalty=0.5, logit_bias={"50256": -100})
    assert [c.index for c in out.choices] == [0, 1, 2]
    # 5 tokens an answer, unless one ended earlier (each has a fresh random seed, and the sim
    # model may end it: CI 2026-12-07 read 14; or end it with its stop token as the 5th: 15)
    assert out.usage is not None
    if all(c.finish_reason == "length" for c in out.choices):
        assert out.usage.completion_tokens == 15
    else:
        assert 3 <= out.usage.completion_tokens <= 15
    lp = out.choices[0].logprobs
    assert lp is not None and lp.content and len(lp.content[0].top_logprobs) == 2
    ext = out.model_extra["ostinato"]  # type: ignore[index]
    assert ext["program_id"] and ext["call_id"] and ext["parent_call_ids"] == []


def test_completions_of_several_prompts_and_n(acme: openai.OpenAI) -> None:
    """An array of prompts (LangChain's OpenAI class sends one), each answered n times:
    the choices of each prompt in turn, each prompt counted once in the usage."""
    one = acme.completions.create(model=MODEL, prompt="The river", max_tokens=3)
    assert one.usage is not None
    for stream in (False, True):
        if stream:
            chunks = list(acme.completions.create(
                model=MODEL, prompt=["The river", "A mountain"], max_tokens=3, n=2,
                stream=True, stream_options={"include_usage": True}))
            texts = {i: "".join(c.choices[0].text for c in chunks
                                if c.choices and c.choices[0].index == i) for i in range(4)}
            usage = chunks[-1].usage
        else:
            out = acme.completions.create(model=MODEL, prompt=["The river", "A mountain"],
                                          max_tokens=3, n=2)
            assert [c.index for c in out.choices] == [0, 1, 2, 3]
            texts = {c.index: c.text for c in out.choices}
            usage = out.usage
        assert all(texts.values()) and len(texts) == 4
        assert usage is not None and usage.completion_tokens == 12
        assert one.usage.prompt_tokens < usage.prompt_tokens < 2 * one.usage.prompt_tokens + 8


def test_n_choices_stream_side_by_side(acme: openai.OpenAI) -> None:
    """n > 1 streamed (as OpenAI and SGLang stream it): one completion id, each chunk's
    choice by its index, each choice its own call, one usage for all."""
    chunks = list(acme.chat.completions.create(
        model=MODEL, messages=ask("Pick a number."), max_tokens=5, n=3, stream=True,
        stream_options={"include_usage": True}, extra_body={"ignore_eos": True},
        logprobs=True, top_logprobs=1))
    text, finishes, calls = ["", "", ""], {}, set()
    tokens: list[list] = [[], [], []]  # streamed logprobs (with each choice's finish here)
    for chunk in chunks:
        for choice in chunk.choices:
            text[choice.index] += choice.delta.content or ""
            tokens[choice.index] += choice.logprobs.content or [] if choice.logprobs else []
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
                calls.add(chunk.model_extra["ostinato"]["call_id"])  # type: ignore[index]
    assert all(text) and finishes == {0: "length", 1: "length", 2: "length"} and len(calls) == 3
    assert [len(t) for t in tokens] == [5, 5, 5] and len(tokens[0][0].top_logprobs) == 1
    assert len({c.id for c in chunks}) == 1
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 15


def test_sglangs_sampling_extensions_reach_the_engine(acme: openai.OpenAI) -> None:
    """As SGLang's OpenAI server takes them (extra_body). The sim model ends a free-text answer
    after 4 to 95 tokens, so 100 tokens come only from min_tokens reaching it."""
    out = acme.chat.completions.create(model=MODEL, messages=ask("Tell me more."), max_tokens=110,
                                       extra_body={"top_k": 20, "min_p": 0.05, "min_tokens": 100,
                                                   "repetition_penalty": 1.1})
    assert out.usage is not None and 100 <= out.usage.completion_tokens <= 110
    assert out.choices[0].finish_reason == "stop"
    out = acme.completions.create(model=MODEL, prompt="Once", max_tokens=120,
                                  extra_body={"ignore_eos": True})
    assert out.usage is not None and out.usage.completion_tokens == 120
    assert out.choices[0].finish_reason == "length"
    with pytest.raises(openai.BadRequestError, match="min tokens 9 is more than max tokens 8"):
        acme.chat.completions.create(model=MODEL, messages=ask("x"), max_tokens=8,
                                     extra_body={"min_tokens": 9})


@pytest.mark.parametrize("api", ["chat", "responses"])
def test_allowed_tools_limit_the_calls(acme: openai.OpenAI, api: str) -> None:
    """OpenAI's tool_choice allowed_tools (a 400 before: framework review F5): under
    "required" every call is of an allowed tool, whichever the model would have taken."""
    names = ("lookup", "search", "fetch")
    called = set()
    for seed in range(4):
        if api == "chat":
            answer = acme.chat.completions.create(
                model=MODEL, messages=ask(f"find item {seed}"), seed=seed, tools=[
                    {"type": "function", "function": {"name": n}} for n in names],
                tool_choice={"type": "allowed_tools", "allowed_tools": {
                    "mode": "required", "tools": [{"type": "function", "function": {
                        "name": "fetch"}}]}})  # type: ignore[typeddict-item]
            called |= {c.function.name for c in answer.choices[0].message.tool_calls or ()}
        else:
            response = acme.responses.create(
                model=MODEL, input=f"find item {seed}", tools=[
                    {"type": "function", "name": n, "parameters": None, "strict": False}
                    for n in names],
                tool_choice={"type": "allowed_tools", "mode": "required", "tools": [
                    {"type": "function", "name": "fetch"}]})
            called |= {item.name for item in response.output if item.type == "function_call"}
    assert called == {"fetch"}


def test_program_over_http_with_dependencies(mesh: Mesh, acme: openai.OpenAI) -> None:
    status, _, body = raw_http(mesh, "POST", "/v1/programs", json.dumps({"deadline_s": 60}).encode())
    assert status == 200
    program = json.loads(body)["program_id"]
    header = {"X-Ostinato-Program": program}
    first = acme.chat.completions.create(model=MODEL, messages=ask("Plan a trip."), max_tokens=6,
                                         extra_headers=header,
                                         extra_body={"ostinato": {"call_id": "plan"}})
    assert first.model_extra["ostinato"]["call_id"] == "plan"  # type: ignore[index]
    acme.chat.completions.create(model=MODEL, messages=ask("Now book it."), max_tokens=6,
                                 extra_headers=header,
                                 extra_body={"ostinato": {"call_id": "book",
                                                          "parent_call_ids": ["plan"]}})
    status, _, body = raw_http(mesh, "POST", f"/v1/programs/{program}/end")
    assert status == 200 and json.loads(body)["calls_completed"] == 2
    status, _, body = raw_http(mesh, "POST", "/v1/programs", json.dumps({"deadline_s": -1}).encode())
    assert status == 400 and "deadline_s" in json.loads(body)["error"]["message"]


def test_a_late_program_over_http_is_refused_with_504(mesh: Mesh) -> None:
    status, _, body = raw_http(mesh, "POST", "/v1/programs", json.dumps(
        {"deadline_s": 0.001, "reject_when_late": True}).encode())
    assert status == 200
    program = json.loads(body)["program_id"]
    time.sleep(0.01)  # only ensures the deadline is behind us
    status, headers, body = raw_http(mesh, "POST", "/v1/chat/completions", json.dumps(
        {"model": MODEL, "messages": ask("Too late?"), "max_tokens": 2}).encode(),
        {"X-Ostinato-Program": program})
    error = json.loads(body)["error"]
    assert status == 504 and "past its deadline" in error["message"], (status, error)
    # no retry can be served: the openai SDK is told not to retry it (it retries 5xx)
    assert {k.lower(): v for k, v in headers.items()}.get("x-should-retry") == "false"
    assert json.loads(raw_http(mesh, "POST", f"/v1/programs/{program}/end")[2])["calls_completed"] == 0
    status, _, body = raw_http(mesh, "POST", "/v1/programs", b'{"reject_when_late": "yes"}')
    assert status == 400 and json.loads(body)["error"]["param"] == "reject_when_late"


def _running(mesh: Mesh) -> int:
    total = 0
    for address in mesh.endpoints.workers.values():
        with grpc.insecure_channel(address) as channel:
            total += worker_pb2_grpc.WorkerStub(channel).Stats(worker_pb2.StatsRequest(),
                                                               timeout=5).running
    return total


def test_a_client_gone_mid_stream_cancels_the_engine_request(mesh: Mesh,
                                                            acme: openai.OpenAI) -> None:
    stream = acme.chat.completions.create(model=MODEL, messages=ask("Write a long saga."),
                                          max_tokens=4000, stream=True,
                                          extra_body={"ignore_eos": True})
    next(iter(stream))  # the call is running
    assert _running(mesh) >= 1
    stream.close()
    deadline = time.monotonic() + 10
    while _running(mesh) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _running(mesh) == 0


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", {"messages": ask("Write a long saga.")}),
    ("/v1/completions", {"prompt": "Once upon a time"}),
])
def test_a_client_gone_before_an_unstreamed_answer_cancels_the_engine_request(
        mesh: Mesh, path: str, body: dict[str, object]) -> None:
    """Workers review 2026-12-05 F1: an unstreamed request writes nothing before its end, so
    a client that left (its own timeout: the openai SDK then retries) was not noticed and
    its call ran to its end, holding an engine and a planner slot."""
    # (ignore_eos: SGLang's extension, so the sim engine writes all 4,000 tokens: seconds)
    request = json.dumps({"model": MODEL, "max_tokens": 4000, "ignore_eos": True,
                          **body}).encode()
    host, port = mesh.endpoints.gateway_http.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer "
                     f"key-acme\r\nContent-Type: application/json\r\nContent-Length: "
                     f"{len(request)}\r\n\r\n".encode() + request)
        deadline = time.monotonic() + 10
        while not _running(mesh) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _running(mesh) >= 1  # the call is running: the client leaves
    deadline = time.monotonic() + 10
    while _running(mesh) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _running(mesh) == 0
    # counted, as nginx's 499 (tracing review 2026-12-05 F10: it was not counted at all)
    url = f"http://{mesh.endpoints.metrics['gateway']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as resp:
        closed = value(parse(resp.read().decode()), "ostinato_http_responses_total",
                       route=path, status="499")
    assert closed >= 1


def test_metrics_are_exposed_for_prometheus_on_the_metrics_port_only(
        mesh: Mesh, acme: openai.OpenAI) -> None:
    def scrape() -> Samples:
        url = f"http://{mesh.endpoints.metrics['gateway']}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain")
            return parse(resp.read().decode())

    # not on the public HTTP port: its tenant labels are for the operator
    assert raw_http(mesh, "GET", "/metrics", headers={"Authorization": ""})[0] == 404
    assert mesh.endpoints.metrics["gateway"] != mesh.endpoints.gateway_http

    before = scrape()
    acme.chat.completions.create(model=MODEL, messages=ask("Say hi."), max_tokens=4,
                                 temperature=0.0, extra_headers={"X-Ostinato-Cache": "exact"})
    after = scrape()
    ok = {"route": "/v1/chat/completions", "status": "200"}
    assert value(after, "ostinato_http_responses_total", **ok) == value(
        before, "ostinato_http_responses_total", **ok) + 1
    assert value(after, "ostinato_cache_lookup_seconds_count") == value(
        before, "ostinato_cache_lookup_seconds_count") + 1
    assert value(after, "ostinato_cache_redis_up") == 1


def test_a_conversation_recorded_before_ids_were_per_tenant_starts_a_new_program(
        mesh: Mesh, acme: openai.OpenAI) -> None:
    """A record of a conversation from before the gateway named programs TENANT/ID (a
    rolling upgrade) names a program no client can address: the request continuing it
    starts a new program rather than answer an empty program id (review)."""
    question = ask(f"Legacy? {uuid.uuid4()}")
    first = acme.chat.completions.create(model=MODEL, messages=question, max_tokens=4)
    store = redis.Redis.from_url(mesh.endpoints.redis_url, decode_responses=True)
    rewritten = 0
    for key in store.scan_iter(match=keys.conversation("acme", "*")):
        record = json.loads(store.get(key) or "{}")  # (conv:kids:... counters match too)
        if isinstance(record, dict) and record.get("program_id", "").startswith("acme"):
            # the old form: the client's id alone (today's: acme#GENERATION/ID)
            record["program_id"] = record["program_id"].partition("/")[2]
            store.set(key, json.dumps(record), keepttl=True)
            rewritten += 1
    assert rewritten
    again = acme.chat.completions.create(model=MODEL, max_tokens=4, messages=[
        *question, {"role": "assistant", "content": first.choices[0].message.content or ""},
        {"role": "user", "content": "And then?"}])
    ext = again.model_extra["ostinato"]  # type: ignore[index]
    assert ext["program_id"] and ext["program_id"] != first.model_extra["ostinato"][  # type: ignore[index]
        "program_id"]
    assert ext["parent_call_ids"] == []  # a program of its own, not the lost one's
