"""Agent frameworks pointed at the gateway's OpenAI-compatible API, unchanged: LangChain's
ChatOpenAI (on chat completions and on the Responses API), the OpenAI Agents SDK (also with
its memory in a conversation of the Conversations API) and LangGraph's prebuilt ReAct agent
each run a tool-calling agent against the live mesh (real processes, simulated engines) until
it answers in text. (Agents on the plain `openai` SDK: test_openai_sdk_agents.py.)

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
from typing import TYPE_CHECKING, Any

import openai
import pytest
import redis
from pydantic import BaseModel

from cache import keys
from tests.integration.agent_checks import (
    MAX_TURNS,
    MODEL,
    QUESTION,
    City,
    Days,
    Forecasts,
    assert_one_chained_program,
    key,
)
from tests.stored_ids import tenant_namespace


class Forecast(BaseModel):
    """A structured answer (with_structured_output, an agent's output type)."""

    city: str
    days: int


if TYPE_CHECKING:
    from langchain_openai import ChatOpenAI


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
def test_langchain_chat_openai_agent_loop(agent_url: str, agent_store: redis.Redis, tenant: str,
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

    llm = _chat_model(agent_url, tenant, **kw).bind_tools([get_forecast])
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
    assert len(assert_one_chained_program(agent_store, tenant, llm_calls)) >= 2
    if kw.get("use_previous_response_id"):  # each turn continued the stored one before it
        space = tenant_namespace(agent_store, tenant)
        last = json.loads(agent_store.get(keys.stored_response(space, reply.response_metadata["id"])))
        assert len(last["chain"]) == llm_calls - 1
        asked = [m for m in messages if isinstance(m, AIMessage)][-2]  # the turn before
        assert [m["type"] for m in last["input"]] == ["function_call_output"] * len(
            asked.tool_calls)  # only what came since: the tools' outputs


def test_langchain_completion_model(agent_url: str) -> None:
    """LangChain's `OpenAI` (a completion model: its prompts go as an array, batched)."""
    from langchain_openai import OpenAI

    llm = OpenAI(model=MODEL, base_url=agent_url, api_key=key("langchain"),  # type: ignore[arg-type]
                 max_retries=0, timeout=30, max_tokens=4)
    assert llm.invoke("Once upon a time")
    assert all(llm.batch(["The river", "A mountain"]))


def test_langchain_structured_output_on_the_responses_api(agent_url: str) -> None:
    """with_structured_output on the Responses API: text.format json_schema, or a forced
    function call, parsed into the model."""
    llm = _chat_model(agent_url, "lc-structured", use_responses_api=True)
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
async def test_openai_agents_sdk_runner(agent_url: str, agent_store: redis.Redis, tenant: str,
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

    async with openai.AsyncOpenAI(base_url=agent_url, api_key=key(tenant), max_retries=0) as client:
        agent = Agent(name="forecaster", instructions="Answer weather questions with your tool.",
                      tools=[get_forecast],
                      model=OpenAIChatCompletionsModel(model=MODEL, openai_client=client),
                      output_type=Forecast if structured else None,
                      model_settings=ModelSettings(tool_choice=choice))
        result = await Runner.run(agent, QUESTION, max_turns=MAX_TURNS)
    assert isinstance(result.final_output, Forecast) if structured else (
        isinstance(result.final_output, str) and result.final_output)
    forecasts.check_called()
    assert len(assert_one_chained_program(agent_store, tenant, len(result.raw_responses))) >= 2


@pytest.mark.parametrize(("tenant", "memory"), [
    ("agents-session", "session"),  # the SDK lists the items and sends them as input
    ("agents-conv", "conversation_id"),  # the gateway reads them and adds each turn
])
async def test_openai_agents_sdk_memory_in_a_conversation(agent_url: str, agent_store: redis.Redis,
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

    async with openai.AsyncOpenAI(base_url=agent_url, api_key=key(tenant),
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
    assert len(assert_one_chained_program(agent_store, tenant, calls)) == calls


# -- LangGraph ----------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:create_react_agent has been moved")
def test_langgraph_prebuilt_react_agent(agent_url: str, agent_store: redis.Redis) -> None:
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

    agent = create_react_agent(_chat_model(agent_url, "langgraph"), [get_forecast])
    state = agent.invoke({"messages": [{"role": "user", "content": QUESTION}]},
                         {"recursion_limit": 2 * MAX_TURNS})
    messages = state["messages"]
    final = messages[-1]
    assert isinstance(final, AIMessage) and isinstance(final.content, str) and final.content
    assert not final.tool_calls
    assert any(isinstance(m, ToolMessage) for m in messages)
    forecasts.check_called()
    llm_calls = sum(isinstance(m, AIMessage) for m in messages)
    assert len(assert_one_chained_program(agent_store, "langgraph", llm_calls)) >= 2
