"""A reasoning model's constrained answers through the mesh: the gateway asks the engine to
hold the grammar until the thinking ends (require_reasoning, as SGLang's server does for a
thinking turn), the sim engine thinks free and then writes what the grammar admits (as SGLang
launched with --reasoning-parser: workers/sim/reasoning_gate.py), and the gateway hands the
thinking back as reasoning_content and reads the JSON, or the calls, from the answer only.
For Qwen3 (the model opens its thinking) and DeepSeek-R1 (the template opens it); with the
thinking switched off the grammar holds from the first token and there is no thinking."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import openai
import pytest

from ostinato.mesh import Mesh
from tests.integration.agent_checks import FORECAST_PARAMETERS
from tests.integration.conftest import thinking_mesh

MODEL = "sim/llama-3.1-8b"
KEY = "key-thinker-0002"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"},
                                           "days": {"type": "integer", "minimum": 1}},
          "required": ["city", "days"], "additionalProperties": False}
FORMAT = {"type": "json_schema", "json_schema": {"name": "trip", "schema": SCHEMA}}
TOOLS = [{"type": "function", "function": {"name": "get_forecast", "description": "Forecast.",
                                           "parameters": FORECAST_PARAMETERS}}]
ASK = [{"role": "user", "content": "Plan a trip to Porto."}]
REASONING_END = "</think>"
# each family's switch that turns the thinking off, as its template reads it
SWITCH_OFF = {"qwen3": {"enable_thinking": False}, "deepseek-r1": {"thinking": False}}


@pytest.fixture(scope="module", params=["qwen3", "deepseek-r1"])
def mesh(request: pytest.FixtureRequest) -> Iterator[Mesh]:
    fmt = request.param
    with thinking_mesh(fmt, KEY, "off") as m:
        yield m


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0) as c:
        yield c


def _fmt(mesh: Mesh) -> str:
    return str(mesh.config.gateway.reasoning_parser)


def _thinking(message: Any) -> str:
    return str((message.model_extra or {}).get("reasoning_content") or "")


@pytest.mark.parametrize("stream", [False, True])
def test_a_json_answer_comes_after_the_thinking(client: openai.OpenAI, stream: bool) -> None:
    kw: dict[str, Any] = {"model": MODEL, "messages": ASK, "max_tokens": 400, "seed": 5,
                          "response_format": FORMAT}
    if stream:
        thinking, content = "", ""
        for chunk in client.chat.completions.create(**kw, stream=True):
            if chunk.choices:
                thinking += _thinking(chunk.choices[0].delta)
                content += chunk.choices[0].delta.content or ""
    else:
        message = client.chat.completions.create(**kw).choices[0].message
        thinking, content = _thinking(message), message.content or ""
    assert thinking and "think>" not in thinking
    jsonschema.validate(json.loads(content), SCHEMA)  # the answer is the JSON, whole


def test_required_tool_calls_come_after_the_thinking(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, seed=5,
                                         tool_choice="required", max_tokens=400)  # type: ignore[arg-type]
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    assert choice.message.tool_calls[0].function.name == "get_forecast"
    jsonschema.validate(json.loads(choice.message.tool_calls[0].function.arguments),
                        FORECAST_PARAMETERS)
    assert _thinking(choice.message) and not choice.message.content


@pytest.mark.parametrize("stream", [False, True])
def test_required_calls_are_read_after_thinking_kept_in_the_text(client: openai.OpenAI,
                                                                 stream: bool) -> None:
    """separate_reasoning false: the output is the thinking, then the calls' array
    (ostinato/calls_after_thinking.py); the thinking is the content."""
    kw: dict[str, Any] = {"model": MODEL, "messages": ASK, "tools": TOOLS, "seed": 5,
                          "tool_choice": "required", "max_tokens": 400,
                          "extra_body": {"separate_reasoning": False}}
    if stream:
        content, names, finish = "", [], None
        for chunk in client.chat.completions.create(**kw, stream=True):
            if chunk.choices:
                delta = chunk.choices[0].delta
                content += delta.content or ""
                names += [c.function.name for c in delta.tool_calls or () if c.function
                          and c.function.name]
                finish = chunk.choices[0].finish_reason or finish
    else:
        choice = client.chat.completions.create(**kw).choices[0]
        content, finish = choice.message.content or "", choice.finish_reason
        names = [c.function.name for c in choice.message.tool_calls or ()]  # type: ignore[union-attr]
    assert finish == "tool_calls" and names and set(names) == {"get_forecast"}
    assert REASONING_END in content and "[" not in content


def test_tools_with_a_json_format_call_after_the_thinking(client: openai.OpenAI) -> None:
    """Tools offered with a JSON format: the answer-or-calls grammar (a structural tag),
    also held until the thinking ends; the model calls its tool."""
    out = client.chat.completions.create(model=MODEL, messages=ASK, tools=TOOLS, seed=5,  # type: ignore[arg-type]
                                         response_format=FORMAT, max_tokens=400)  # type: ignore[arg-type]
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    assert _thinking(choice.message) and not choice.message.content


def test_with_the_thinking_off_the_json_comes_at_once(client: openai.OpenAI,
                                                       mesh: Mesh) -> None:
    message = client.chat.completions.create(
        model=MODEL, messages=ASK, max_tokens=400, seed=5, response_format=FORMAT,  # type: ignore[arg-type]
        extra_body={"chat_template_kwargs": SWITCH_OFF[_fmt(mesh)]}).choices[0].message
    assert not _thinking(message)
    jsonschema.validate(json.loads(message.content or ""), SCHEMA)
