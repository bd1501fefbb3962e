"""Models that write their calls in other families' formats, behind a real mesh: the sim
engine's model writes qwen3_coder's or glm45's per-argument tags, Kimi K2's special tokens or
gpt-oss's harmony messages (sim_engine.tool_call_format) and the gateway reads them
(gateway.tool_call_parser): the arguments typed by the tool's schema, Kimi's calls under the
ids the model numbers them by, gpt-oss's thinking apart from its calls and answers, streamed
or not, over HTTP and gRPC."""

from __future__ import annotations

import json
from collections.abc import Iterator

import jsonschema
import openai
import pytest

import ostinato
from ostinato.mesh import Mesh
from tests.conftest import http_base, running_mesh
from tests.integration.agent_checks import FORECAST_PARAMETERS

MODEL = "sim/llama-3.1-8b"
TOOLS = [{"type": "function", "function": {"name": "get_forecast", "description": "Forecast.",
                                           "parameters": FORECAST_PARAMETERS}}]
KEY = "key-formats-0001"
ASK = [{"role": "user", "content": "What is the weather in Lyon this week?"}]


@pytest.fixture(scope="module", params=["qwen3_coder", "glm45", "kimi_k2", "gpt-oss"])
def mesh(request: pytest.FixtureRequest) -> Iterator[Mesh]:
    fmt = request.param
    thinks = "gpt-oss" if fmt == "gpt-oss" else ""  # harmony: the thinking and the calls
    with running_mesh({"workers": 1, "gateway": {"tool_call_parser": fmt, "api_keys": {KEY: "t"},
                                                 "allow_anonymous": False,
                                                 "reasoning_parser": thinks,
                                                 "semantic_cache": False},
                       "sim_engine": {"tool_call_format": fmt, "zero_cost": True,
                                      "reasoning_format": thinks}}) as m:
        yield m


@pytest.fixture(scope="module")
def client(mesh: Mesh) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=http_base(mesh), api_key=KEY, max_retries=0) as c:
        yield c


def _checked(name: str, arguments: str) -> dict[str, object]:
    args = json.loads(arguments)
    assert name == "get_forecast"
    jsonschema.validate(args, FORECAST_PARAMETERS)  # days a number, as the schema says
    return args


def test_a_call_comes_back_typed_streamed_or_not(client: openai.OpenAI, mesh: Mesh) -> None:
    done = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, seed=1)
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    (call,) = choice.message.tool_calls
    args = _checked(call.function.name, call.function.arguments)
    harmony = mesh.config.gateway.reasoning_parser == "gpt-oss"
    thinking = (choice.message.model_extra or {}).get("reasoning_content")
    assert bool(thinking) is harmony and "<|" not in (thinking or "")
    kimi = mesh.config.gateway.tool_call_parser == "kimi_k2"
    assert call.id == "functions.get_forecast:0" if kimi else call.id.startswith("call_")
    streamed = list(client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS,
                                                   seed=1, stream=True))
    deltas = [c.choices[0].delta for c in streamed if c.choices]
    assert not "".join(d.content or "" for d in deltas)  # no tag leaks as content
    parts = [tc for d in deltas for tc in d.tool_calls or ()]
    assert {p.index for p in parts} == {0} and parts[0].id
    assert parts[0].id == call.id if kimi else parts[0].id.startswith("call_")
    name = "".join(p.function.name or "" for p in parts if p.function)
    arguments = "".join(p.function.arguments or "" for p in parts if p.function)
    assert _checked(name, arguments) == args


def test_kimi_numbers_calls_after_those_in_the_conversation(client: openai.OpenAI,
                                                           mesh: Mesh) -> None:
    """(the other families' calls get random ids whatever came before)"""
    history = [*ASK, {"role": "assistant", "content": "", "tool_calls": [
        {"id": f"functions.get_forecast:{i}", "type": "function",
         "function": {"name": "get_forecast", "arguments": '{"city": "Lyon", "days": 1}'}}
        for i in range(2)]}]
    history += [{"role": "tool", "tool_call_id": f"functions.get_forecast:{i}", "content": "sun"}
                for i in range(2)]
    history.append({"role": "user", "content": "And in Nice?"})
    done = client.chat.completions.create(model=MODEL, messages=history, tools=TOOLS, seed=2)
    (call,) = done.choices[0].message.tool_calls or []
    if mesh.config.gateway.tool_call_parser == "kimi_k2":
        assert call.id == "functions.get_forecast:2"
    else:
        assert call.id.startswith("call_") and len(call.id) == 29


def test_an_sdk_agent_loop_over_grpc(mesh: Mesh) -> None:
    """The model calls the tool, gets its result back in the history (in its own format, by
    the sim model's template) and answers."""
    history: list[dict] = list(ASK)
    with ostinato.Client(mesh.endpoints.gateway, api_key=KEY) as client, \
            client.program() as program:
        out = program.call(messages=history, tools=TOOLS, max_tokens=200)
        (call,) = out.tool_calls
        _checked(call.name, call.arguments)
        history += [out.message(), {"role": "tool", "tool_call_id": call.id, "content": "sun"}]
        answer = program.call(messages=history, tools=TOOLS, max_tokens=200)
    assert answer.text and not answer.tool_calls and "<|" not in answer.text


def test_a_call_cut_by_max_tokens_leaves_no_markup(client: openai.OpenAI, mesh: Mesh) -> None:
    """Cut inside its call (finish_reason length): no call, and none of its markup as text,
    streamed or not."""
    kw = {"model": MODEL, "messages": ASK, "tools": TOOLS, "seed": 1, "max_tokens": 12}
    done = client.chat.completions.create(**kw)  # type: ignore[call-overload]
    choice = done.choices[0]
    assert choice.finish_reason == "length" and not choice.message.tool_calls
    assert not choice.message.content
    chunks = list(client.chat.completions.create(**kw, stream=True))  # type: ignore[call-overload]
    assert not "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_a_call_cut_by_a_stop_string_leaves_no_markup(client: openai.OpenAI) -> None:
    """Cut inside its call by the caller's stop string (finish_reason stop; every format
    names the tool in its call): no call, and none of its markup as text (it was the
    answer: framework review F3)."""
    kw = {"model": MODEL, "messages": ASK, "tools": TOOLS, "seed": 1, "stop": ["get_forecast"]}
    done = client.chat.completions.create(**kw)  # type: ignore[call-overload]
    choice = done.choices[0]
    assert choice.finish_reason == "stop" and not choice.message.tool_calls
    assert not choice.message.content, choice.message.content
    chunks = list(client.chat.completions.create(**kw, stream=True))  # type: ignore[call-overload]
    assert not "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)


def test_an_answer_that_ends_itself_is_whole_though_stop_strings_are_named(
        client: openai.OpenAI) -> None:
    """Only a stop string that matched cuts the answer, not the end-of-sequence token that
    ends it as well with finish_reason stop (diff review: every answer of a call naming
    stop strings was read as cut, its calls and text after a tag-like string dropped)."""
    kw = {"model": MODEL, "messages": ASK, "tools": TOOLS, "seed": 3}
    plain = client.chat.completions.create(**kw).choices[0]  # type: ignore[call-overload]
    stopped = client.chat.completions.create(  # type: ignore[call-overload]
        **kw, stop=["\nObservation:"]).choices[0]
    assert plain.message.tool_calls and stopped.finish_reason == plain.finish_reason
    assert [(c.function.name, c.function.arguments) for c in stopped.message.tool_calls] == [
        (c.function.name, c.function.arguments) for c in plain.message.tool_calls]
    assert stopped.message.content == plain.message.content


def test_a_json_format_beside_the_tools_leaves_the_model_its_tools(client: openai.OpenAI,
                                                                     mesh: Mesh) -> None:
    """Tools (tool_choice auto) and a JSON response format: every family's calls have a
    structural tag (ostinato/tool_grammars.py), under which the model calls its tool, typed."""
    answer = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    done = client.chat.completions.create(
        model=MODEL, messages=ASK, tools=TOOLS, seed=1,
        response_format={"type": "json_schema", "json_schema": {"name": "a", "schema": answer}})
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    (call,) = choice.message.tool_calls or []
    _checked(call.function.name, call.function.arguments)


ANSWER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
ANSWER_FORMAT = {"type": "json_schema", "json_schema": {"name": "a", "schema": ANSWER}}


@pytest.mark.parametrize("stream", [False, True])
def test_it_calls_its_tool_then_answers_the_json(client: openai.OpenAI, stream: bool) -> None:
    """Tools beside a JSON format, over two turns: the model calls its tool under the
    structural tag, typed, and after the tool's result answers with JSON of the format
    (gpt-oss's in its final channel, its thinking apart; no markup), streamed or not."""
    kw = {"model": MODEL, "tools": TOOLS, "seed": 1, "response_format": ANSWER_FORMAT}
    done = client.chat.completions.create(messages=ASK, **kw)  # type: ignore[call-overload]
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    (call,) = choice.message.tool_calls or []
    assert call.function.name == "get_forecast"
    jsonschema.validate(json.loads(call.function.arguments), FORECAST_PARAMETERS)
    history = [*ASK, {"role": "assistant", "content": "", "tool_calls": [
        {"id": call.id, "type": "function", "function": {
            "name": "get_forecast", "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": "sun"}]
    if stream:
        chunks = list(client.chat.completions.create(messages=history, stream=True, **kw))  # type: ignore[call-overload]
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        assert not any(d.tool_calls for d in deltas)
        content = "".join(d.content or "" for d in deltas)
    else:
        answered = client.chat.completions.create(messages=history, **kw)  # type: ignore[call-overload]
        assert not answered.choices[0].message.tool_calls
        content = answered.choices[0].message.content or ""
    assert "<|" not in content
    jsonschema.validate(json.loads(content), ANSWER)
