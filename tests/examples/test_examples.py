"""Every example in examples/ run against the live session mesh (real processes, simulated
engines). The engines' words are synthetic, so these check structure: tools called with
well-formed arguments, run here, their results sent back in the next call; dependencies,
threads and counts as the planner recorded them in Redis.

The frameworks (LangGraph, the OpenAI Agents SDK) are imported by their examples inside
their tests: together they take seconds to import, which every collection would pay.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from cache import keys
from ostinato.dag import NodeFinished, NodeStarted, ProgramFinished
from ostinato.mesh import Mesh
from tests.examples.mesh_records import assert_chain, program_calls, tenant_programs
from tests.stored_ids import stored_program_id, tenant_namespace

Import = Callable[[str], ModuleType]
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


# -- the tools, offline -------------------------------------------------------------------------


@pytest.mark.parametrize(("expression", "value"), [
    ("(17 + 25) * 3", "126"), ("7 / 2", "3.5"), ("-3 + 4 * 2", "5"), ("2 ** 10", "1024"),
    ("17 // 5 % 3", "0"), ("2 ** -2", "0.25"), ("1.5 * 4", "6"),
])
def test_calculator_evaluates_arithmetic(example: Import, expression: str, value: str) -> None:
    assert example("agent_tools").calculate(expression) == value


@pytest.mark.parametrize("expression", [
    "__import__('os').system('true')", "x + 1", "(1).__class__", "[1, 2]", "True + 1",
    "9 ** 9 ** 9", "1 / 0", "(-8) ** 0.5", "lambda: 1", "1 +", "'a' * 3",
])
def test_calculator_refuses_what_is_not_arithmetic(example: Import, expression: str) -> None:
    assert example("agent_tools").calculate(expression).startswith("error: ")


@pytest.mark.parametrize(("expression", "digits"), [
    ("10 ** 999", 1000), ("2 ** 3318", 999), ("10 ** 1000", None), ("9 ** 1048", None),
    ("(-10) ** 1000", None),
])
def test_calculator_takes_powers_of_at_most_1000_digits(example: Import, expression: str,
                                                        digits: int | None) -> None:
    answer = example("agent_tools").calculate(expression)
    if digits is None:
        assert answer == "error: the power has more than 1000 digits"
    else:
        assert len(answer.lstrip("-")) == digits


def test_search_ranks_the_corpus(example: Import) -> None:
    tools = example("agent_tools")
    assert tools.search_docs("silk weavers Croix-Rousse").startswith("silk.md: ")
    assert tools.search_docs("Roman theatre Fourviere").startswith("lugdunum.md: ")
    assert tools.search_docs("zeppelin").startswith("no document")
    assert tools.run_tool("calculator", '{"expression": "6 * 7"}') == "42"
    assert tools.run_tool("calculator", "not json").startswith("error: ")
    assert tools.run_tool("rm", "{}").startswith("error: ")


# -- ReAct through the SDK ----------------------------------------------------------------------


@pytest.mark.parametrize(("tool", "question", "expected"), [
    ("calculator", "What is (17 + 25) * 3?", "126"),
    ("search_docs", "Where did the silk weavers of Lyon work?", "silk.md: "),
])
def test_react_agent_runs_its_tools_and_answers(
        example: Import, mesh: Mesh, api_keys: dict[str, str], store: redis.Redis,
        tool: str, question: str, expected: str) -> None:
    run = example("react_agent").run(mesh.endpoints.gateway, api_keys["ex-react"], question,
                                      tools=[tool])
    assert run.answer, "the agent never answered in text"
    first, *rest = run.steps
    assert rest, "the model answered without calling its tool"
    assert first.output.finish_reason == "tool_calls" and first.output.tool_calls
    for call, result in first.tool_results:
        assert call.name == tool
        assert result.startswith(expected), result
        # the result went back to the model: the next call's messages carry it, answering the call
        sent = rest[0].sent
        assistant = next(m for m in sent if m["role"] == "assistant")
        assert [c["id"] for c in assistant["tool_calls"]] == [c.id for c, _ in first.tool_results]
        assert {"role": "tool", "tool_call_id": call.id, "content": result} in sent
    assert rest[0].output.usage.prompt_tokens > first.output.usage.prompt_tokens
    assert not run.steps[-1].output.tool_calls
    # the mesh's view: one program, a chain of dependent calls, all served
    assert run.summary is not None and run.summary.calls_completed == len(run.steps)
    order = [s.call_id for s in run.steps]
    assert_chain(program_calls(store, run.program_id, len(order), tenant="ex-react"), order)


def test_react_agent_script(mesh: Mesh, api_keys: dict[str, str]) -> None:
    """As a user runs it: `python examples/react_agent.py --gateway ADDR --api-key KEY`."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / "react_agent.py"), "--gateway", mesh.endpoints.gateway,
         "--api-key", api_keys["ex-react"], "--tools", "calculator"],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "calculator({\"expression\": \"(17 + 25) * 3\"}) -> '126'" in proc.stdout
    assert "answer: " in proc.stdout and "calls_completed=2" in proc.stdout


def test_react_agent_script_refuses_an_unknown_tool() -> None:
    proc = subprocess.run([sys.executable, str(EXAMPLES_DIR / "react_agent.py"), "--tools", "rm"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "unknown tools: rm" in proc.stderr


# -- map-reduce as a declared DAG ---------------------------------------------------------------


def test_mapreduce_dag_reduces_every_map(example: Import, mesh: Mesh, api_keys: dict[str, str],
                                         store: redis.Redis) -> None:
    dag = example("mapreduce_dag")
    graph, run = dag.run(mesh.endpoints.gateway, api_keys["ex-dag"])
    docs = sorted(p.stem for p in dag.DOCS_DIR.glob("*.md"))
    maps = [f"map-{d}" for d in docs]
    declared = {n.id: list(n.depends_on) for n in graph.nodes}
    assert declared == {**{m: [] for m in maps}, "reduce": maps}
    assert "{{" in graph.nodes[-1].call.messages[-1].content  # the outputs go in by template
    # every node finished once; the reduce started only after every map had finished
    events = run.events
    finished = [e.node_id for e in events if isinstance(e, NodeFinished)]
    assert sorted(finished) == sorted([*maps, "reduce"])
    reduce_started = next(i for i, e in enumerate(events)
                          if isinstance(e, NodeStarted) and e.node_id == "reduce")
    last_map = max(i for i, e in enumerate(events)
                   if isinstance(e, NodeFinished) and e.node_id in maps)
    assert reduce_started > last_map
    assert run["reduce"].text and run["reduce"].usage.completion_tokens > 0
    assert isinstance(events[-1], ProgramFinished) and events[-1].summary == run.summary
    assert run.summary.calls_completed == len(maps) + 1 and run.summary.calls_failed == 0
    # the planner knew the dependencies: the reduce call's parents are every map call
    calls = program_calls(store, run.program_id, len(maps) + 1, tenant="ex-dag")
    assert set(calls) == {*maps, "reduce"} and all(c["state"] == "done" for c in calls.values())
    assert sorted(calls["reduce"]["parents"]) == maps
    assert all(calls[m]["parents"] == [] for m in maps)
    assert stored_program_id(store, "ex-dag", run.program_id) in tenant_programs(store, "ex-dag")


def test_mapreduce_dag_script(mesh: Mesh, api_keys: dict[str, str]) -> None:
    """As a user runs it: `python examples/mapreduce_dag.py --gateway ADDR --api-key KEY`."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / "mapreduce_dag.py"), "--gateway", mesh.endpoints.gateway,
         "--api-key", api_keys["ex-dag"]], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "finished reduce" in proc.stdout and "summary: " in proc.stdout


# -- tree of thought ----------------------------------------------------------------------------


def test_tree_of_thought_fans_out_scores_prunes_and_joins(
        example: Import, mesh: Mesh, api_keys: dict[str, str], store: redis.Redis) -> None:
    tot = example("tree_of_thought")
    breadth, beam, depth = 3, 2, 2
    run = tot.run(mesh.endpoints.gateway, api_keys["ex-tot"], breadth, beam, depth)
    assert [len(level) for level in run.levels] == [breadth, beam * breadth]
    assert [len(kept) for kept in run.survivors] == [beam, beam]
    expected_calls = 1 + 2 * (breadth + beam * breadth) + 1  # root, (proposal + score) per node, join
    assert run.summary.calls_completed == expected_calls and run.summary.calls_failed == 0
    calls = program_calls(store, run.program_id, expected_calls, tenant="ex-tot")
    assert len(calls) == expected_calls and all(c["state"] == "done" for c in calls.values())
    assert calls[run.root.proposal.call_id]["parents"] == []
    for level, kept in zip(run.levels, run.survivors, strict=True):
        # pruning: the survivors are the best-scored children; only they have children
        assert min(n.score for n in kept) >= max(
            (n.score for n in level if n not in kept), default=0)
        for node in level:
            proposal, score = calls[node.proposal.call_id], calls[node.score_call.call_id]
            assert 1 <= node.score <= 10
            assert proposal["thread_id"] == score["thread_id"] == node.path
            assert proposal["parents"] == [node.parent.proposal.call_id]
            assert score["parents"] == [node.proposal.call_id]
            assert bool(node.children) == (node in kept and level is not run.levels[-1])
        # fan-out: one thread per branch, run in parallel: the level's calls took less wall
        # time from the first arrival to the last finish than their durations added up
        # (one after the other, it would be at least the sum)
        proposals = [calls[n.proposal.call_id] for n in level]
        assert len({p["thread_id"] for p in proposals}) == len(level)
        span = max(p["finished_wall"] for p in proposals) - min(p["arrival_wall"] for p in proposals)
        assert span < sum(p["finished_wall"] - p["arrival_wall"] for p in proposals)
    for parent in run.survivors[0]:
        assert [c.path for c in parent.children] == [f"{parent.path}.{i}" for i in range(breadth)]
    # fan-in: the final call depends on every surviving leaf
    final = calls[run.final.call_id]
    assert sorted(final["parents"]) == sorted(n.proposal.call_id for n in run.survivors[-1])
    # and the planner held every call until its parents had finished
    for call in calls.values():
        if call["parents"]:
            assert call["dispatched_wall"] >= max(calls[p]["finished_wall"] for p in call["parents"])


# -- the HTTP API: openai, LangGraph, the OpenAI Agents SDK -------------------------------------


def _one_program(store: redis.Redis, tenant: str, llm_calls: int) -> tuple[str, dict[str, Any]]:
    """The tenant's only program and its calls (the frameworks send no Ostinato header: the
    gateway attributed their requests to a program by the conversation alone)."""
    programs = tenant_programs(store, tenant)
    assert len(programs) == 1, f"{tenant}: the agent's calls landed in programs {programs}"
    return programs[0], program_calls(store, programs[0], llm_calls)


def _call_order(calls: dict[str, Any]) -> list[str]:
    return sorted(calls, key=lambda c: calls[c]["arrival_wall"])


def test_openai_sdk_react_agent(example: Import, base_url: str, api_keys: dict[str, str],
                                store: redis.Redis) -> None:
    module = example("openai_react_agent")
    source = Path(module.__file__).read_text()
    assert "import ostinato" not in source and "X-Ostinato" not in source
    run = module.run(base_url, api_keys["ex-openai"], tools=["search_docs"])
    assert run.answer and len(run.responses) >= 2
    first = run.responses[0].choices[0]
    assert first.finish_reason == "tool_calls" and first.message.tool_calls
    for call_id, name, result in run.tool_results:
        assert name == "search_docs" and result.startswith("silk.md: ")
        assert {"role": "tool", "tool_call_id": call_id, "content": result} in run.sent[1]
    # what the mesh made of it: one program, each call the child of the one before
    ext = [r.model_extra["ostinato"] for r in run.responses]
    program_id, calls = _one_program(store, "ex-openai", len(ext))
    assert {stored_program_id(store, "ex-openai", e["program_id"]) for e in ext} == {program_id}
    order = [e["call_id"] for e in ext]
    assert [e["parent_call_ids"] for e in ext] == [[], *([c] for c in order[:-1])]
    assert_chain(calls, order)


def test_langgraph_agent(example: Import, base_url: str, api_keys: dict[str, str],
                         store: redis.Redis) -> None:
    from langchain_core.messages import AIMessage, ToolMessage

    tools = example("agent_tools")
    messages = example("langgraph_agent").run(base_url, api_keys["ex-langgraph"])
    final = messages[-1]
    assert isinstance(final, AIMessage) and final.content and not final.tool_calls
    requested = {c["id"]: c for m in messages if isinstance(m, AIMessage) for c in m.tool_calls}
    answered = [m for m in messages if isinstance(m, ToolMessage)]
    assert requested and {m.tool_call_id for m in answered} == set(requested)
    for m in answered:  # the graph's tool node ran our tools on the model's arguments
        call = requested[m.tool_call_id]
        assert m.content == tools.run_tool(call["name"], call["args"])
        assert not m.content.startswith(("error", "no document"))
    llm_calls = sum(isinstance(m, AIMessage) for m in messages)
    _, calls = _one_program(store, "ex-langgraph", llm_calls)
    assert len(calls) == llm_calls >= 2
    assert_chain(calls, _call_order(calls))


@pytest.mark.parametrize(("api", "stream", "chain", "tenant"), [
    ("responses", False, False, "ex-agents"), ("chat", False, False, "ex-agents-chat"),
    ("responses", True, False, "ex-agents-streamed"),
    ("responses", False, True, "ex-agents-chained")])
def test_openai_agents_sdk_agent(example: Import, base_url: str, api_keys: dict[str, str],
                                 store: redis.Redis, api: str, stream: bool, chain: bool,
                                 tenant: str) -> None:
    """The SDK's default model (the Responses API), run, run streamed and run chained by
    response id (each turn sends only its new items with previous_response_id), and its
    chat-completions model."""
    from agents import ToolCallItem, ToolCallOutputItem

    tools = example("agent_tools")
    result = example("openai_agents_sdk_agent").run(base_url, api_keys[tenant], api=api,
                                                     stream=stream, chain=chain)
    assert isinstance(result.final_output, str) and result.final_output
    requested = {item.raw_item.call_id: item.raw_item for item in result.new_items
                 if isinstance(item, ToolCallItem)}
    outputs = [item for item in result.new_items if isinstance(item, ToolCallOutputItem)]
    assert requested and {o.raw_item["call_id"] for o in outputs} == set(requested)
    for o in outputs:
        call = requested[o.raw_item["call_id"]]
        assert o.output == tools.run_tool(call.name, json.loads(call.arguments))
        assert not o.output.startswith(("error", "no document"))
    llm_calls = len(result.raw_responses)
    _, calls = _one_program(store, tenant, llm_calls)
    assert len(calls) == llm_calls >= 2
    assert_chain(calls, _call_order(calls))
    stored = [json.loads(store.get(k))["response"]  # type: ignore[arg-type]
              for k in store.scan_iter(keys.stored_response(tenant_namespace(store, tenant), "*"))]
    assert len(stored) == (llm_calls if api == "responses" else 0)  # store: true by default
    continued = sum(r["previous_response_id"] is not None for r in stored)
    assert continued == (llm_calls - 1 if chain else 0)  # chained: each turn after the first
