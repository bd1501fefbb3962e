"""A map-reduce summarizer declared as a DAG and run server-side (Gateway.RunProgram).

    python examples/mapreduce_dag.py --gateway 127.0.0.1:50051 --api-key KEY [--docs DIR]

One map node per document of examples/data/docs/ summarizes it; the reduce node depends on
every map node and its prompt references their outputs as {{node_id}} templates, which the
gateway fills in when they finish. The whole DAG is one request: no client round trips
between nodes, and the planner knows the program's remaining work up front. The gateway
streams node events (started on a worker, text deltas, finished with its result) and, last,
the program's summary.

The DAG is built with `ostinato.dag.Graph`: nodes name their parents by handle
(`after=[...]`) and use their outputs as templates (`node.output`); the graph is checked
(cycles, unknown parents, templates) before it is sent.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import ostinato
from ostinato.dag import Graph, NodeFinished, NodeStarted

DOCS_DIR = Path(__file__).resolve().parent / "data" / "docs"
SYSTEM = "You write short, factual summaries."


def declare(docs: Sequence[Path], max_tokens: int = 48) -> Graph:
    """map-<stem> for each document, then `reduce` over all of them."""
    g = Graph()
    maps = [g.call(id=f"map-{doc.stem}", max_tokens=max_tokens, messages=[
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Summarize in two sentences:\n\n{doc.read_text()}"}])
        for doc in docs]
    bullets = "\n".join(f"- {m.output}" for m in maps)
    g.call(id="reduce", after=maps, max_tokens=2 * max_tokens, messages=[
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"Combine these summaries into one paragraph about Lyon:\n{bullets}"}])
    return g


def run(gateway: str, api_key: str | None, docs_dir: Path = DOCS_DIR,
        timeout_s: float = 60.0) -> tuple[Graph, ostinato.dag.DagResult]:
    """The graph and its run: every event in order, each node's output, the summary."""
    docs = sorted(docs_dir.glob("*.md"))
    if not docs:
        raise ValueError(f"no .md documents in {docs_dir}")
    graph = declare(docs)
    with ostinato.Client(gateway, api_key=api_key, timeout_s=timeout_s) as client:
        return graph, client.run(graph, program_class="mapreduce")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gateway", default="127.0.0.1:50051")
    parser.add_argument("--api-key", default=os.environ.get("OSTINATO_API_KEY"),
                        help="a tenant's key (default: $OSTINATO_API_KEY; none with --no-auth)")
    parser.add_argument("--docs", type=Path, default=DOCS_DIR, help="a folder of .md documents")
    args = parser.parse_args(argv)
    try:
        _, result = run(args.gateway, args.api_key, args.docs)
    except ostinato.OstinatoError as exc:
        print(f"RunProgram failed: {exc}", file=sys.stderr)
        return 1
    print(f"program {result.program_id}")
    for event in result.events:
        if isinstance(event, NodeStarted):
            print(f"  started  {event.node_id:<16} on {event.worker_id}")
        elif isinstance(event, NodeFinished):
            out = event.output
            print(f"  finished {event.node_id:<16} {out.latency_s * 1000:5.0f} ms "
                  f"{out.usage.completion_tokens:3d} tokens: {out.text[:50]!r}")
    print("summary:", result["reduce"].text)
    if result.summary is not None:
        print(f"done: {result.summary.calls_completed} calls, "
              f"{result.summary.usage.completion_tokens} tokens out")
    return 0 if result.summary is not None else 1


if __name__ == "__main__":
    sys.exit(main())
