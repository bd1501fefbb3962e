"""A reasoning model behind the mesh (gateway.reasoning_parser; the sim engine's model thinks
in Qwen3's format): its thinking comes apart from its answer on every front end (chat
completions streamed or not, the Responses API, the SDK), tool calls are read from the
answer after it, a cached answer keeps it, chat_template_kwargs and reasoning_effort turn it
off, SGLang's separate_reasoning and stream_reasoning shape it, and an agent framework's loop
(asking for an effort and a summary) runs through it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import requests

import ostinato
from ostinato.mesh import Mesh
from tests.integration.agent_checks import FORECAST_PARAMETERS, City, Days, Forecasts
from tests.integration.conftest import thinking_mesh

MODEL = "sim/llama-3.1-8b"
KEY = "key-thinker-0001"
TOOLS = [{"type": "function", "function": {"name": "get_forecast", "description": "Forecast.",
                                           "parameters": FORECAST_PARAMETERS}}]


@pytest.fixture(scope="module")
def mesh() -> Iterator[Mesh]:
    with thinking_mesh("qwen3", KEY, "exact") as m:
        yield m


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0) as c:
        yield c


def ask(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_chat_answers_carry_the_thinking_apart_streamed_or_not(client: openai.OpenAI) -> None:
    kw: dict[str, Any] = {"model": MODEL, "messages": ask("Why is the sky blue?"),
                          "max_tokens": 200, "seed": 3}
    done = client.chat.completions.create(**kw)
    whole = done.choices[0].message
    thinking = (whole.model_extra or {})["reasoning_content"]
    assert done.usage is not None and done.usage.completion_tokens_details is not None
    # the thinking's tokens, as the gateway counts them: words and spaces, tags left out
    assert 6 <= done.usage.completion_tokens_details.reasoning_tokens < done.usage.completion_tokens
    assert thinking and "<think>" not in thinking and "</think>" not in thinking
    assert whole.content and "think>" not in whole.content
    pieces: list[tuple[str, str]] = []
    for chunk in client.chat.completions.create(**kw, stream=True):
        if chunk.choices:
            delta = chunk.choices[0].delta
            pieces.append(((delta.model_extra or {}).get("reasoning_content") or "",
                           delta.content or ""))
    assert "".join(t for t, _ in pieces) == thinking
    assert "".join(c for _, c in pieces) == whole.content
    first_answer = next(i for i, (_, c) in enumerate(pieces) if c)
    assert all(not t for t, _ in pieces[first_answer + 1:])  # the thinking came first


@pytest.mark.parametrize("stream", [False, True])
def test_logprobs_are_the_answers_alone(client: openai.OpenAI, stream: bool) -> None:
    """`logprobs.content` holds the content's tokens, as OpenAI's: not the thinking's (a
    walkthrough found `<think>` and the thinking there, streamed and not)."""
    kw: dict[str, Any] = {"model": MODEL, "messages": ask("Why is the sky blue?"),
                          "max_tokens": 200, "seed": 3, "logprobs": True}
    if not stream:
        choice = client.chat.completions.create(**kw).choices[0]
        content, logprobs = choice.message.content, choice.logprobs
        assert logprobs is not None and logprobs.content
        tokens = [t.token for t in logprobs.content]
    else:
        content, tokens = "", []
        for chunk in client.chat.completions.create(**kw, stream=True):
            if chunk.choices:
                content += chunk.choices[0].delta.content or ""
                if chunk.choices[0].logprobs and chunk.choices[0].logprobs.content:
                    tokens += [t.token for t in chunk.choices[0].logprobs.content]
    assert content and "".join(tokens).strip() == content.strip()
    assert not any("think>" in token for token in tokens)


def test_the_template_can_turn_the_thinking_off(client: openai.OpenAI, mesh: Mesh) -> None:
    """chat_template_kwargs {"enable_thinking": false}, as Qwen3's template reads it (the sim
    model's closes an empty thinking in the prompt, and the model answers at once)."""
    quiet = client.chat.completions.create(
        model=MODEL, messages=ask("Why is the sky blue?"), max_tokens=200, seed=3,
        extra_body={"chat_template_kwargs": {"enable_thinking": False}}).choices[0].message
    assert quiet.content and not (quiet.model_extra or {}).get("reasoning_content")
    with ostinato.Client(mesh.endpoints.gateway, api_key=KEY) as sdk, sdk.program() as program:
        out = program.call(messages=ask("Hi"), max_tokens=100,
                           chat_template_kwargs={"enable_thinking": False})
        assert out.text and out.reasoning == "" and out.usage.reasoning_tokens == 0
    with pytest.raises(openai.BadRequestError, match="cannot set tools"):
        client.chat.completions.create(model=MODEL, messages=ask("x"),
                                       extra_body={"chat_template_kwargs": {"tools": []}})


def test_reasoning_effort_and_sglangs_reasoning_switches(client: openai.OpenAI,
                                                         mesh: Mesh) -> None:
    """reasoning_effort "none" turns the thinking off (the template's enable_thinking, as
    SGLang's server sets it); SGLang's separate_reasoning false leaves it in the content,
    and stream_reasoning false sends it whole."""
    kw: dict[str, Any] = {"model": MODEL, "messages": ask("Why is the sky blue?"),
                          "max_tokens": 200, "seed": 5}
    plain = client.chat.completions.create(**kw).choices[0].message
    thinking = (plain.model_extra or {})["reasoning_content"]
    high = client.chat.completions.create(**kw, reasoning_effort="high").choices[0].message
    assert (high.model_extra or {})["reasoning_content"] and high.content
    quiet = client.chat.completions.create(**kw, reasoning_effort="none").choices[0].message
    assert quiet.content and not (quiet.model_extra or {}).get("reasoning_content")
    inline = client.chat.completions.create(
        **kw, extra_body={"separate_reasoning": False}).choices[0].message
    assert not (inline.model_extra or {}).get("reasoning_content")
    assert inline.content and "</think>" in inline.content  # as the model wrote it
    assert thinking in inline.content and str(plain.content) in inline.content
    pieces: list[tuple[str, str]] = []
    for chunk in client.chat.completions.create(**kw, stream=True,
                                                extra_body={"stream_reasoning": False}):
        if chunk.choices:
            delta = chunk.choices[0].delta
            pieces.append(((delta.model_extra or {}).get("reasoning_content") or "",
                           delta.content or ""))
    assert [t for t, _ in pieces if t] == [thinking]  # one piece, whole
    assert "".join(c for _, c in pieces) == plain.content
    # cut while thinking (max_tokens): what was held goes at the end
    cut = {**kw, "max_tokens": 4}
    cut_thinking = (client.chat.completions.create(**cut).choices[0].message.model_extra
                    or {})["reasoning_content"]
    held = [(chunk.choices[0].delta.model_extra or {}).get("reasoning_content")
            for chunk in client.chat.completions.create(
                **cut, stream=True, extra_body={"stream_reasoning": False}) if chunk.choices]
    assert cut_thinking and [t for t in held if t] == [cut_thinking]
    with pytest.raises(openai.BadRequestError, match="reasoning_effort must be one of"):
        client.chat.completions.create(model=MODEL, messages=ask("x"),
                                       reasoning_effort="extreme")  # type: ignore[arg-type]
    with ostinato.Client(mesh.endpoints.gateway, api_key=KEY) as sdk, sdk.program() as program:
        out = program.call(messages=ask("Hi"), max_tokens=100, reasoning_effort="none")
        assert out.text and out.reasoning == ""
        inline_out = program.call(messages=ask("Hi"), max_tokens=100, reasoning_in_text=True)
        assert "</think>" in inline_out.text and inline_out.reasoning == ""


def test_tool_calls_are_read_from_the_answer_after_the_thinking(client: openai.OpenAI) -> None:
    out = client.chat.completions.create(model=MODEL, messages=ask("Weather in Porto?"),
                                         tools=TOOLS, max_tokens=300)
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls" and choice.message.tool_calls
    assert json.loads(choice.message.tool_calls[0].function.arguments)["city"]
    assert (choice.message.model_extra or {})["reasoning_content"]
    assert not choice.message.content  # the call was all of the answer


def test_a_cached_answer_keeps_its_thinking(client: openai.OpenAI) -> None:
    kw: dict[str, Any] = {"model": MODEL, "messages": ask("Name a prime."), "max_tokens": 60,
                          "temperature": 0}
    first = client.chat.completions.with_raw_response.create(**kw)
    again = client.chat.completions.with_raw_response.create(**kw)
    assert first.headers["X-Ostinato-Cache-Hit"] == "miss"
    assert again.headers["X-Ostinato-Cache-Hit"] == "exact"
    a, b = first.parse().choices[0].message, again.parse().choices[0].message
    assert (a.model_extra or {})["reasoning_content"] == (b.model_extra or {})["reasoning_content"]
    assert a.content == b.content


def test_the_responses_api_gives_a_reasoning_item(client: openai.OpenAI, base_url: str) -> None:
    done = client.responses.create(model=MODEL, input="Plan a picnic.", max_output_tokens=200,
                                   store=False)
    kinds = [item.type for item in done.output]
    assert kinds == ["reasoning", "message"]
    thought = done.output[0].content[0].text  # type: ignore[union-attr]
    assert done.usage is not None and done.usage.output_tokens_details.reasoning_tokens >= 6
    assert thought and "think>" not in thought and "think>" not in done.output_text
    events = list(client.responses.create(model=MODEL, input="Plan a picnic.",
                                          max_output_tokens=200, store=False, stream=True))
    names = [e.type for e in events]
    assert names.index("response.reasoning_text.delta") < names.index("response.output_text.delta")
    streamed = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    final = events[-1].response  # type: ignore[union-attr]
    assert [i.type for i in final.output] == ["reasoning", "message"]
    assert final.output[0].content[0].text == streamed == thought  # same prompt, same thinking
    quiet = client.responses.create(model=MODEL, input="Plan a picnic.", store=False,
                                    max_output_tokens=200,
                                    reasoning={"effort": "none", "summary": "auto"})
    assert [i.type for i in quiet.output] == ["message"] and quiet.output_text
    assert quiet.reasoning is not None and quiet.reasoning.effort == "none"
    # the document the gateway serves describes the reasoning item
    doc = requests.get(base_url.removesuffix("/v1") + "/openapi.json", timeout=10).json()
    items = doc["components"]["schemas"]["Response"]["properties"]["output"]["items"]["oneOf"]
    assert any(i["properties"]["type"].get("const") == "reasoning" for i in items)


def test_the_sdk_gives_the_thinking(mesh: Mesh) -> None:
    with ostinato.Client(mesh.endpoints.gateway, api_key=KEY) as sdk, sdk.program() as program:
        out = program.call(messages=ask("Summarize the plan."), max_tokens=200)
        assert out.reasoning and out.text and "think>" not in out.text + out.reasoning
        assert 0 < out.usage.reasoning_tokens < out.usage.completion_tokens
        stream = program.stream(messages=ask("And then?"), max_tokens=200)
        text = "".join(stream)
        assert stream.result is not None and text == stream.text == stream.result.text
        assert stream.reasoning == stream.result.reasoning and stream.reasoning


def test_a_programs_summary_counts_the_thinking(mesh: Mesh, base_url: str) -> None:
    """The gateway counts the thinking's tokens (the worker cannot): its completion report
    carries them, and a program's summary adds them up, over gRPC and HTTP alike."""
    with ostinato.Client(mesh.endpoints.gateway, api_key=KEY) as sdk:
        with sdk.program() as program:
            outs = [program.call(messages=ask(q), max_tokens=200) for q in ("One?", "Two?")]
        assert program.summary is not None
        usage = program.summary.usage
        assert usage.reasoning_tokens == sum(o.usage.reasoning_tokens for o in outs) > 0
        assert usage.completion_tokens == sum(o.usage.completion_tokens for o in outs)
    headers = {"Authorization": f"Bearer {KEY}"}
    started = requests.post(f"{base_url}/programs", json={}, headers=headers, timeout=10)
    program_id = started.json()["program_id"]
    answer = requests.post(f"{base_url}/chat/completions", timeout=30, headers={
        **headers, "X-Ostinato-Program": program_id}, json={
        "model": MODEL, "messages": ask("Three?"), "max_tokens": 200}).json()
    ended = requests.post(f"{base_url}/programs/{program_id}/end", headers=headers,
                          timeout=10).json()
    thought = answer["usage"]["completion_tokens_details"]["reasoning_tokens"]
    assert ended["usage"]["reasoning_tokens"] == thought > 0


async def _forecaster_run(base_url: str, api: str, settings: dict[str, Any],
                          question: str) -> Any:
    """The Agents SDK's forecaster agent (one tool) on `api` ("responses" or "chat"),
    through the reasoning mesh: its run, once the tool was called."""
    from agents import (
        Agent,
        ModelSettings,
        OpenAIChatCompletionsModel,
        OpenAIResponsesModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)
    forecasts = Forecasts()

    @function_tool
    def get_forecast(city: City, days: Days) -> str:
        """The weather forecast for a city, day by day."""
        return forecasts(city, days)

    kind = OpenAIResponsesModel if api == "responses" else OpenAIChatCompletionsModel
    async with openai.AsyncOpenAI(base_url=base_url, api_key=KEY, max_retries=0) as client:
        agent = Agent(name="forecaster", instructions="Use your tool.", tools=[get_forecast],
                      model=kind(model=MODEL, openai_client=client),
                      model_settings=ModelSettings(**settings))
        result = await Runner.run(agent, question, max_turns=6)
    assert isinstance(result.final_output, str) and result.final_output
    assert "think>" not in result.final_output
    forecasts.check_called()
    return result


async def test_an_agents_sdk_loop_on_the_responses_api_runs_through_the_thinking(
        base_url: str) -> None:
    """The Agents SDK sends each turn's reasoning item back as input: taken (and dropped from
    the prompt, as reasoning models' templates drop earlier thinking)."""
    from openai.types.shared import Reasoning

    result = await _forecaster_run(
        base_url, "responses", {"reasoning": Reasoning(effort="medium", summary="auto")},
        "Weather in Lisbon this week?")
    assert any(item.type == "reasoning" for r in result.raw_responses for item in r.output)


async def test_an_agents_sdk_loop_on_chat_completions_with_openais_settings(
        base_url: str) -> None:
    """The Agents SDK's chat-completions model sends ModelSettings as OpenAI's fields:
    reasoning_effort, verbosity and the prompt cache's are taken (the last two without
    effect here)."""
    from openai.types.shared import Reasoning

    await _forecaster_run(base_url, "chat", {
        "reasoning": Reasoning(effort="low"), "verbosity": "low",
        "prompt_cache_retention": "24h", "max_tokens": 300}, "Weather in Porto this week?")
