"""A ReAct agent through the Ostinato SDK, with real client-side tools.

    python examples/react_agent.py --gateway 127.0.0.1:50051 --api-key KEY \
        [--question "What is (17 + 25) * 3?"] [--tools calculator,search_docs] [--max-steps 6]

The tools (examples/agent_tools.py: a calculator that walks the expression's `ast`, a search
over examples/data/docs/) are declared to the model with `tools=[...]`. Each step is one
call of the program; when the model calls tools, the agent runs them here and appends
their results as `tool` messages, and the next call depends on this one (the SDK makes a
call the child of the previous call of its thread). It stops when the model answers in
text, or after --max-steps calls.

With `ostinato up` the engines are simulated: the words are synthetic, the tool calls,
dependencies, routing and usage accounting are real.
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agent_tools import TOOLS, run_tool

import ostinato

SYSTEM = ("You are a careful assistant. Use the tools to compute and to look things up; "
          "answer once you have what you need.")
QUESTION = "What is (17 + 25) * 3?"


@dataclass
class Step:
    """One LLM call of the agent: what it was sent, what it answered, what the tools said."""

    call_id: str
    sent: list[dict[str, Any]]  # the messages of this call
    output: ostinato.CallOutput
    tool_results: list[tuple[ostinato.ToolCall, str]] = field(default_factory=list)


@dataclass
class AgentRun:
    program_id: str
    steps: list[Step]
    answer: str | None  # None: the step limit came first
    summary: ostinato.ProgramSummary | None


def run(gateway: str, api_key: str | None, question: str = QUESTION,
        tools: Sequence[str] = tuple(TOOLS), max_steps: int = 6, max_tokens: int = 96) -> AgentRun:
    declared = [TOOLS[name] for name in tools]
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM},
                                      {"role": "user", "content": question}]
    steps: list[Step] = []
    answer = None
    with ostinato.Client(gateway, api_key=api_key) as client, \
            client.program(program_class="react") as program:
        for _ in range(max_steps):
            out = program.call(messages=messages, tools=declared, max_tokens=max_tokens)
            step = Step(out.call_id, copy.deepcopy(messages), out)
            steps.append(step)
            messages.append(out.message())
            if not out.tool_calls:
                answer = out.text
                break
            for tool_call in out.tool_calls:
                result = run_tool(tool_call.name, tool_call.arguments)
                step.tool_results.append((tool_call, result))
                messages.append({"role": "tool", "tool_call_id": tool_call.id, "content": result})
    return AgentRun(program.program_id, steps, answer, program.summary)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", default="127.0.0.1:50051")
    parser.add_argument("--api-key", default=os.environ.get("OSTINATO_API_KEY"),
                        help="a tenant's key (default: $OSTINATO_API_KEY; none with --no-auth)")
    parser.add_argument("--question", default=QUESTION)
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated: " + ", ".join(TOOLS))
    parser.add_argument("--max-steps", type=int, default=6)
    args = parser.parse_args(argv)
    tools = [t for t in args.tools.split(",") if t]
    unknown = sorted(set(tools) - set(TOOLS))
    if unknown:
        parser.error(f"unknown tools: {', '.join(unknown)}")
    result = run(args.gateway, args.api_key, args.question, tools, args.max_steps)
    print(f"program {result.program_id}: {args.question}")
    for i, step in enumerate(result.steps):
        out = step.output
        print(f"step {i}: call {out.call_id} on {out.worker_id}, {out.latency_s * 1000:.0f} ms, "
              f"{out.usage.prompt_tokens} prompt tokens ({out.usage.cached_tokens} cached), "
              f"{out.usage.completion_tokens} out")
        for call, tool_result in step.tool_results:
            print(f"    {call.name}({call.arguments}) -> {tool_result!r}")
    print("answer:", result.answer if result.answer is not None else "(none: step limit)")
    print(result.summary)
    return 0 if result.answer is not None else 1


if __name__ == "__main__":
    sys.exit(main())
