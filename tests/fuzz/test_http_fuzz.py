"""Schemathesis over the HTTP API of a live mesh, from the OpenAPI document the gateway serves
at /openapi.json: requests the document allows (positive) and ones it forbids (negative),
for every operation. No 500, every response conforms to the document (status, content
type, headers, body schema), forbidden input is refused with a 4xx, input the document
allows is not refused as invalid (positive_data_acceptance: no 400), and afterwards nothing
is open, queued or running at the planner once the programs the fuzzer started are ended.

The few rules of a chat request that JSON Schema cannot state (the document says them in
words) are kept by the positive generator (`_beyond_the_schema`). A tool call's arguments
are drawn as any text: the gateway serves malformed ones.

Bounded and deterministic: fixed max_examples, derandomize=True, no example database."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from gateway.openai_format import BadRequest
from gateway.openapi import document
from gateway.responses_format import chat_from_responses
from ostinato.mesh import Mesh
from tests.fuzz.conftest import (
    DEFAULT_MAX_NEW_TOKENS,
    FUZZ_KEY,
    MAX_PROMPT_CHARS,
    assert_nothing_left,
)
from workers.sim.json_instance import instance
from workers.sim.json_schema import UnsupportedSchema

# Both: the document's security schemes make schemathesis send a generated x-api-key too.
AUTH = {"Authorization": f"Bearer {FUZZ_KEY}", "x-api-key": FUZZ_KEY}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]
FUZZ = settings(max_examples=60, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck), print_blob=True)


@pytest.fixture(scope="module")
def base_url(fuzz_mesh: Mesh) -> str:
    return f"http://{fuzz_mesh.endpoints.gateway_http}"


@pytest.fixture(scope="module")
def schema(base_url: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{base_url}/openapi.json")


@pytest.fixture(scope="module")
def session() -> Iterator[requests.Session]:
    with requests.Session() as s:
        yield s


def test_the_served_document_is_the_gateways(base_url: str, fuzz_mesh: Mesh) -> None:
    with urllib.request.urlopen(f"{base_url}/openapi.json", timeout=10) as resp:
        assert json.loads(resp.read()) == json.loads(json.dumps(
            document(fuzz_mesh.config.gateway)))


def _text_chars(content: object) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, list):
        return sum(len(p.get("text", "")) for p in content if isinstance(p, dict))
    return 0


def _input_chars(body: dict) -> int:
    """The text of a Responses request: its instructions and input items."""
    raw = body.get("input")
    items = [{"content": raw}] if isinstance(raw, str) else raw or []
    return len(body.get("instructions") or "") + sum(
        _text_chars(i.get("content")) + _text_chars(i.get("output")) for i in items
        if i.get("type") != "reasoning")


def _part_chars(content: object) -> int:
    if isinstance(content, list):  # refusal parts count too, as the gateway joins them
        return sum(len(p.get("refusal" if p.get("type") == "refusal" else "text") or "")
                   for p in content if isinstance(p, dict))
    return _text_chars(content)


def _beyond_the_schema(case: schemathesis.Case) -> str | None:
    """Which rule of a chat, text completion, Responses or conversation items request that
    JSON Schema cannot state `case` breaks, if any."""
    body = case.body if isinstance(case.body, dict) else {}
    if case.operation.path.startswith("/v1/conversations"):
        items = [i for i in body.get("items") or [] if i.get("type") != "reasoning"]
        chars = sum(_part_chars(i.get("content")) + _part_chars(i.get("output"))
                    + len(i.get("arguments") or "") for i in items)
        return "items too long in all" if chars > MAX_PROMPT_CHARS else None
    responses = case.operation.path == RESPONSES
    names = [t["name"] if responses else t["function"]["name"] for t in body.get("tools") or []]
    choice = body.get("tool_choice")
    ext = body.get("ostinato") or {}
    if len(set(names)) < len(names):
        return "tool names repeated"
    if any(n.endswith("\n") for n in names):  # (Python's re, which the fuzzer's checks use,
        # lets `$` match before a last newline; JSON Schema's ECMA-262 regexes do not)
        return "a tool name ending in a newline"
    params = [t.get("parameters") if responses else t["function"].get("parameters")
              for t in body.get("tools") or []]
    if not all(_admits_a_value({"allOf": [p, {"type": "object"}]}) for p in params if p):
        return "a tool's parameters admit no object"
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        listed = choice["tools"] if responses else choice["allowed_tools"]["tools"]
        chosen = [t["name"] if responses else t["function"]["name"] for t in listed]
        if set(chosen) - set(names):
            return "allowed_tools names no tool"
    elif isinstance(choice, dict) and (
            choice["name"] if responses else choice["function"]["name"]) not in names:
        return "tool_choice names no tool"
    if responses and body.get("previous_response_id") is not None:
        return "previous_response_id names no stored response"
    if ext.get("parent_call_ids") and not (case.headers or {}).get("X-Ostinato-Program"):
        return "parent_call_ids without X-Ostinato-Program"
    if ext.get("call_id") is not None and ext["call_id"] in ext.get("parent_call_ids", []):
        return "a call its own parent"
    if _answers_no_call(body, responses):
        return "a tool result answers no earlier tool call"
    if _leaves_a_call_unanswered(body, responses):
        return "a tool call left unanswered"
    tools = len(json.dumps(body.get("tools") or []))  # (the schemas count: more than the
    # gateway counts, so this only ever skips a case it would serve)
    if sum(_text_chars(m.get("content")) for m in body.get("messages", [])) + tools \
            > MAX_PROMPT_CHARS:
        return "messages and tools too long in all"
    most = next((body[n] for n in (("max_output_tokens",) if responses else (
        "max_completion_tokens", "max_tokens")) if body.get(n) is not None),
        DEFAULT_MAX_NEW_TOKENS)
    if (body.get("min_tokens") or 0) > most:
        return "min_tokens over the max tokens"
    if responses and _input_chars(body) + tools > MAX_PROMPT_CHARS:
        return "instructions and input too long in all"
    if responses:
        fmt = (body.get("text") or {}).get("format") or {}
        schema = fmt.get("schema", True)
    else:
        fmt = body.get("response_format") or {}
        schema = (fmt.get("json_schema") or {}).get("schema", True)
    if fmt.get("type") == "json_schema" and not _admits_a_value(schema):
        return "response_format's schema admits no value"
    return None


def _answers_no_call(body: dict, responses: bool) -> bool:
    """Whether a tool message (a function_call_output) names no tool call (function_call)
    that comes before it."""
    called: set[str] = set()
    if responses:
        items = body.get("input") if isinstance(body.get("input"), list) else []
        for item in items:
            if item.get("type") == "function_call_output" and item.get("call_id") not in called:
                return True
            if item.get("type") == "function_call" and item.get("call_id"):
                called.add(item["call_id"])
        return False
    for m in body.get("messages") or []:
        if m.get("role") == "tool" and m.get("tool_call_id") not in called:
            return True
        called.update(c["id"] for c in m.get("tool_calls") or [] if c.get("id"))
    return False


def _leaves_a_call_unanswered(body: dict, responses: bool) -> bool:
    """Whether the conversation goes on (or ends) before a tool message answers each tool
    call of an assistant message (a tool message naming none answers the earliest)."""
    if responses:
        try:
            body = chat_from_responses(body)
        except BadRequest:
            return False
    waiting: dict[str, None] = {}
    for m in body.get("messages") or []:
        if m.get("role") == "tool":
            waiting.pop(m.get("tool_call_id") or next(iter(waiting), ""), None)
        elif waiting:
            return True
        waiting.update((c["id"], None) for c in m.get("tool_calls") or [] if c.get("id"))
    return bool(waiting)


def _admits_a_value(schema: object) -> bool:
    """Whether the engine can answer to `schema` (the sim engine builds a value for it)."""
    try:
        instance(schema, seed=0)  # type: ignore[arg-type]
    except UnsupportedSchema:
        return False
    return True


def _end_programs(base_url: str, session: requests.Session, program_ids: set[str]) -> None:
    for program_id in program_ids:
        resp = session.post(f"{base_url}/v1/programs/{quote(program_id, safe='')}/end",
                            headers=AUTH, timeout=30)
        assert resp.status_code == 200, resp.text


def _program_of(response: schemathesis.Response) -> str | None:
    """The program a successful response started or ran in (the fuzzer ends it): its header
    names it (the fuzzer reads 20 events of a stream at most, before any event naming it:
    a chat stream of n = 7 answers has 7 role chunks and 13 deltas first), its body too."""
    if response.status_code != 200:
        return None
    named = response.headers.get("x-ostinato-program", [""])[0]
    if named:
        return named
    content_type = response.headers.get("content-type", [""])[0]
    if content_type.startswith("text/event-stream"):
        events = [json.loads(line[6:]) for line in response.text.splitlines()
                  if line.startswith("data: {")]
        return next((e["ostinato"]["program_id"] for e in (
            *events, *(e["response"] for e in events if "response" in e)) if "ostinato" in e),
            None)
    if not content_type.startswith("application/json"):
        return None
    body = response.json()
    return body.get("program_id") or (body.get("ostinato") or {}).get("program_id")


CHAT = "/v1/chat/completions"
RESPONSES = "/v1/responses"


@pytest.mark.parametrize(("mode", "path"), [
    (GenerationMode.POSITIVE, None), (GenerationMode.NEGATIVE, None),
    (GenerationMode.POSITIVE, CHAT),  # more of the requests agents send: all served
    (GenerationMode.POSITIVE, RESPONSES), (GenerationMode.NEGATIVE, RESPONSES),
], ids=["positive", "negative", "positive-chat", "positive-responses", "negative-responses"])
def test_every_operation(schema: schemathesis.BaseSchema, base_url: str, fuzz_mesh: Mesh,
                         session: requests.Session, mode: GenerationMode,
                         path: str | None) -> None:
    started: set[str] = set()
    positive = mode == GenerationMode.POSITIVE
    checks = [*CHECKS, positive_data_acceptance if positive else negative_data_rejection]
    scope = schema if path is None else schema[path]["POST"]

    @FUZZ
    @given(case=scope.as_strategy(generation_mode=mode))
    def check(case: schemathesis.Case) -> None:
        if positive and (case.operation.path in (CHAT, RESPONSES, "/v1/completions")
                         or case.operation.path.startswith("/v1/conversations")):
            assume(_beyond_the_schema(case) is None)
        response = case.call(base_url=base_url, session=session, headers=AUTH, timeout=30)
        program = _program_of(response)
        if program:
            started.add(program)
        case.validate_response(response, checks=checks)

    try:
        check()
    finally:
        _end_programs(base_url, session, started)
    # Still serving, and nothing of the fuzzing left behind at the planner.
    ok = session.post(f"{base_url}{CHAT}", headers=AUTH, timeout=30, json={
        "messages": [{"role": "user", "content": "still there?"}], "max_tokens": 2})
    assert ok.status_code == 200, ok.text
    _end_programs(base_url, session, {ok.json()["ostinato"]["program_id"]})
    assert_nothing_left(fuzz_mesh)


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/programs", b'{"program_id": "\\ud800"}'),
    ("/v1/chat/completions", b'{"messages": [{"role": "user", "content": "x\\udfff"}]}'),
])
def test_a_lone_surrogate_is_refused(base_url: str, session: requests.Session, path: str,
                                     body: bytes) -> None:
    """JSON can escape a lone surrogate, which no protobuf string holds (it was a 500)."""
    resp = session.post(f"{base_url}{path}", data=body, timeout=30,
                        headers={**AUTH, "Content-Type": "application/json"})
    assert resp.status_code == 400 and "surrogate" in resp.json()["error"]["message"]


def test_a_program_whose_id_has_braces_ends(base_url: str, session: requests.Session) -> None:
    """The end route takes any id without '/' (aiohttp's default refused '{' and '}')."""
    resp = session.post(f"{base_url}/v1/programs", json={"program_id": "{p}"}, headers=AUTH,
                        timeout=30)
    assert resp.status_code == 200, resp.text
    _end_programs(base_url, session, {"{p}"})
