"""A tree-of-thought search with parallel branches, through the asyncio SDK.

    python examples/tree_of_thought.py --gateway 127.0.0.1:50051 --api-key KEY \
        [--breadth 3] [--beam 2] [--depth 2]

A root call frames the problem. At each level every surviving node fans out `breadth`
children at once: each child is a thread of its own (thread id = its path in the tree) whose
first call, a proposal, depends on its parent's proposal (`parents=[...]`); the same thread
then scores the proposal with a structured-output call (a JSON schema: an integer 1-10).
Only the `beam` best-scored children survive to the next level (pruning); the final call
joins the surviving leaves (fan-in: `parents` = every survivor's proposal).

The mesh sees the tree: the planner knows each call's thread and parents, so a program's
critical path (`atlas`) and its remaining work are known as the branches run in parallel.
With `ostinato up` the engines are simulated: words and scores are synthetic (the scores are
valid instances of the schema), the tree, the parallelism and the dependencies are real.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field

import ostinato

PROBLEM = "Plan a one-day walk through Lyon that covers its Roman past, its silk and its food."
SCORE_SCHEMA = {"type": "object",
                "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 10}},
                "required": ["score"], "additionalProperties": False}


# The JSON answer ends itself (the schema constrains it) in ~8 tokens; the rest is room for
# a reasoning model's thinking before it (`ostinato up --reasoning-parser qwen3`).
SCORE_MAX_TOKENS = 200


@dataclass(eq=False)  # nodes are compared by identity
class Node:
    path: str  # "root", "0", "0.2", ...: also the node's thread id
    proposal: ostinato.CallOutput
    parent: Node | None = None
    score_call: ostinato.CallOutput | None = None
    score: int = 0
    children: list[Node] = field(default_factory=list)

    def thoughts(self) -> list[str]:
        chain = [] if self.parent is None else self.parent.thoughts()
        return [*chain, self.proposal.text]


@dataclass
class SearchRun:
    program_id: str
    root: Node
    levels: list[list[Node]]  # every child created at each depth, in creation order
    survivors: list[list[Node]]  # the ones kept at each depth
    final: ostinato.CallOutput
    summary: ostinato.ProgramSummary | None


def _prompt(node: Node | None, instruction: str) -> list[dict[str, str]]:
    steps = "" if node is None else "\n".join(f"Step {i + 1}: {t}"
                                              for i, t in enumerate(node.thoughts()))
    return [{"role": "system", "content": "You solve problems one careful step at a time."},
            {"role": "user", "content": f"Problem: {PROBLEM}\n{steps}\n{instruction}"}]


async def _expand(program: ostinato.AsyncProgram, parent: Node, index: int,
                  max_tokens: int) -> Node:
    """One branch: propose the next step, then score it, on the branch's own thread."""
    path = str(index) if parent.parent is None else f"{parent.path}.{index}"
    proposal = await program.call(
        messages=_prompt(parent, f"Propose next step option {index + 1}, different from others."),
        thread_id=path, parents=[parent.proposal.call_id], max_tokens=max_tokens, temperature=0.8)
    node = Node(path, proposal, parent)
    node.score_call = await program.call(
        messages=_prompt(node, "Rate how promising the last step is, 1 to 10, as JSON."),
        thread_id=path, parents=[proposal.call_id], json_schema=SCORE_SCHEMA,
        max_tokens=SCORE_MAX_TOKENS)
    node.score = _score(node.score_call.text)
    return node


def _score(text: str) -> int:
    """The answer's score; 0 (unscored, pruned first) when it is not the schema's JSON: cut
    at max_tokens, e.g. by a reasoning model that thought for longer."""
    try:
        return int(json.loads(text)["score"])
    except (ValueError, KeyError, TypeError):
        return 0


async def search(gateway: str, api_key: str | None, breadth: int = 3, beam: int = 2,
                 depth: int = 2, max_tokens: int = 32) -> SearchRun:
    async with ostinato.AsyncClient(gateway, api_key=api_key) as client:
        program = await client.program(program_class="tree-of-thought")
        async with program:
            root = Node("root", await program.call(
                messages=_prompt(None, "Restate the problem and its constraints."),
                thread_id="root", max_tokens=max_tokens))
            frontier, levels, survivors = [root], [], []
            for _ in range(depth):
                # fan-out: every child of every frontier node at once
                level = list(await asyncio.gather(*(
                    _expand(program, parent, i, max_tokens)
                    for parent in frontier for i in range(breadth))))
                for node in level:
                    assert node.parent is not None
                    node.parent.children.append(node)
                levels.append(level)
                # pruning: the best `beam` children go on (ties: the earlier child)
                frontier = sorted(level, key=lambda n: -n.score)[:beam]
                survivors.append(frontier)
            # fan-in: one call that depends on every surviving leaf
            candidates = "\n\n".join(f"Candidate {i + 1}:\n" + "\n".join(n.thoughts())
                                     for i, n in enumerate(frontier))
            final = await program.call(
                messages=_prompt(None, f"Write the final plan from the best candidates.\n\n{candidates}"),
                thread_id="root", parents=[n.proposal.call_id for n in frontier],
                max_tokens=2 * max_tokens)
    return SearchRun(program.program_id, root, levels, survivors, final, program.summary)


def run(gateway: str, api_key: str | None, breadth: int = 3, beam: int = 2,
        depth: int = 2) -> SearchRun:
    return asyncio.run(search(gateway, api_key, breadth, beam, depth))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", default="127.0.0.1:50051")
    parser.add_argument("--api-key", default=os.environ.get("OSTINATO_API_KEY"),
                        help="a tenant's key (default: $OSTINATO_API_KEY; none with --no-auth)")
    parser.add_argument("--breadth", type=int, default=3, help="children per node")
    parser.add_argument("--beam", type=int, default=2, help="nodes kept per level")
    parser.add_argument("--depth", type=int, default=2, help="levels below the root")
    args = parser.parse_args(argv)
    if min(args.breadth, args.beam, args.depth) < 1:
        parser.error("--breadth, --beam and --depth must be at least 1")
    result = run(args.gateway, args.api_key, args.breadth, args.beam, args.depth)
    print(f"program {result.program_id}: {PROBLEM}")

    def show(node: Node, indent: int) -> None:
        kept = any(node in level for level in result.survivors) or node.parent is None
        score = "  " if node.parent is None else f"{node.score:>2}" if node.score else "--"
        print(f"{'  ' * indent}{node.path:<6} score {score} {'kept  ' if kept else 'pruned'}"
              f" call {node.proposal.call_id} on {node.proposal.worker_id}: "
              f"{node.proposal.text[:40]!r}")
        for child in node.children:
            show(child, indent + 1)

    show(result.root, 0)
    print(f"final (joins {', '.join(n.path for n in result.survivors[-1])}): "
          f"{result.final.text[:80]!r}")
    print(result.summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
