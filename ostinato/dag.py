"""Declared programs: a DAG of calls built here, run server-side by the gateway (RunProgram).

    g = ostinato.dag.Graph()
    a = g.call(messages=[("user", "Summarize: ...")], max_tokens=64)
    b = g.call(messages=[("user", "Summarize: ...")], max_tokens=64)
    r = g.call(messages=[("user", f"Merge:\\n{a.output}\\n{b.output}")], after=[a, b])
    result = client.run(g)          # AsyncClient: await client.run(g)
    print(result[r].text, result.summary)

A node starts once every node it runs `after` has finished; `node.output` ("{{id}}") in its
prompt or message contents is replaced by that node's text, which needs the node among its
dependencies (direct or transitive); `literal(text)` keeps a "{{word}}" of the caller's own as
it is ("\\{{word}}"). The whole DAG is one request: no client round trips
between nodes, and the planner knows the program's remaining work up front.

The graph is checked here, before it is sent, with the rules the gateway enforces
(ostinato/dag_rules.py): a cycle, an unknown parent, a duplicate id or a template naming a
node it does not depend on raise ostinato.InvalidDag (an InvalidArgument, as the gateway would answer).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Unpack

from ostinato import dag_rules as rules
from ostinato.errors import InvalidDag
from ostinato.sdk_results import CallOutput, ProgramSummary, parse_call_output, parse_summary
from ostinato.sdk_types import CallArgs, call_spec
from ostinato.v1 import common_pb2, gateway_pb2


def literal(text: str) -> str:
    """`text` for a prompt or message of a node, with every "{{word}}" in it kept as it is
    (not taken for a reference to a node's output)."""
    return rules.escape_templates(text)


@dataclass(frozen=True)
class Node:
    """A handle on a node of one Graph: name it in `after=[...]`, put `output` in a template."""

    id: str
    graph: Graph = field(repr=False, compare=False)

    @property
    def output(self) -> str:
        """The template that stands for this node's output text."""
        return "{{" + self.id + "}}"


class Graph:
    """A DAG of calls, built node by node (`call`), run by `Client.run` / `AsyncClient.run`."""

    def __init__(self) -> None:
        self._nodes: list[gateway_pb2.DagNode] = []

    def call(self, *, id: str | None = None, after: Iterable[Node | str] = (),
             thread_id: str | None = None, **args: Unpack[CallArgs]) -> Node:
        """Adds a call that runs after the nodes in `after` (handles, or ids of nodes added
        later); `args` as `Program.call`'s. Its id (default n0, n1, ..., one no node has) is
        its call id in the program; its thread (default: its id) groups it for the planner."""
        taken = {n.id for n in self._nodes}
        node_id = id
        if node_id is None:
            k = len(self._nodes)
            while f"n{k}" in taken:  # an id the caller chose for another node
                k += 1
            node_id = f"n{k}"
        if node_id in taken:
            raise InvalidDag(f"duplicate node id: {node_id}")
        parents = []
        for parent in after:
            if isinstance(parent, Node) and parent.graph is not self:
                raise InvalidDag(f"node {node_id!r} runs after {parent.id!r} of another graph")
            parents.append(parent if isinstance(parent, str) else parent.id)
        self._nodes.append(gateway_pb2.DagNode(id=node_id, depends_on=parents,
                                               call=call_spec(thread_id=thread_id, **args)))
        return Node(node_id, self)

    @property
    def nodes(self) -> Sequence[gateway_pb2.DagNode]:
        """The nodes as they will be sent, in the order they were added."""
        return tuple(self._nodes)

    def order(self) -> list[str]:
        """Node ids in an order that respects the dependencies; raises InvalidDag."""
        try:
            return rules.topological_order(self._nodes)
        except rules.InvalidDag as exc:
            raise InvalidDag(str(exc)) from None

    def request(self, options: common_pb2.ProgramOptions) -> gateway_pb2.RunProgramRequest:
        """The RunProgram request, once the graph is checked."""
        self.order()
        return gateway_pb2.RunProgramRequest(options=options, nodes=self._nodes)


# ---- what RunProgram streams back ---------------------------------------------------------


@dataclass(frozen=True)
class NodeStarted:
    node_id: str
    worker_id: str  # the planner granted the node this worker (empty for a cached answer)


@dataclass(frozen=True)
class NodeDelta:
    node_id: str
    delta: str
    # the node's worker failed after it streamed: its earlier deltas are void, and this
    # delta begins its new answer (a node always starts over: gateway.proto's DagNode)
    restarted: bool = False


@dataclass(frozen=True)
class NodeFinished:
    node_id: str
    output: CallOutput


@dataclass(frozen=True)
class ProgramFinished:
    summary: ProgramSummary


DagEvent = NodeStarted | NodeDelta | NodeFinished | ProgramFinished


def parse_event(event: gateway_pb2.ProgramEvent) -> DagEvent:
    kind = event.WhichOneof("event")
    if kind == "node_started":
        return NodeStarted(event.node_started.node_id, event.node_started.worker_id)
    if kind == "node_delta":
        delta = event.node_delta
        return NodeDelta(delta.node_id, delta.delta, delta.restarted)
    if kind == "node_finished":
        return NodeFinished(event.node_finished.node_id,
                            parse_call_output(event.node_finished.result))
    return ProgramFinished(parse_summary(event.program_finished))


@dataclass
class DagResult:
    """A run so far: every event in order, each finished node's output, and the summary."""

    program_id: str = ""
    events: list[DagEvent] = field(default_factory=list)
    outputs: dict[str, CallOutput] = field(default_factory=dict)  # node id -> its output
    summary: ProgramSummary | None = None  # set by the last event

    def __getitem__(self, node: Node | str) -> CallOutput:
        return self.outputs[node if isinstance(node, str) else node.id]

    def record(self, program_id: str, event: DagEvent) -> None:
        self.program_id = program_id
        self.events.append(event)
        if isinstance(event, NodeFinished):
            self.outputs[event.node_id] = event.output
        elif isinstance(event, ProgramFinished):
            self.summary = event.summary
