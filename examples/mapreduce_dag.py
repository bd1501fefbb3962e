"""A declared map-reduce program run server-side by the gateway (Gateway.RunProgram).

    python examples/mapreduce_dag.py [--gateway 127.0.0.1:50051]

Each map node summarizes one chunk; the reduce node's prompt references their outputs
as {{node_id}} templates. No client round trips between nodes.
"""

from __future__ import annotations

import argparse

import grpc

from ostinato.sdk_types import call_spec
from ostinato.v1 import gateway_pb2, gateway_pb2_grpc

CHUNKS = ["Lyon sits at the confluence of the Rhone and Saone.",
          "It was the capital of Roman Gaul as Lugdunum.",
          "Its silk industry shaped the Croix-Rousse district."]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gateway", default="127.0.0.1:50051")
    args = parser.parse_args()
    nodes = [gateway_pb2.DagNode(id=f"map{i}", call=call_spec(
        prompt=f"Summarize in one line: {c}", max_tokens=24)) for i, c in enumerate(CHUNKS)]
    refs = " ".join(f"{{{{map{i}}}}}" for i in range(len(CHUNKS)))
    nodes.append(gateway_pb2.DagNode(id="reduce", depends_on=[n.id for n in nodes],
                                     call=call_spec(prompt="Combine: " + refs, max_tokens=48)))
    with grpc.insecure_channel(args.gateway) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        for event in stub.RunProgram(gateway_pb2.RunProgramRequest(nodes=nodes)):
            if event.HasField("node_finished"):
                r = event.node_finished.result
                print(f"{event.node_finished.node_id:<7} {r.worker_id} "
                      f"{r.timings.total_s * 1000:.0f} ms: {r.text[:60]}")
            elif event.HasField("program_finished"):
                print(f"done: {event.program_finished.calls_completed} calls")


if __name__ == "__main__":
    main()
