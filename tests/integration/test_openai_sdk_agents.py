"""Agents on the plain `openai` SDK pointed at the gateway's OpenAI-compatible API: a
hand-written tool-calling loop, whole and streamed, until the agent answers in text; a
structured (JSON schema) answer; a required tool whose parameters nest a model; and what
frameworks check first, the served model. Against the live mesh (real processes, simulated
engines), each test under its own tenant; as for the frameworks (test_agent_frameworks.py),
a run's calls are read back from the planner's records as one chained program.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import openai
import pytest
import redis

from tests.integration.agent_checks import (
    FORECAST_PARAMETERS,
    MAX_TURNS,
    MODEL,
    QUESTION,
    Forecasts,
    assert_one_chained_program,
    key,
)

FORECAST_TOOL: dict[str, Any] = {"type": "function", "function": {
    "name": "get_forecast", "description": "The weather forecast for a city, day by day.",
    "parameters": FORECAST_PARAMETERS}}


def _ostinato(obj: Any) -> dict[str, Any]:
    ext = (obj.model_extra or {}).get("ostinato")
    assert isinstance(ext, dict), f"no ostinato object in {obj!r}"
    return ext


def test_openai_sdk_agent_loop(agent_url: str, agent_store: redis.Redis) -> None:
    """A hand-written loop: tool calls answered with `tool` messages until a text answer; the
    responses' `ostinato` objects agree with the planner's records."""
    forecasts = Forecasts()
    messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
    seen: list[dict[str, Any]] = []
    with openai.OpenAI(base_url=agent_url, api_key=key("sdk-tools"), max_retries=0) as client:
        for _ in range(MAX_TURNS):
            out = client.chat.completions.create(model=MODEL, messages=messages,  # type: ignore[arg-type]
                                                 tools=[FORECAST_TOOL])  # type: ignore[list-item]
            seen.append(_ostinato(out))
            reply = out.choices[0].message
            messages.append(reply.model_dump(exclude_none=True))
            if not reply.tool_calls:
                break
            assert out.choices[0].finish_reason == "tool_calls"
            for tc in reply.tool_calls:
                assert tc.type == "function" and tc.function.name == "get_forecast"
                args = json.loads(tc.function.arguments)
                jsonschema.validate(args, FORECAST_PARAMETERS)
                messages.append({"role": "tool", "tool_call_id": tc.id, "content": forecasts(**args)})
    assert reply.content and not reply.tool_calls, "the agent never answered in text"
    forecasts.check_called()
    chain = assert_one_chained_program(agent_store, "sdk-tools", len(seen))
    assert len(chain) >= 2
    assert [s["call_id"] for s in seen] == chain
    assert len({s["program_id"] for s in seen}) == 1
    assert [s["parent_call_ids"] for s in seen] == [[], *([c] for c in chain[:-1])]


def test_openai_sdk_streamed_agent_loop(agent_url: str, agent_store: redis.Redis) -> None:
    """The same loop streamed: tool calls rebuilt from OpenAI's deltas, by index."""
    forecasts = Forecasts()
    messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
    seen: list[dict[str, Any]] = []
    with openai.OpenAI(base_url=agent_url, api_key=key("sdk-stream"), max_retries=0) as client:
        for _ in range(MAX_TURNS):
            content = ""
            calls: dict[int, dict[str, str]] = {}  # tool-call deltas, accumulated by index
            finish: str | None = None
            for chunk in client.chat.completions.create(
                    model=MODEL, messages=messages, tools=[FORECAST_TOOL],  # type: ignore[arg-type,list-item]
                    stream=True):
                if "ostinato" in (chunk.model_extra or {}):
                    seen.append(_ostinato(chunk))
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                content += choice.delta.content or ""
                finish = choice.finish_reason or finish
                for d in choice.delta.tool_calls or []:
                    acc = calls.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
                    acc["id"] += d.id or ""
                    if d.function is not None:
                        acc["name"] += d.function.name or ""
                        acc["arguments"] += d.function.arguments or ""
            if not calls:
                assert finish == "stop"
                break
            assert finish == "tool_calls" and sorted(calls) == list(range(len(calls)))
            messages.append({"role": "assistant", "content": content or None, "tool_calls": [
                {"id": c["id"], "type": "function",
                 "function": {"name": c["name"], "arguments": c["arguments"]}}
                for _, c in sorted(calls.items())]})
            for c in calls.values():
                assert c["id"] and c["name"] == "get_forecast"
                args = json.loads(c["arguments"])
                jsonschema.validate(args, FORECAST_PARAMETERS)
                messages.append({"role": "tool", "tool_call_id": c["id"], "content": forecasts(**args)})
    assert content and not calls, "the agent never answered in text"
    forecasts.check_called()
    chain = assert_one_chained_program(agent_store, "sdk-stream", len(seen))
    assert len(chain) >= 2 and [s["call_id"] for s in seen] == chain


def test_openai_sdk_json_schema_answer(agent_url: str, agent_store: redis.Redis) -> None:
    """Structured output: the content is an instance of the requested schema."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {"city": {"type": "string"},
                       "days": {"type": "array", "minItems": 1, "maxItems": 3, "items": {
                           "type": "object",
                           "properties": {"summary": {"type": "string"},
                                          "high_c": {"type": "integer"}},
                           "required": ["summary", "high_c"], "additionalProperties": False}}},
        "required": ["city", "days"], "additionalProperties": False,
    }
    with openai.OpenAI(base_url=agent_url, api_key=key("sdk-schema"), max_retries=0) as client:
        out = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Lisbon's forecast, as JSON."}],
            response_format={"type": "json_schema",
                             "json_schema": {"name": "forecast", "schema": schema, "strict": True}})
    content = out.choices[0].message.content
    assert content and out.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(content), schema)
    assert assert_one_chained_program(agent_store, "sdk-schema", 1) == [_ostinato(out)["call_id"]]


def test_a_required_tool_whose_parameters_nest_a_model(agent_url: str) -> None:
    """pydantic writes a nested model as a "$ref" into the parameters' own "$defs"; with
    tool_choice required (or a named tool) the call must still be made, and its arguments
    be an instance of the tool's parameters (the review saw a 400: "$ref does not resolve")."""
    from pydantic import BaseModel

    class Place(BaseModel):
        city: str
        country: str

    class Lookup(BaseModel):
        place: Place
        days: int

    tool = openai.pydantic_function_tool(Lookup, name="lookup")
    parameters = tool["function"]["parameters"]  # type: ignore[index]
    assert "$defs" in parameters
    with openai.OpenAI(base_url=agent_url, api_key=key("sdk-tools"), max_retries=0) as client:
        for choice in ("required", {"type": "function", "function": {"name": "lookup"}}):
            out = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Weather in Lisbon?"}],
                tools=[tool], tool_choice=choice)  # type: ignore[arg-type]
            calls = out.choices[0].message.tool_calls
            assert calls and out.choices[0].finish_reason == "tool_calls"
            for c in calls:
                assert c.function.name == "lookup"  # type: ignore[union-attr]
                jsonschema.validate(json.loads(c.function.arguments), parameters)  # type: ignore[union-attr]


def test_the_served_model_and_no_other(agent_url: str) -> None:
    """What frameworks check first: /v1/models lists the model; another model is a 404."""
    with openai.OpenAI(base_url=agent_url, api_key=key("models"), max_retries=0) as client:
        assert [m.id for m in client.models.list()] == [MODEL]
        assert client.models.retrieve(MODEL).id == MODEL  # GET /v1/models/{model}: a "/" in it
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("gpt-4o")
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])
