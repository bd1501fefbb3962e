"""Bad requests to the OpenAI-compatible HTTP API through the real mesh get clear errors in
OpenAI's shape: from the official `openai` client, and by raw HTTP for what that client
cannot send (a wrong key, malformed or deeply nested JSON, routes not served)."""

from __future__ import annotations

import json
import urllib.request
import uuid

import openai
import pytest

from ostinato.mesh import Mesh
from tests.conftest import raw_http
from tests.prometheus_text import parse, value

MODEL = "sim/llama-3.1-8b"


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


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
    ({"tools": [{"type": "function", "function": {"name": "f", "description": "d" * 60_000}}]},
     400, "prompt too large"),  # (a tool's schema renders into the prompt)
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


@pytest.mark.parametrize(("api", "broken"), [
    ("chat", '{"city": "Par'), ("responses", '{"city": "Par'),
    ("chat", '{"days": 1e999}'), ("chat", "[" * 5000),  # (a 500 each: diff review F4)
])
def test_a_malformed_tool_call_in_the_history_is_no_error(acme: openai.OpenAI, api: str,
                                                          broken: str) -> None:
    """As OpenAI serves it: one malformed call a model wrote (or a stream cut short) must not
    leave every later turn of the conversation refused (a 400 before: session 70)."""
    if api == "chat":
        answer = acme.chat.completions.create(model=MODEL, max_tokens=4, messages=[
            *ask("Weather in Paris?"),
            {"role": "assistant", "content": None, "tool_calls": [{
                "id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": broken}}]},
            {"role": "tool", "tool_call_id": "call_1", "content": "arguments not JSON"}])
        assert answer.choices[0].message.content is not None
    else:
        response = acme.responses.create(model=MODEL, max_output_tokens=4, input=[
            {"role": "user", "content": "Weather in Paris?"},
            {"type": "function_call", "call_id": "call_1", "name": "get_weather",
             "arguments": broken},
            {"type": "function_call_output", "call_id": "call_1", "output": "not JSON"}])
        assert response.error is None and response.output  # (cut at 4 tokens: incomplete)


def test_a_prompt_past_the_gateways_limit_is_context_length_exceeded(acme: openai.OpenAI) -> None:
    """OpenAI's code, so a client that trims its history on it does here too (API review
    2026-12-07: the code was null)."""
    with pytest.raises(openai.BadRequestError) as err:
        acme.chat.completions.create(model=MODEL, messages=ask("x" * 60_000), max_tokens=4)
    assert isinstance(err.value.body, dict)
    assert err.value.body["code"] == "context_length_exceeded"
    assert "gateway.max_prompt_chars" in err.value.body["message"]


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
    status, headers, body = raw_http(auth_mesh, "GET", "/v1/models", headers={"Authorization": ""})
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    status, headers, malformed = raw_http(auth_mesh, "GET", "/v1/models",
                                          headers={"Authorization": "Basic abc"})
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    assert json.loads(malformed)["error"]["message"] == (
        "the authorization header (gRPC: metadata) must be 'Bearer <api key>'")
    error = json.loads(body)["error"]  # OpenAI's shape of it
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_api_key")
    status, _, body = raw_http(mesh, "POST", "/v1/chat/completions", b"{not json")
    assert status == 400 and "not valid JSON" in json.loads(body)["error"]["message"]
    for constant in (b"NaN", b"Infinity", b"-Infinity"):  # Python reads them; JSON has none
        request = b'{"model": "m", "input": "x", "temperature": ' + constant + b"}"
        for path in ("/v1/responses", "/v1/conversations"):
            status, _, body = raw_http(mesh, "POST", path, request)
            assert status == 400, (path, constant, body)
            assert f"{constant.decode()} is not JSON" in json.loads(body)["error"]["message"]
    status, _, body = raw_http(mesh, "POST", "/v1/embeddings")  # a route OpenAI has, not served
    message = json.loads(body)["error"]["message"]
    assert status == 404 and message.startswith("no endpoint POST /v1/embeddings here; this "
                                                "gateway serves /v1/chat/completions, ")
    assert "/v1/responses" in message and "{" not in message
    status, headers, body = raw_http(mesh, "GET", "/v1/chat/completions")  # a POST route
    assert status == 405 and headers["Allow"] == "POST"
    assert json.loads(body)["error"]["message"] == "/v1/chat/completions does not take GET; " \
        "it takes POST"


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v1/chat/completions", {"model": "gpt-4o", "messages": ask("hi")}),
    ("POST", "/v1/responses", {"model": "gpt-4o", "input": "hi"}),
    ("GET", "/v1/models/gpt-4o", None),
])
def test_a_model_not_served_is_openais_model_not_found(mesh: Mesh, method: str, path: str,
                                                      body: dict | None) -> None:
    status, _, got = raw_http(mesh, method, path, None if body is None else json.dumps(body).encode())
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
    status, _, answer = raw_http(mesh, "POST", path, body.encode())
    error = json.loads(answer)["error"]
    assert status == 400 and "nests" in error["message"], (status, answer[:300])
    if param:
        assert error["param"].startswith(param)
    assert raw_http(mesh, "GET", "/health")[0] == 200  # and the gateway serves on


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
    status, _, answer = raw_http(mesh, "POST", path, filled.encode())
    assert 400 <= status < 500 and "error" in json.loads(answer), (status, answer[:300])


@pytest.mark.parametrize(("path", "body", "needle"), [
    # HTTP API review 2026-12-05 F2: values that are not strings where strings are looked up
    # in sets (a TypeError, aiohttp's plain-text 500), and an integer past Python's digits
    ("/v1/responses", {"model": MODEL, "input": [{"type": "message", "role": ["user"],
                                                  "content": "hi"}]},
     "input[0].role must be one of"),
    ("/v1/responses", {"model": MODEL, "input": [{"role": "user", "content": [
        {"type": ["input_text"], "text": "hi"}]}]},
     "only text parts are supported"),
    ("/v1/conversations", {"items": [{"type": "message", "role": {"a": 1}, "content": "hi"}]},
     "items[0].role must be one of"),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "hi"}], "max_tokens": '
     + b"1" * 5000 + b"}", "cannot be read"),
])
def test_values_of_the_wrong_type_are_a_400_in_openais_shape(
        mesh: Mesh, path: str, body: dict[str, object] | bytes, needle: str) -> None:
    sent = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, headers, answer = raw_http(mesh, "POST", path, sent)
    assert status == 400 and headers["Content-Type"].startswith("application/json"), answer[:300]
    assert needle in json.loads(answer)["error"]["message"]


@pytest.mark.parametrize("seed", [-1, 2**64 - 1])
def test_n_answers_from_a_seed_at_the_top_of_its_range(acme: openai.OpenAI, seed: int) -> None:
    """(HTTP API review F1) answer i gets seed + i, modulo 2^64: -1 (sent as 2^64 - 1) and
    2^64 - 1 overflowed the engine's uint64 field for the second answer, a 500."""
    out = acme.chat.completions.create(model=MODEL, messages=ask("hello"), max_tokens=4,
                                       seed=seed, n=2)
    assert [c.index for c in out.choices] == [0, 1]


@pytest.mark.parametrize(("kw", "param"), [
    ({"response_format": {"type": "json_schema", "json_schema": {
        "name": "x", "schema": {"type": "integer", "minimum": 5, "maximum": 1}}}},
     "response_format"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}}}],
      "tool_choice": "required"}, "tools"),
])
def test_a_schema_the_engine_refuses_is_a_400_naming_its_field_not_the_worker(
        acme: openai.OpenAI, kw: dict, param: str) -> None:
    """Checked by the engine, not before (a schema it cannot compile): the client is told
    the field at fault, in the engine's words, without the mesh's inside (which worker)."""
    with pytest.raises(openai.BadRequestError) as err:
        acme.chat.completions.create(model=MODEL, messages=ask("hello"), max_tokens=4, **kw)
    error = err.value.body
    assert isinstance(error, dict) and error["param"] == param, error
    assert error["message"].startswith("the model server refused the request: ")
    assert "worker" not in error["message"]
