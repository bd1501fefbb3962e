"""A declared program run through RunProgram has a program span from its start
(TracedGatewayCore.start_program); its end goes through GatewayCore.end_placed, which must
end that span and record the program's duration, whether the DAG finished or failed (a
walkthrough found every DAG's span left open until it expired, 30 minutes on)."""

from __future__ import annotations

from types import SimpleNamespace

import grpc
import pytest
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from gateway.core import GatewayError
from gateway.program_runner import run_dag
from gateway.spans import _kind
from ostinato.sdk_types import call_spec
from ostinato.v1 import common_pb2, gateway_pb2
from tests.gateway.test_spans import _Answering, _Traced, _traced
from tracing import genai


class _DagAnswering(_Answering):
    def normalize(self, call: common_pb2.CallSpec) -> common_pb2.CallSpec:
        return call

    async def _planner_call(self, method: object, request: object, tenant: str) -> object:
        """The planner's summary of the program ended."""
        return common_pb2.ProgramSummary(program_id=request.program_id,  # type: ignore[attr-defined]
                                         calls_completed=1)



async def _nothing() -> None:
    return None


class _DagTraced(_Traced, _DagAnswering):
    pass


@pytest.mark.parametrize("code", [None, grpc.StatusCode.UNAVAILABLE])
async def test_a_dag_programs_span_ends_when_the_dag_ends(
        monkeypatch: pytest.MonkeyPatch, code: grpc.StatusCode | None) -> None:
    exporter = InMemorySpanExporter()
    core = _traced(monkeypatch, exporter, code=code)
    core.__class__ = _DagTraced
    core.config = SimpleNamespace(model="m", max_prompt_chars=1_000_000)  # type: ignore[assignment]
    core._executor = SimpleNamespace(reports_through=_nothing)  # type: ignore[assignment]
    core._planner = SimpleNamespace(EndProgram=None)  # type: ignore[assignment]
    nodes = [gateway_pb2.DagNode(id="n0", call=call_spec(prompt="hi", max_tokens=4))]
    dag = run_dag(core, "acme", common_pb2.ProgramOptions(program_id="d1"), nodes, 5.0,
                  lambda: "acme")
    if code is None:
        events = [e async for e in dag]
        assert events[-1].HasField("program_finished")
    else:
        with pytest.raises(GatewayError):
            _ = [e async for e in dag]
    assert len(core.programs) == 0  # its span no longer held open
    ended = [s for s in exporter.get_finished_spans()
             if s.attributes.get(genai.OPERATION) == genai.INVOKE_WORKFLOW]
    assert [s.attributes.get(genai.PROGRAM_END) for s in ended] == ["ended"]
    # RunProgram's hop: the program's span is its SERVER span, the nodes' INTERNAL under it
    calls = [s for s in exporter.get_finished_spans()
             if s.attributes.get(genai.OPERATION) == genai.TEXT_COMPLETION]
    assert ended[0].kind == SpanKind.SERVER and [c.kind for c in calls] == [SpanKind.INTERNAL]


@pytest.mark.parametrize(("current", "node", "kind"), [
    ("remote", False, SpanKind.SERVER),  # a gRPC Call, into a DAG's program too: its own hop
    ("none", False, SpanKind.SERVER),
    ("local", False, SpanKind.INTERNAL),  # under the HTTP route's SERVER span
    ("remote", True, SpanKind.INTERNAL),  # a DAG's node, within its RunProgram's hop
])
def test_a_call_spans_kind_is_its_hops(current: str, node: bool, kind: SpanKind) -> None:
    """One SERVER span a hop: a gRPC Call naming a DAG's program was INTERNAL under the
    program's SERVER span, its own hop left with none (diff review F6)."""
    spans = {"remote": NonRecordingSpan(SpanContext(0x1234, 0x5678, is_remote=True,
                                                    trace_flags=TraceFlags(1))),
             "local": TracerProvider().get_tracer("t").start_span("POST /v1/chat/completions",
                                                                  kind=SpanKind.SERVER)}
    token = otel_context.attach(trace.set_span_in_context(spans[current]) if current in spans
                                else otel_context.Context())
    try:
        assert _kind(node) == kind
    finally:
        otel_context.detach(token)
