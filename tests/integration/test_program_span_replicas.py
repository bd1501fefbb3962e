"""A program started through one gateway and ended through another (a load balancer that
spreads a client's RPCs): the program's span, held by the first, ends there with the
program's summary, while both run, instead of staying open until it expires as idle
(replicas review 2026-12-05 F3). The second gateway tells the first through Redis
(tracing/program_ends.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import ostinato
from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh
from tracing import genai
from tracing.span_file import SpanRecord, read_spans

USER = [{"role": "user", "content": "Plan the trip."}]


@pytest.fixture(scope="module")
def two_gateways(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mesh, str, Path]]:
    """A mesh whose services write spans to one file, and a second gateway on its planner
    and Redis (as a Deployment's second replica)."""
    trace_file = tmp_path_factory.mktemp("traces") / "spans.jsonl"
    cfg = load_mesh_config(None, environ={}, overrides={
        "workers": 1, "gateway": {"semantic_cache": False, "allow_anonymous": True},
        "telemetry": {"traces": "file", "trace_file": str(trace_file)},
        "sim_engine": {"time_scale": 0.1}})
    mesh = Mesh(cfg, ephemeral_ports=True)
    mesh.start()
    try:
        second = mesh._spawn("gateway-b", [
            "gateway", "--planner-address", mesh.endpoints.planner, "--port", "0",
            "--http-port", "-1", "--metrics-port", "-1"], mesh.workdir / "mesh.yaml")
        info = mesh._wait(second, 60)
        yield mesh, str(info["address"]), trace_file
    finally:
        mesh.close()


def _program_span(trace_file: Path, program_id: str, deadline_s: float = 60.0) -> SpanRecord:
    """The program's span once a gateway has exported it (the spans of a batch are written
    within 200 ms of their end; the deadline only bounds a failure)."""
    deadline = time.monotonic() + deadline_s
    while True:
        if trace_file.exists():
            found = [s for s in read_spans(trace_file)
                     if s.name.startswith(genai.INVOKE_WORKFLOW)
                     and str(s.attributes.get(genai.PROGRAM_ID, "")).endswith(program_id)]
            if found:
                (span,) = found
                return span
        assert time.monotonic() < deadline, "the program's span was never exported"
        time.sleep(0.1)


def test_a_program_ended_through_another_gateway_ends_its_span_where_it_started(
        two_gateways: tuple[Mesh, str, Path]) -> None:
    mesh, second, trace_file = two_gateways
    with ostinato.Client(mesh.endpoints.gateway) as first_client, \
            ostinato.Client(second) as second_client:
        started = first_client.program(program_class="split")
        started.call(call_id="a1", messages=USER, max_tokens=4)
        # reopened by id through the other gateway (StartProgram is idempotent), ended there
        reopened = second_client.program(program_id=started.program_id, program_class="split")
        reopened.call(call_id="b1", messages=USER, parents=["a1"], max_tokens=4)
        summary = reopened.end()
        # both gateways still run: the span was ended by the first on the second's word
        span = _program_span(trace_file, started.program_id)
    assert span.service == "ostinato-gateway"
    assert span.attributes[genai.PROGRAM_END] == "ended"  # not "expired" or "shutdown"
    assert span.attributes[genai.PROGRAM_CALLS_COMPLETED] == summary.calls_completed == 2
    assert span.attributes[genai.USAGE_OUTPUT] == summary.usage.completion_tokens
