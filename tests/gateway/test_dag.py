"""Declared-program validation: cycles, unknown dependencies, template references."""

from __future__ import annotations

import itertools

import pytest

from ostinato.dag_rules import (
    MAX_NODES,
    InvalidDag,
    escape_templates,
    fill_templates,
    filled_growth,
    topological_order,
)
from ostinato.sdk_types import call_spec
from ostinato.v1 import gateway_pb2


def node(node_id: str, deps: list[str] = (), prompt: str = "x") -> gateway_pb2.DagNode:  # type: ignore[assignment]
    return gateway_pb2.DagNode(id=node_id, depends_on=list(deps), call=call_spec(prompt=prompt))


def test_order_respects_dependencies() -> None:
    order = topological_order([node("join", ["a", "b"]), node("b", ["root"]), node("a", ["root"]),
                               node("root")])
    assert order.index("root") < order.index("a") < order.index("join")
    assert order.index("b") < order.index("join")


@pytest.mark.parametrize(
    ("nodes", "message"),
    [
        ([], "at least one node"),
        ([node("")], "needs an id"),
        ([node("my node")], "node id 'my node': ids are 1 to 128 of"),  # no template names it
        ([node("a/b")], "node id 'a/b'"),
        ([node("x" * 129)], "ids are 1 to 128"),
        ([node("a"), node("a")], "duplicate node ids: a"),
        ([node("a", ["ghost"])], "unknown node"),
        ([node("a", ["b"]), node("b", ["c"]), node("c", ["a"])], "dependency cycle: a -> b -> c -> a"),
        ([node("a", ["a"])], "dependency cycle"),
        ([node("a"), node("b", prompt="use {{a}}")], "references a without depending"),
    ],
)
def test_invalid_dags(nodes: list, message: str) -> None:
    with pytest.raises(InvalidDag, match=message):
        topological_order(nodes)


def test_transitive_references_and_substitution() -> None:
    nodes = [node("a"), node("b", ["a"]), node("c", ["b"], prompt="{{ a }} then {{b}}")]
    topological_order(nodes)
    filled = fill_templates(nodes[2].call, {"a": "A!", "b": "B!"})
    assert filled.prompt == "A! then B!"
    assert nodes[2].call.prompt == "{{ a }} then {{b}}"


@pytest.mark.parametrize(("prompt", "filled"), [
    ("{{a}} and \\{{name}}", "A! and {{name}}"),  # escaped: literal, the backslash dropped
    ("\\{{a}}", "{{a}}"),  # even where it names a dependency
    ("\\{{ a }} {{ a }}", "{{ a }} A!"),
    ("\\\\{{name}}", "\\{{name}}"),  # a backslash before an escaped one stays
    ("{{ not a ref }} {{x|y}} {a}", "{{ not a ref }} {{x|y}} {a}"),  # no node id: as it is
])
def test_an_escaped_template_is_literal(prompt: str, filled: str) -> None:
    nodes = [node("a"), node("b", ["a"], prompt=prompt)]
    topological_order(nodes)  # "name" is no dependency: escaped, it is not a reference
    assert fill_templates(nodes[1].call, {"a": "A!"}).prompt == filled


def test_an_output_holding_a_template_is_not_filled_again() -> None:
    call = node("b", ["a"], prompt="{{a}}").call
    assert fill_templates(call, {"a": "{{a}} \\{{a}}"}).prompt == "{{a}} \\{{a}}"


@pytest.mark.parametrize("text", ["greet {{name}}", "{{ a }}{{b}}", "\\{{x}}", "{x} {{}}", ""])
def test_escape_templates_keeps_the_text_as_written(text: str) -> None:
    nodes = [node("a"), node("b", ["a"], prompt=escape_templates(text))]
    topological_order(nodes)
    assert fill_templates(nodes[1].call, {"a": "A!"}).prompt == text


def test_a_chain_of_max_nodes_listed_last_first_is_ordered_without_deep_recursion() -> None:
    ids = [f"n{i}" for i in range(MAX_NODES)]
    nodes = [node(ids[0]), *(node(i, [p]) for p, i in itertools.pairwise(ids))]
    assert topological_order(nodes[::-1]) == ids


@pytest.mark.parametrize(("prompt", "messages"), [
    ("{{a}}", []),
    ("{{ a }} and {{b}} then {{a}}", []),
    ("\\{{a}} {{a}} \\{{name}}", []),  # escaped ones lose their backslash
    ("no templates at all", []),
    ("", ["{{a}}{{b}}", "plain", "\\{{ b }}"]),
])
def test_the_growth_is_counted_without_filling(prompt: str, messages: list[str]) -> None:
    call = call_spec(prompt=prompt) if prompt else call_spec(
        messages=[("user", m) for m in messages])
    outputs = {"a": "A" * 37, "b": ""}
    filled = fill_templates(call, outputs)
    size = len(filled.prompt) + sum(len(m.content) for m in filled.messages)
    assert filled_growth(call, outputs) == size - len(call.prompt) - sum(
        len(m.content) for m in call.messages)
