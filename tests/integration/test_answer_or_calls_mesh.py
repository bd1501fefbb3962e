"""Tools (tool_choice auto) beside a JSON response format, behind a real mesh, for the
families whose grammar writes special tokens (ostinato/tool_grammars.py): the sim engine's
Kimi K2 and gpt-oss models call their tool under the structural tag, typed, and after the
tool's result answer with JSON of the format (gpt-oss's in its final channel, its thinking
apart), streamed or not."""

from __future__ import annotations

import json
from collections.abc import Iterator

import jsonschema
import openai
import pytest

from ostinato.mesh import Mesh
from tests.conftest import http_base, running_mesh
from tests.integration.agent_checks import FORECAST_PARAMETERS

MODEL = "sim/llama-3.1-8b"
TOOLS = [{"type": "function", "function": {"name": "get_forecast", "description": "Forecast.",
                                           "parameters": FORECAST_PARAMETERS}}]
KEY = "key-answer-or-calls-0001"
ASK = [{"role": "user", "content": "What is the weather in Lyon this week?"}]
ANSWER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
FORMAT = {"type": "json_schema", "json_schema": {"name": "a", "schema": ANSWER}}


@pytest.fixture(scope="module", params=["kimi_k2", "gpt-oss"])
def client(request: pytest.FixtureRequest) -> Iterator[openai.OpenAI]:
    fmt = request.param
    thinks = "gpt-oss" if fmt == "gpt-oss" else ""
    mesh: Mesh
    with running_mesh({"workers": 1, "gateway": {"tool_call_parser": fmt, "api_keys": {KEY: "t"},
                                                 "allow_anonymous": False,
                                                 "reasoning_parser": thinks},
                       "sim_engine": {"tool_call_format": fmt, "zero_cost": True,
                                      "reasoning_format": thinks}}) as mesh, \
            openai.OpenAI(base_url=http_base(mesh), api_key=KEY, max_retries=0) as c:
        yield c


@pytest.mark.parametrize("stream", [False, True])
def test_it_calls_its_tool_then_answers_the_json(client: openai.OpenAI, stream: bool) -> None:
    kw = {"model": MODEL, "tools": TOOLS, "seed": 1, "response_format": FORMAT}
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
