"""The OpenAI-compatible HTTP API through the real mesh, driven by the official `openai`
client (as agent frameworks use it) and by raw HTTP for what that client cannot send."""

from __future__ import annotations

import http.client
import json
import time
import urllib.request
import uuid
from collections.abc import Iterator

import grpc
import openai
import pytest
import redis

from cache import keys
from ostinato.mesh import Mesh
from ostinato.v1 import gateway_pb2, gateway_pb2_grpc, worker_pb2, worker_pb2_grpc
from tests.prometheus_text import Samples, parse, value

MODEL = "sim/llama-3.1-8b"


@pytest.fixture(scope="module")
def base_url(mesh: Mesh) -> str:
    assert mesh.endpoints.gateway_http
    return f"http://{mesh.endpoints.gateway_http}/v1"


@pytest.fixture(scope="module")
def acme(base_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=base_url, api_key="key-acme", max_retries=0) as client:
        yield client


def raw(mesh: Mesh, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    host, port = mesh.endpoints.gateway_http.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Authorization": "Bearer key-acme",
                                                       "Content-Type": "application/json",
                                                       **(headers or {})})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


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
    assert out.usage is not None and out.usage.completion_tokens == 15
    lp = out.choices[0].logprobs
    assert lp is not None and lp.content and len(lp.content[0].top_logprobs) == 2
    ext = out.model_extra["ostinato"]  # type: ignore[index]
    assert ext["program_id"] and ext["call_id"] and ext["parent_call_ids"] == []


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


@pytest.mark.parametrize(("kw", "status", "needle"), [
    ({"n": 9}, 400, "n must be an integer from 1 to 8"),
    ({"model": "gpt-4o"}, 404, "not served here"),
    ({"logit_bias": {"token": 5}}, 400, "logit_bias key 'token' is not a token id"),
    ({"logit_bias": {"1": 500}}, 400, "logit_bias[1] must be a number in [-100, 100]"),
    ({"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "object", "properties": 5}}}}, 400,
     "response_format.json_schema.schema"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
      "tool_choice": {"type": "function", "function": {"name": "g"}}}, 400, "'g'"),
    ({"extra_body": {"cache_salt": "tenant:globex"}}, 400, "cache_salt"),
    ({"extra_headers": {"X-Ostinato-Cache": "fuzzy"}}, 400, "X-Ostinato-Cache"),
    ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, 400, "tools[0]"),
    ({"max_tokens": 10**9}, 400, "max_new_tokens"),
    ({"messages": ask("x" * 60_000)}, 400, "prompt too large"),
    ({"messages": [{"role": "wizard", "content": "hi"}]}, 400, "role"),
    ({"messages": [*ask("hi"), {"role": "tool", "tool_call_id": "call_9", "content": "42"}]},
     400, "messages[1].tool_call_id 'call_9' answers no tool call"),
    ({"extra_headers": {"X-Ostinato-Program": "no-such-program"}}, 404, "'no-such-program'"),
    ({"extra_body": {"ostinato": {"parent_call_ids": ["ghost"]}}}, 400, "ghost"),
])
def test_bad_requests_get_clear_errors(acme: openai.OpenAI, kw: dict, status: int,
                                       needle: str) -> None:
    args = {"model": MODEL, "messages": ask("hello"), "max_tokens": 4, **kw}
    with pytest.raises(openai.APIStatusError) as err:
        acme.chat.completions.create(**args)
    assert err.value.status_code == status
    assert needle in err.value.message


def open_programs(mesh: Mesh) -> float:
    with urllib.request.urlopen(f"http://{mesh.endpoints.metrics['planner']}/metrics",
                                timeout=10) as resp:
        return value(parse(resp.read().decode()), "ostinato_planner_programs_open")


@pytest.mark.parametrize("stream", [False, True])
def test_a_new_conversation_whose_call_fails_leaves_no_program_open(
        mesh: Mesh, acme: openai.OpenAI, stream: bool) -> None:
    # the engine refuses the schema (no value satisfies it): the request's new program, which
    # its caller never learns of, ends with its only call
    unsat = {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"enum": [1.5, True], "type": "array"}}}
    before = open_programs(mesh)
    with pytest.raises(openai.BadRequestError) as err:
        acme.chat.completions.create(model=MODEL, messages=ask(f"new {uuid.uuid4().hex}"),
                                     max_tokens=4, response_format=unsat,  # type: ignore[arg-type]
                                     stream=stream)
    assert "enum" in err.value.message
    assert open_programs(mesh) == before


def test_bad_key_and_malformed_json(mesh: Mesh, auth_mesh: Mesh) -> None:
    # a wrong key is refused with auth on (the default); in open mode it is tenant default
    with openai.OpenAI(base_url=f"http://{auth_mesh.endpoints.gateway_http}/v1",
                       api_key="wrong", max_retries=0) as bad, \
            pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model=MODEL, messages=ask("hi"), max_tokens=4)
    status, headers, body = raw(auth_mesh, "GET", "/v1/models", headers={"Authorization": ""})
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert json.loads(body)["error"]["type"] == "authentication_error"
    status, _, body = raw(mesh, "POST", "/v1/chat/completions", b"{not json")
    assert status == 400 and "not valid JSON" in json.loads(body)["error"]["message"]
    status, _, body = raw(mesh, "POST", "/v1/embeddings")  # a route OpenAI has, not served
    message = json.loads(body)["error"]["message"]
    assert status == 404 and message.startswith("no endpoint POST /v1/embeddings here; this "
                                                "gateway serves /v1/chat/completions, ")
    assert "/v1/responses" in message and "{" not in message
    status, headers, body = raw(mesh, "GET", "/v1/chat/completions")  # a POST route
    assert status == 405 and "error" in json.loads(body) and headers["Allow"] == "POST"


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": ask("hi")}),
    ("POST", "/v1/responses", {"model": "gpt-4o", "input": "hi"}),
    ("GET", "/v1/models/gpt-4o", None),
])
def test_a_model_not_served_is_openais_model_not_found(mesh: Mesh, method: str, path: str,
                                                      body: dict | None) -> None:
    status, _, got = raw(mesh, method, path, None if body is None else json.dumps(body).encode())
    error = json.loads(got)["error"]
    assert status == 404 and "'gpt-4o' is not served here" in error["message"]
    assert (error["type"], error["code"], error["param"]) == (
        "invalid_request_error", "model_not_found", "model")


def nested(depth: int) -> dict[str, object]:
    schema: dict[str, object] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


@pytest.mark.parametrize(("path", "body", "param"), [
    # past Python's JSON decoder's own bound, anywhere in the body
    ("/v1/chat/completions", '{"model": "m", "metadata": ' + "[" * 5000 + "]" * 5000 + "}", None),
    ("/v1/conversations", '{"metadata": ' + "[" * 5000 + "]" * 5000 + "}", None),
    ("/v1/responses", '{"input": ' + "[" * 5000 + "]" * 5000 + "}", None),
    # within it, but a schema nested past the gateway's bound (the validator would recurse)
    ("/v1/chat/completions", json.dumps({
        "model": MODEL, "messages": ask("hi"), "tools": [{"type": "function", "function": {
            "name": "deep", "parameters": nested(120)}}]}), "tools"),
    ("/v1/chat/completions", json.dumps({
        "model": MODEL, "messages": ask("hi"), "response_format": {
            "type": "json_schema", "json_schema": {"name": "deep", "schema": nested(300)}}}),
     "response_format"),
    ("/v1/responses", json.dumps({
        "model": MODEL, "input": "hi", "text": {"format": {
            "type": "json_schema", "name": "deep", "schema": nested(120)}}}), "text"),
])
def test_deeply_nested_input_is_a_400(mesh: Mesh, path: str, body: str, param: str | None) -> None:
    status, _, answer = raw(mesh, "POST", path, body.encode())
    error = json.loads(answer)["error"]
    assert status == 400 and "nests" in error["message"], (status, answer[:300])
    if param:
        assert error["param"].startswith(param)
    assert raw(mesh, "GET", "/health")[0] == 200  # and the gateway serves on


DEEP = "[" * 900 + "]" * 900  # under the decoder's bound: parsed, then refused by what reads it
# (chat completions' `metadata` is documented as ignored: not among these)


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", '{"model": "%s", "messages": [{"role": "user", "content": %s}]}'),
    ("/v1/chat/completions", '{"model": "%s", "messages": [{"role": "user", "content": "hi"}], '
                             '"stop": %s}'),
    ("/v1/chat/completions", '{"model": "%s", "messages": [{"role": "user", "content": "hi"}], '
                             '"tools": [{"type": "function", "function": {"name": "f", '
                             '"parameters": {"type": "object", "default": %s}}}]}'),
    ("/v1/responses", '{"model": "%s", "input": [{"role": "user", "content": %s}]}'),
    ("/v1/responses", '{"model": "%s", "input": "hi", "metadata": %s}'),
    ("/v1/conversations", '{"items": [{"type": "message", "role": "user", "content": %s}]%s}'),
])
def test_nesting_under_the_decoders_bound_is_a_4xx(mesh: Mesh, path: str, body: str) -> None:
    filled = body % ((MODEL, DEEP) if body.count("%s") == 2 and "model" in body else (DEEP, ""))
    status, _, answer = raw(mesh, "POST", path, filled.encode())
    assert 400 <= status < 500 and "error" in json.loads(answer), (status, answer[:300])


def test_program_over_http_with_dependencies(mesh: Mesh, acme: openai.OpenAI) -> None:
    status, _, body = raw(mesh, "POST", "/v1/programs", json.dumps({"deadline_s": 60}).encode())
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
    status, _, body = raw(mesh, "POST", f"/v1/programs/{program}/end")
    assert status == 200 and json.loads(body)["calls_completed"] == 2
    status, _, body = raw(mesh, "POST", "/v1/programs", json.dumps({"deadline_s": -1}).encode())
    assert status == 400 and "deadline_s" in json.loads(body)["error"]["message"]


def test_a_late_program_over_http_is_refused_with_504(mesh: Mesh) -> None:
    status, _, body = raw(mesh, "POST", "/v1/programs", json.dumps(
        {"deadline_s": 0.001, "reject_when_late": True}).encode())
    assert status == 200
    program = json.loads(body)["program_id"]
    time.sleep(0.01)  # only ensures the deadline is behind us
    status, _, body = raw(mesh, "POST", "/v1/chat/completions", json.dumps(
        {"model": MODEL, "messages": ask("Too late?"), "max_tokens": 2}).encode(),
        {"X-Ostinato-Program": program})
    error = json.loads(body)["error"]
    assert status == 504 and "past its deadline" in error["message"], (status, error)
    assert json.loads(raw(mesh, "POST", f"/v1/programs/{program}/end")[2])["calls_completed"] == 0
    status, _, body = raw(mesh, "POST", "/v1/programs", b'{"reject_when_late": "yes"}')
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
                                          max_tokens=4000, stream=True)
    next(iter(stream))  # the call is running
    assert _running(mesh) >= 1
    stream.close()
    deadline = time.monotonic() + 10
    while _running(mesh) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _running(mesh) == 0


def test_metrics_are_exposed_for_prometheus_on_the_metrics_port_only(
        mesh: Mesh, acme: openai.OpenAI) -> None:
    def scrape() -> Samples:
        url = f"http://{mesh.endpoints.metrics['gateway']}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.headers["Content-Type"].startswith("text/plain")
            return parse(resp.read().decode())

    # not on the public HTTP port: its tenant labels are for the operator
    assert raw(mesh, "GET", "/metrics", headers={"Authorization": ""})[0] == 404
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
        if isinstance(record, dict) and record.get("program_id", "").startswith("acme/"):
            record["program_id"] = record["program_id"].removeprefix("acme/")  # the old form
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
