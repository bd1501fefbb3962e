"""Agent frameworks pointed at the gateway's OpenAI-compatible API, unchanged: the plain
`openai` SDK, LangChain's ChatOpenAI (on chat completions and on the Responses API), the
OpenAI Agents SDK (also with its memory in a conversation of the Conversations API) and
LangGraph's prebuilt ReAct agent each run a tool-calling agent against the live mesh (real
processes, simulated engines) until it answers in text.

Every test checks two things. The agent really worked: a Python tool implemented here was
called with arguments that satisfy its signature, and the last answer is text. And the mesh
saw one program: with no Ostinato header anywhere, all of the agent's LLM calls were
attributed (cache/conversations.py) to a single program whose calls form a chain, each
call after the first a child of the one before. That is read from the planner's program
records in Redis (cache/keys.py), not from response bodies the frameworks hide. Each test
runs under its own tenant (its own API key), so the tenant's programs are the test's.

The frameworks are imported inside their tests: together they take seconds to import, which
every collection of the suite would otherwise pay.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import jsonschema
import openai
import pytest
import redis
from pydantic import BaseModel

from cache import keys
from ostinato.mesh import Mesh
from tests.conftest import http_base, running_mesh
from tests.integration.agent_checks import (
    FORECAST_PARAMETERS,
    City,
    Days,
    Forecasts,
    assert_one_chained_program,
)


class Forecast(BaseModel):
    """A structured answer (with_structured_output, an agent's output type)."""

    city: str
    days: int

if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI

MODEL = "sim/llama-3.1-8b"
MAX_TURNS = 6  # an agent loop that has not answered in text by then is a failure
TENANTS = ("sdk-tools", "sdk-stream", "sdk-schema", "langchain", "agents-sdk", "langgraph", "models",
           "lc-responses", "lc-chained", "lc-stream", "lc-structured", "agents-session",
           "agents-conv", "agents-typed", "agents-typed-auto")
API_KEYS = {f"key-{tenant}": tenant for tenant in TENANTS}

FORECAST_TOOL: dict[str, Any] = {"type": "function", "function": {
    "name": "get_forecast", "description": "The weather forecast for a city, day by day.",
    "parameters": FORECAST_PARAMETERS}}
QUESTION = "What will the weather be like in Lisbon this week?"


@pytest.fixture(scope="module")
def mesh() -> Iterator[Mesh]:
    with running_mesh({
        "gateway": {"http_port": 0, "api_keys": API_KEYS, "allow_anonymous": False,
                    "semantic_cache": False},
        "sim_engine": {"time_scale": 0.05},
        "workers": 2,
    }) as m:
        yield m


@pytest.fixture(scope="module")
def base_url(mesh: Mesh) -> str:
    return http_base(mesh)


@pytest.fixture(scope="module")
def store(mesh: Mesh) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(mesh.endpoints.redis_url, decode_responses=True)
    yield client
    client.close()


def key(tenant: str) -> str:
    assert tenant in TENANTS
    return f"key-{tenant}"


# -- plain openai SDK ---------------------------------------------------------------------------


def _ostinato(obj: Any) -> dict[str, Any]:
    ext = (obj.model_extra or {}).get("ostinato")
    assert isinstance(ext, dict), f"no ostinato object in {obj!r}"
    return ext


def test_openai_sdk_agent_loop(base_url: str, store: redis.Redis) -> None:
    """A hand-written loop: tool calls answered with `tool` messages until a text answer; the
    responses' `ostinato` objects agree with the planner's records."""
    forecasts = Forecasts()
    messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
    seen: list[dict[str, Any]] = []
    with openai.OpenAI(base_url=base_url, api_key=key("sdk-tools"), max_retries=0) as client:
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
    chain = assert_one_chained_program(store, "sdk-tools", len(seen))
    assert len(chain) >= 2
    assert [s["call_id"] for s in seen] == chain
    assert len({s["program_id"] for s in seen}) == 1
    assert [s["parent_call_ids"] for s in seen] == [[], *([c] for c in chain[:-1])]


def test_openai_sdk_streamed_agent_loop(base_url: str, store: redis.Redis) -> None:
    """The same loop streamed: tool calls rebuilt from OpenAI's deltas, by index."""
    forecasts = Forecasts()
    messages: list[dict[str, Any]] = [{"role": "user", "content": QUESTION}]
    seen: list[dict[str, Any]] = []
    with openai.OpenAI(base_url=base_url, api_key=key("sdk-stream"), max_retries=0) as client:
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
    chain = assert_one_chained_program(store, "sdk-stream", len(seen))
    assert len(chain) >= 2 and [s["call_id"] for s in seen] == chain


def test_openai_sdk_json_schema_answer(base_url: str, store: redis.Redis) -> None:
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
    with openai.OpenAI(base_url=base_url, api_key=key("sdk-schema"), max_retries=0) as client:
        out = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Lisbon's forecast, as JSON."}],
            response_format={"type": "json_schema",
                             "json_schema": {"name": "forecast", "schema": schema, "strict": True}})
    content = out.choices[0].message.content
    assert content and out.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(content), schema)
    assert assert_one_chained_program(store, "sdk-schema", 1) == [_ostinato(out)["call_id"]]


def test_a_required_tool_whose_parameters_nest_a_model(base_url: str) -> None:
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
    with openai.OpenAI(base_url=base_url, api_key=key("sdk-tools"), max_retries=0) as client:
        for choice in ("required", {"type": "function", "function": {"name": "lookup"}}):
            out = client.chat.completions.create(
                model=MODEL, messages=[{"role": "user", "content": "Weather in Lisbon?"}],
                tools=[tool], tool_choice=choice)  # type: ignore[arg-type]
            calls = out.choices[0].message.tool_calls
            assert calls and out.choices[0].finish_reason == "tool_calls"
            for c in calls:
                assert c.function.name == "lookup"  # type: ignore[union-attr]
                jsonschema.validate(json.loads(c.function.arguments), parameters)  # type: ignore[union-attr]


def test_the_served_model_and_no_other(base_url: str) -> None:
    """What frameworks check first: /v1/models lists the model; another model is a 404."""
    with openai.OpenAI(base_url=base_url, api_key=key("models"), max_retries=0) as client:
        assert [m.id for m in client.models.list()] == [MODEL]
        assert client.models.retrieve(MODEL).id == MODEL  # GET /v1/models/{model}: a "/" in it
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("gpt-4o")
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])


# -- LangChain ----------------------------------------------------------------------------------


def _chat_model(base_url: str, tenant: str, **kw: Any) -> ChatOpenAI:
    from langchain_openai import ChatOpenAI

    return ChatOpenAI(model=MODEL, base_url=base_url, api_key=key(tenant),  # type: ignore[arg-type]
                      max_retries=0, timeout=30, **kw)


@pytest.mark.parametrize(("tenant", "kw"), [
    ("langchain", {}),  # chat completions
    ("lc-responses", {"use_responses_api": True}),
    # only the new messages go, with the last response's id: the stored turns come first
    ("lc-chained", {"use_responses_api": True, "use_previous_response_id": True}),
    ("lc-stream", {"use_responses_api": True, "streaming": True}),
])
def test_langchain_chat_openai_agent_loop(base_url: str, store: redis.Redis, tenant: str,
                                          kw: dict[str, Any]) -> None:
    """ChatOpenAI with `bind_tools`: AIMessage tool calls run as ToolMessages until plain
    text; on chat completions and on the Responses API (`use_responses_api`), whole,
    chained by previous_response_id, and streamed."""
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
    from langchain_core.tools import tool

    forecasts = Forecasts()

    @tool
    def get_forecast(city: City, days: Days) -> str:
        """The weather forecast for a city, day by day."""
        return forecasts(city, days)

    llm = _chat_model(base_url, tenant, **kw).bind_tools([get_forecast])
    messages: list[BaseMessage] = [HumanMessage(QUESTION)]
    for _ in range(MAX_TURNS):
        reply = llm.invoke(messages)
        assert isinstance(reply, AIMessage)
        messages.append(reply)
        if not reply.tool_calls:
            break
        for tc in reply.tool_calls:
            assert tc["name"] == "get_forecast"
            result = get_forecast.invoke(tc)  # a ToolCall in, a ToolMessage out
            assert isinstance(result, ToolMessage) and result.tool_call_id == tc["id"]
            messages.append(result)
    assert reply.text and not reply.tool_calls
    forecasts.check_called()
    llm_calls = sum(isinstance(m, AIMessage) for m in messages)
    assert len(assert_one_chained_program(store, tenant, llm_calls)) >= 2
    if kw.get("use_previous_response_id"):  # each turn continued the stored one before it
        last = json.loads(store.get(keys.stored_response(tenant, reply.response_metadata["id"])))
        assert len(last["chain"]) == llm_calls - 1
        asked = [m for m in messages if isinstance(m, AIMessage)][-2]  # the turn before
        assert [m["type"] for m in last["input"]] == ["function_call_output"] * len(
            asked.tool_calls)  # only what came since: the tools' outputs


def test_langchain_structured_output_on_the_responses_api(base_url: str) -> None:
    """with_structured_output on the Responses API: text.format json_schema, or a forced
    function call, parsed into the model."""
    llm = _chat_model(base_url, "lc-structured", use_responses_api=True)
    for method in ("json_schema", "function_calling"):
        out = llm.with_structured_output(Forecast, method=method).invoke(QUESTION)
        assert isinstance(out, Forecast) and isinstance(out.days, int)


# -- OpenAI Agents SDK --------------------------------------------------------------------------


@pytest.mark.parametrize(("tenant", "structured", "choice"), [
    ("agents-sdk", False, None),
    # with an output type the SDK sends response_format on every turn, and with it
    ("agents-typed", True, "required"),  # a forced call: the call first, then the answer
    ("agents-typed-auto", True, None),  # tool_choice auto: the model still calls its tool
])
async def test_openai_agents_sdk_runner(base_url: str, store: redis.Redis, tenant: str,
                                        structured: bool, choice: str | None) -> None:
    """An Agent on the chat-completions model with a function tool, run by the Runner, and
    with an output type (OpenAI takes tools and a JSON format together)."""
    from agents import (
        Agent,
        ModelSettings,
        OpenAIChatCompletionsModel,
        Runner,
        function_tool,
        set_tracing_disabled,
    )

    set_tracing_disabled(True)  # no trace export: there is no network
    forecasts = Forecasts()

    @function_tool
    def get_forecast(city: City, days: Days) -> str:
        """The weather forecast for a city, day by day."""
        return forecasts(city, days)

    async with openai.AsyncOpenAI(base_url=base_url, api_key=key(tenant), max_retries=0) as client:
        agent = Agent(name="forecaster", instructions="Answer weather questions with your tool.",
                      tools=[get_forecast],
                      model=OpenAIChatCompletionsModel(model=MODEL, openai_client=client),
                      output_type=Forecast if structured else None,
                      model_settings=ModelSettings(tool_choice=choice))
        result = await Runner.run(agent, QUESTION, max_turns=MAX_TURNS)
    assert isinstance(result.final_output, Forecast) if structured else (
        isinstance(result.final_output, str) and result.final_output)
    forecasts.check_called()
    assert len(assert_one_chained_program(store, tenant, len(result.raw_responses))) >= 2


@pytest.mark.parametrize(("tenant", "memory"), [
    ("agents-session", "session"),  # the SDK lists the items and sends them as input
    ("agents-conv", "conversation_id"),  # the gateway reads them and adds each turn
])
async def test_openai_agents_sdk_memory_in_a_conversation(base_url: str, store: redis.Redis,
                                                         tenant: str, memory: str) -> None:
    """Two runs of an agent on the default Responses model with their history in one
    conversation of the Conversations API: as OpenAIConversationsSession, the Runner's
    memory, or by `conversation_id`, the Responses API's `conversation`. The second run is
    given the first's history, so every call of both runs is one chained program."""
    from agents import Agent, OpenAIResponsesModel, Runner, function_tool, set_tracing_disabled
    from agents.memory import OpenAIConversationsSession

    set_tracing_disabled(True)
    forecasts = Forecasts()

    @function_tool
    def get_forecast(city: City, days: Days) -> str:
        """The weather forecast for a city, day by day."""
        return forecasts(city, days)

    async with openai.AsyncOpenAI(base_url=base_url, api_key=key(tenant),
                                  max_retries=0) as client:
        agent = Agent(name="forecaster", instructions="Answer weather questions with your tool.",
                      tools=[get_forecast],
                      model=OpenAIResponsesModel(model=MODEL, openai_client=client))
        conv = (await client.conversations.create()).id
        session = OpenAIConversationsSession(conversation_id=conv, openai_client=client)
        how: dict[str, Any] = {"session": session} if memory == "session" else {
            "conversation_id": conv}
        first = await Runner.run(agent, QUESTION, max_turns=MAX_TURNS, **how)
        kept = [i async for i in client.conversations.items.list(conv, order="asc")]
        then = await Runner.run(agent, "And in Porto?", max_turns=MAX_TURNS, **how)
        items = [i async for i in client.conversations.items.list(conv, order="asc")]
        assert len(items) > len(kept) >= 4  # question, call, output, answer; then more
        assert items[len(kept)].content[0].text == "And in Porto?"  # type: ignore[union-attr]
        if memory == "session":
            assert (await session.pop_item() or {}).get("id") == items[-1].id
    assert isinstance(then.final_output, str) and then.final_output
    forecasts.check_called()
    calls = len(first.raw_responses) + len(then.raw_responses)
    assert len(assert_one_chained_program(store, tenant, calls)) == calls


# -- LangGraph ----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
def test_langgraph_prebuilt_react_agent(base_url: str, store: redis.Redis) -> None:
    """LangGraph's prebuilt ReAct graph (deprecated for `langchain.agents.create_agent`, which
    is not installed) over ChatOpenAI: model, tools, model, until the answer is text."""
    from langchain_core.messages import AIMessage, ToolMessage
    from langchain_core.tools import tool
    from langgraph.prebuilt import create_react_agent

    forecasts = Forecasts()

    @tool
    def get_forecast(city: City, days: Days) -> str:
        """The weather forecast for a city, day by day."""
        return forecasts(city, days)

    agent = create_react_agent(_chat_model(base_url, "langgraph"), [get_forecast])
    state = agent.invoke({"messages": [{"role": "user", "content": QUESTION}]},
                         {"recursion_limit": 2 * MAX_TURNS})
    messages = state["messages"]
    final = messages[-1]
    assert isinstance(final, AIMessage) and isinstance(final.content, str) and final.content
    assert not final.tool_calls
    assert any(isinstance(m, ToolMessage) for m in messages)
    forecasts.check_called()
    llm_calls = sum(isinstance(m, AIMessage) for m in messages)
    assert len(assert_one_chained_program(store, "langgraph", llm_calls)) >= 2

