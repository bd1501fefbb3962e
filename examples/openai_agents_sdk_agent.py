"""An OpenAI Agents SDK agent on the gateway: an `Agent` with function tools over an
`AsyncOpenAI` client whose base URL is the gateway's OpenAI-compatible API, run by the
`Runner`. Its model is the SDK's default, `OpenAIResponsesModel` (the Responses API,
POST /v1/responses), or with `--api chat` the SDK's `OpenAIChatCompletionsModel`.

    python examples/openai_agents_sdk_agent.py --base-url http://127.0.0.1:8080/v1 --api-key KEY \
        [--api responses|chat] [--stream] [--question "..."]

The tools are the plain functions of agent_tools.py. The Agents SDK's own trace export goes
to OpenAI's servers by default; it is turned off here (the mesh has its own traces).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from typing import Annotated

import agent_tools
import openai
from agents import (
    Agent,
    Model,
    OpenAIChatCompletionsModel,
    OpenAIResponsesModel,
    Runner,
    RunResult,
    RunResultStreaming,
    ToolCallItem,
    ToolCallOutputItem,
    function_tool,
    set_tracing_disabled,
)
from openai.types.responses import ResponseFunctionToolCall
from pydantic import Field

MODEL = "sim/llama-3.1-8b"
INSTRUCTIONS = ("You are a careful assistant. Use the tools to compute and to look things up; "
                "answer once you have what you need.")
QUESTION = "When did Lyon's festival of lights begin?"


@function_tool
def calculator(expression: Annotated[str, Field(description="The expression",
                                                examples=["(17 + 25) * 3"])]) -> str:
    """Evaluate an arithmetic expression exactly: numbers, + - * / // % ** and parentheses."""
    return agent_tools.calculate(expression)


@function_tool
def search_docs(query: Annotated[str, Field(description="Words to look for",
                                            examples=["festival of lights"])]) -> str:
    """Search the local documents about Lyon; returns the best matches with a snippet."""
    return agent_tools.search_docs(query)


async def run_async(base_url: str, api_key: str, question: str = QUESTION, max_turns: int = 6,
                    model: str = MODEL, api: str = "responses", stream: bool = False,
                    chain: bool = False) -> RunResult | RunResultStreaming:
    """The agent's run; with `stream`, run streamed (Runner.run_streamed), its events read;
    with `chain`, each turn sends only its new items and the previous response's id (the
    gateway keeps the conversation: stored responses)."""
    set_tracing_disabled(True)
    async with openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0) as client:
        llm: Model = (OpenAIResponsesModel(model=model, openai_client=client) if api == "responses"
                      else OpenAIChatCompletionsModel(model=model, openai_client=client))
        agent = Agent(name="lyon-guide", instructions=INSTRUCTIONS,
                      tools=[calculator, search_docs], model=llm)
        if not stream:
            return await Runner.run(agent, question, max_turns=max_turns,
                                    auto_previous_response_id=chain)
        streamed = Runner.run_streamed(agent, question, max_turns=max_turns,
                                       auto_previous_response_id=chain)
        async for event in streamed.stream_events():
            if event.type == "raw_response_event" and event.data.type == "response.output_text.delta":
                print(event.data.delta, end="", flush=True)
        print()
        return streamed


def run(base_url: str, api_key: str, question: str = QUESTION, max_turns: int = 6,
        model: str = MODEL, api: str = "responses", stream: bool = False,
        chain: bool = False) -> RunResult | RunResultStreaming:
    return asyncio.run(run_async(base_url, api_key, question, max_turns, model, api, stream,
                                 chain))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    parser.add_argument("--api-key", default=os.environ.get("OSTINATO_API_KEY", "none"),
                        help="a tenant's key (default: $OSTINATO_API_KEY; any text with --no-auth)")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--api", choices=("responses", "chat"), default="responses",
                        help="the Responses API (the SDK's default) or chat completions")
    parser.add_argument("--stream", action="store_true", help="run streamed, printing the text")
    parser.add_argument("--chain", action="store_true",
                        help="send each turn's new items with previous_response_id (responses)")
    parser.add_argument("--question", default=QUESTION)
    args = parser.parse_args(argv)
    result = run(args.base_url, args.api_key, args.question, model=args.model, api=args.api,
                 stream=args.stream, chain=args.chain)
    for item in result.new_items:
        if isinstance(item, ToolCallItem) and isinstance(item.raw_item, ResponseFunctionToolCall):
            print(f"tool call   {item.raw_item.name}({item.raw_item.arguments})")
        elif isinstance(item, ToolCallOutputItem):
            print(f"tool output {str(item.output)[:100]!r}")
    print("answer:", result.final_output)
    return 0 if isinstance(result.final_output, str) and result.final_output else 1


if __name__ == "__main__":
    sys.exit(main())
