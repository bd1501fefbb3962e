"""gpt-oss's constrained answers through a sim mesh: the model always thinks first (its
template has no switch; SGLang's server reads every gpt-oss chat turn as thinking first), so
effort `none` or `enable_thinking: false` still gives an analysis and then the JSON, or the
call (it was free text: the sim's template closed the thinking, and the gate, told the
model thinks first, never saw the thinking end)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import jsonschema
import openai
import pytest

from ostinato.mesh import Mesh
from tests.conftest import http_base, running_mesh

MODEL = "sim/llama-3.1-8b"
KEY = "key-harmony-0003"
SCHEMA = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
          "additionalProperties": False}
FORMAT = {"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}
TOOLS = [{"type": "function", "function": {"name": "get_forecast", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
THINKING_OFF = [{}, {"reasoning_effort": "none"},
                {"chat_template_kwargs": {"enable_thinking": False}}]


@pytest.fixture(scope="module")
def mesh() -> Iterator[Mesh]:
    with running_mesh({"workers": 1,
                       "gateway": {"api_keys": {KEY: "t"}, "allow_anonymous": False,
                                   "reasoning_parser": "gpt-oss", "tool_call_parser": "gpt-oss",
                                   "cache_mode": "off", "semantic_cache": False},
                       "sim_engine": {"reasoning_format": "gpt-oss",
                                      "tool_call_format": "gpt-oss", "zero_cost": True}}) as m:
        yield m


@pytest.fixture(scope="module")
def client(mesh: Mesh) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=http_base(mesh), api_key=KEY, max_retries=0) as c:
        yield c


def _thinking(message: Any) -> str:
    return str((message.model_extra or {}).get("reasoning_content") or "")


@pytest.mark.parametrize("extra", THINKING_OFF)
def test_a_json_answer_comes_after_the_analysis(client: openai.OpenAI,
                                                extra: dict[str, Any]) -> None:
    message = client.chat.completions.create(
        model=MODEL, seed=5, max_tokens=300, response_format=FORMAT, extra_body=extra,
        messages=[{"role": "user", "content": "Plan a trip to Porto."}]).choices[0].message
    assert _thinking(message)
    jsonschema.validate(json.loads(message.content or ""), SCHEMA)


@pytest.mark.parametrize("extra", THINKING_OFF)
def test_a_required_call_comes_after_the_analysis(client: openai.OpenAI,
                                                  extra: dict[str, Any]) -> None:
    choice = client.chat.completions.create(
        model=MODEL, seed=5, max_tokens=300, tools=TOOLS, tool_choice="required",
        extra_body=extra, messages=[{"role": "user", "content": "Weather in Porto?"}]).choices[0]
    assert choice.finish_reason == "tool_calls" and not choice.message.content
    calls = choice.message.tool_calls or []
    assert calls  # (one or more: parallel calls are allowed)
    for call in calls:
        assert call.function.name == "get_forecast"  # type: ignore[union-attr]
        jsonschema.validate(json.loads(call.function.arguments),  # type: ignore[union-attr]
                            TOOLS[0]["function"]["parameters"])
