"""A LangGraph agent on the gateway's OpenAI-compatible API: LangChain's `ChatOpenAI` pointed
at the gateway, in a two-node graph (the model, then the tools it called, back to the model)
until the model answers in text.

    python examples/langgraph_agent.py --base-url http://127.0.0.1:8080/v1 --api-key KEY \
        [--question "..."]

The tools are the plain functions of agent_tools.py wrapped as LangChain tools, declared
with the same JSON schemas as the other examples. Nothing here knows about Ostinato: the
gateway attributes the graph's LLM calls to one program by recognizing each request as the
continuation of the previous one.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import agent_tools
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from langchain_core.tools import StructuredTool
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

MODEL = "sim/llama-3.1-8b"
SYSTEM = ("You are a careful assistant. Use the tools to compute and to look things up; "
          "answer once you have what you need.")
QUESTION = "What is (17 + 25) * 3?"


def _tool(name: str, fn: Callable[[str], str]) -> StructuredTool:
    """A LangChain tool declared with agent_tools' own schema (kept verbatim, `examples` too)."""
    declared = agent_tools.TOOLS[name]["function"]
    return StructuredTool.from_function(fn, name=name, description=declared["description"],
                                        args_schema=declared["parameters"])


calculator = _tool("calculator", agent_tools.calculate)
search_docs = _tool("search_docs", lambda query: agent_tools.search_docs(query))


def build_graph(llm: ChatOpenAI) -> Any:
    """model -> (tools -> model)* -> END: `tools_condition` routes on the last AIMessage."""
    tools = [calculator, search_docs]
    model = llm.bind_tools(tools)

    def call_model(state: MessagesState) -> dict[str, list[BaseMessage]]:
        return {"messages": [model.invoke([SystemMessage(SYSTEM), *state["messages"]])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode(tools))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition, {"tools": "tools", END: END})
    graph.add_edge("tools", "model")
    return graph.compile()


def run(base_url: str, api_key: str, question: str = QUESTION, max_steps: int = 6,
        model: str = MODEL) -> list[BaseMessage]:
    """The conversation the graph ended with: the question, the model's turns, tool results."""
    llm = ChatOpenAI(model=model, base_url=base_url, api_key=api_key,  # type: ignore[arg-type]
                     max_retries=0, timeout=30, max_tokens=96)  # type: ignore[call-arg]
    state = build_graph(llm).invoke({"messages": [{"role": "user", "content": question}]},
                                    {"recursion_limit": 2 * max_steps})
    return list(state["messages"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    parser.add_argument("--api-key", default=os.environ.get("OSTINATO_API_KEY", "none"),
                        help="a tenant's key (default: $OSTINATO_API_KEY; any text with --no-auth)")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--question", default=QUESTION)
    args = parser.parse_args(argv)
    messages = run(args.base_url, args.api_key, args.question, model=args.model)
    for m in messages:
        calls = getattr(m, "tool_calls", None)
        print(f"{m.type:>5}: {calls if calls else str(m.content)[:100]!s}")
    final = messages[-1]
    return 0 if isinstance(final, AIMessage) and not final.tool_calls else 1


if __name__ == "__main__":
    sys.exit(main())
