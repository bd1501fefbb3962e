"""ostinato.dag: a graph built by handles, checked with the gateway's rules before it is sent."""

from __future__ import annotations

from collections.abc import Callable

import pytest

import ostinato
from ostinato.dag import DagResult, Graph, NodeFinished, ProgramFinished
from ostinato.sdk_results import CallOutput, ProgramSummary, Usage


def test_nodes_name_their_parents_by_handle_and_use_their_outputs() -> None:
    g = Graph()
    a = g.call(prompt="Outline.", max_tokens=5)
    b = g.call(id="body", prompt=f"Write from {a.output}", after=[a], thread_id="writer")
    c = g.call(messages=[("user", f"Check {a.output} against {b.output}")], after=[b])
    assert (a.id, b.id, c.id) == ("n0", "body", "n2")
    assert [(n.id, list(n.depends_on)) for n in g.nodes] == [
        ("n0", []), ("body", ["n0"]), ("n2", ["body"])]
    assert g.nodes[1].call.prompt == "Write from {{n0}}" and g.nodes[1].call.thread_id == "writer"
    assert g.nodes[2].call.messages[0].content == "Check {{n0}} against {{body}}"  # n0: transitive
    assert g.nodes[0].call.sampling.max_new_tokens == 5
    assert g.order() == ["n0", "body", "n2"]


def test_a_node_may_run_after_one_added_later_by_id() -> None:
    g = Graph()
    g.call(id="late-reader", prompt="{{early}}", after=["early"])
    g.call(id="early", prompt="x")
    assert g.order() == ["early", "late-reader"]


def _cycle(g: Graph) -> None:
    a = g.call(id="a", after=["c"])
    b = g.call(id="b", after=[a])
    g.call(id="c", after=[b])


def _unknown_parent(g: Graph) -> None:
    g.call(id="a", prompt="x", after=["ghost"])


def _foreign_handle(g: Graph) -> None:
    g.call(prompt="x", after=[Graph().call(prompt="elsewhere")])


def _duplicate_id(g: Graph) -> None:
    g.call(id="a", prompt="x")
    g.call(id="a", prompt="y")


def _template_without_dependency(g: Graph) -> None:
    a = g.call(prompt="x")
    g.call(prompt=f"use {a.output}")


def _self_dependency(g: Graph) -> None:
    g.call(id="a", prompt="x", after=["a"])


@pytest.mark.parametrize(("build", "message"), [
    (lambda g: None, "at least one node"),
    (_cycle, "dependency cycle: "),
    (_self_dependency, "dependency cycle: a -> a"),
    (_unknown_parent, "depends on unknown node(s): ghost"),
    (_foreign_handle, "of another graph"),
    (_duplicate_id, "duplicate node id: a"),
    (_template_without_dependency, "references n0 without depending on it"),
])
def test_a_graph_the_gateway_would_refuse_raises_invalid_dag(
        build: Callable[[Graph], None], message: str) -> None:
    g = Graph()
    with pytest.raises(ostinato.InvalidDag) as err:
        build(g)
        g.order()
    assert message in err.value.message
    assert isinstance(err.value, ostinato.InvalidArgument)  # as the gateway would answer


def test_the_result_is_indexed_by_handle_or_id() -> None:
    g = Graph()
    a = g.call(prompt="x")
    out = CallOutput(call_id="n0", text="hi", finish_reason="stop", usage=Usage(1, 1, 0),
                     worker_id="w", latency_s=0.0, queue_s=0.0, engine_s=0.0, priority=0,
                     simulated=True, cache_hit="miss")
    summary = ProgramSummary("p", 1, 0, Usage(1, 1, 0), 0.0, 0.0)
    result = DagResult()
    result.record("p", NodeFinished("n0", out))
    result.record("p", ProgramFinished(summary))
    assert result[a] is out and result["n0"] is out
    assert result.summary is summary and result.program_id == "p" and len(result.events) == 2
