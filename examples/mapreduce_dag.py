"""A map-reduce summarizer declared as a DAG and run server-side (Gateway.RunProgram).

    python examples/mapreduce_dag.py --gateway 127.0.0.1:50051 --api-key KEY [--docs DIR]

One map node per document of examples/data/docs/ summarizes it; the reduce node depends on
every map node and its prompt references their outputs as {{node_id}} templates, which the
gateway fills in when they finish. The whole DAG is one request: no client round trips
between nodes, and the planner knows the program's remaining work up front. The gateway
streams node events (started on a worker, text deltas, finished with its result) and, last,
the program's summary.

The Python SDK has no DAG helper yet: this uses the generated stubs (ostinato.v1) with the
SDK's `call_spec` to build each node's CallSpec.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from ostinato.sdk_types import call_spec
from ostinato.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

DOCS_DIR = Path(__file__).resolve().parent / "data" / "docs"
SYSTEM = "You write short, factual summaries."


@dataclass
class DagRun:
    program_id: str = ""
    nodes: list[gateway_pb2.DagNode] = field(default_factory=list)
    events: list[gateway_pb2.ProgramEvent] = field(default_factory=list)
    results: dict[str, common_pb2.CallResult] = field(default_factory=dict)  # node id -> result
    summary: common_pb2.ProgramSummary | None = None

    @property
    def reduce_text(self) -> str:
        return self.results["reduce"].text


def declare(docs: Sequence[Path], max_tokens: int = 48) -> list[gateway_pb2.DagNode]:
    """map-<stem> for each document, then `reduce` over all of them."""
    nodes = [gateway_pb2.DagNode(id=f"map-{doc.stem}", call=call_spec(
        messages=[{"role": "system", "content": SYSTEM},
                  {"role": "user", "content": f"Summarize in two sentences:\n\n{doc.read_text()}"}],
        max_tokens=max_tokens)) for doc in docs]
    bullets = "\n".join(f"- {{{{{n.id}}}}}" for n in nodes)
    nodes.append(gateway_pb2.DagNode(id="reduce", depends_on=[n.id for n in nodes], call=call_spec(
        messages=[{"role": "system", "content": SYSTEM},
                  {"role": "user", "content": "Combine these summaries into one paragraph "
                                              f"about Lyon:\n{bullets}"}],
        max_tokens=2 * max_tokens)))
    return nodes


def run(gateway: str, api_key: str | None, docs_dir: Path = DOCS_DIR,
        timeout_s: float = 60.0) -> DagRun:
    docs = sorted(docs_dir.glob("*.md"))
    if not docs:
        raise ValueError(f"no .md documents in {docs_dir}")
    result = DagRun(nodes=declare(docs))
    metadata = (("authorization", f"Bearer {api_key}"),) if api_key else ()
    request = gateway_pb2.RunProgramRequest(
        options=common_pb2.ProgramOptions(program_class="mapreduce"), nodes=result.nodes)
    with grpc.insecure_channel(gateway) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        for event in stub.RunProgram(request, metadata=metadata, timeout=timeout_s):
            result.events.append(event)
            result.program_id = event.program_id
            if event.HasField("node_finished"):
                result.results[event.node_finished.node_id] = event.node_finished.result
            elif event.HasField("program_finished"):
                result.summary = event.program_finished
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gateway", default="127.0.0.1:50051")
    parser.add_argument("--api-key", help="a tenant's key (none with `ostinato up --no-auth`)")
    parser.add_argument("--docs", type=Path, default=DOCS_DIR, help="a folder of .md documents")
    args = parser.parse_args(argv)
    try:
        result = run(args.gateway, args.api_key, args.docs)
    except grpc.RpcError as exc:
        print(f"RunProgram failed: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1
    print(f"program {result.program_id}")
    for event in result.events:
        if event.HasField("node_started"):
            print(f"  started  {event.node_started.node_id:<16} on {event.node_started.worker_id}")
        elif event.HasField("node_finished"):
            r = event.node_finished.result
            print(f"  finished {event.node_finished.node_id:<16} {r.timings.total_s * 1000:5.0f} ms "
                  f"{r.usage.completion_tokens:3d} tokens: {r.text[:50]!r}")
    print("summary:", result.reduce_text)
    if result.summary is not None:
        print(f"done: {result.summary.calls_completed} calls, "
              f"{result.summary.usage.completion_tokens} tokens out")
    return 0 if result.summary is not None else 1


if __name__ == "__main__":
    sys.exit(main())
