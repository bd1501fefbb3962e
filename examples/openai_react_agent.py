"""The ReAct agent of react_agent.py through the plain `openai` SDK, against the gateway's
OpenAI-compatible HTTP API. Nothing in it is specific to Ostinato: point `base_url` at any
chat-completions server and it runs the same.

    python examples/openai_react_agent.py --base-url http://127.0.0.1:8080/v1 --api-key KEY \
        [--question "..."] [--tools calculator,search_docs] [--max-steps 6]

The mesh still sees one program: each request repeats the conversation so far, and the
gateway recognizes a request that extends an earlier request plus its answer as the next
call of that request's program (a child of its call). Every response carries an extra
`ostinato` object naming the program, the call and its parents; the agent does not need it.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import openai
from agent_tools import TOOLS, run_tool
from openai.types.chat import ChatCompletion

MODEL = "sim/llama-3.1-8b"  # what `ostinato up` serves; GET /v1/models lists it
SYSTEM = ("You are a careful assistant. Use the tools to compute and to look things up; "
          "answer once you have what you need.")
QUESTION = "Where did the silk weavers of Lyon live?"


@dataclass
class AgentRun:
    responses: list[ChatCompletion]  # one per LLM call, in order
    sent: list[list[dict[str, Any]]]  # the messages of each call
    tool_results: list[tuple[str, str, str]] = field(default_factory=list)  # (id, name, result)
    answer: str | None = None  # None: the step limit came first


def run(base_url: str, api_key: str, question: str = QUESTION,
        tools: Sequence[str] = tuple(TOOLS), max_steps: int = 6, model: str = MODEL) -> AgentRun:
    declared: Any = [TOOLS[name] for name in tools]
    messages: list[Any] = [{"role": "system", "content": SYSTEM},
                           {"role": "user", "content": question}]
    result = AgentRun([], [])
    with openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0) as client:
        for _ in range(max_steps):
            result.sent.append([dict(m) for m in messages])
            response = client.chat.completions.create(model=model, messages=messages,
                                                      tools=declared, max_tokens=96)
            result.responses.append(response)
            reply = response.choices[0].message
            messages.append(reply.model_dump(exclude_none=True))
            if not reply.tool_calls:
                result.answer = reply.content or ""
                break
            for call in reply.tool_calls:
                if call.type != "function":
                    continue
                output = run_tool(call.function.name, call.function.arguments)
                result.tool_results.append((call.id, call.function.name, output))
                messages.append({"role": "tool", "tool_call_id": call.id, "content": output})
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    parser.add_argument("--api-key", default=os.environ.get("OSTINATO_API_KEY", "none"),
                        help="a tenant's key (default: $OSTINATO_API_KEY; any text with --no-auth)")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated: " + ", ".join(TOOLS))
    parser.add_argument("--max-steps", type=int, default=6)
    args = parser.parse_args(argv)
    tools = [t for t in args.tools.split(",") if t]
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tools: {', '.join(unknown)}")
    result = run(args.base_url, args.api_key, args.question, tools, args.max_steps, args.model)
    results = {call_id: (name, output) for call_id, name, output in result.tool_results}
    for i, response in enumerate(result.responses):
        choice = response.choices[0]
        usage = response.usage
        print(f"step {i}: finish_reason {choice.finish_reason}, "
              f"{usage.prompt_tokens if usage else '?'} prompt tokens")
        for call in choice.message.tool_calls or ():
            if call.id in results:
                name, output = results[call.id]
                print(f"    {name}({call.function.arguments}) -> {output!r}")  # type: ignore[union-attr]
    print("answer:", result.answer if result.answer is not None else "(none: step limit)")
    return 0 if result.answer is not None else 1


if __name__ == "__main__":
    sys.exit(main())
