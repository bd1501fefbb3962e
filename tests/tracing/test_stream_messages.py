"""A stream message's span where this process records none: no span of ours, only the
caller's context when it sent one (so that the trace still reaches the engines)."""

from __future__ import annotations

import pytest
from opentelemetry import trace

from ostinato.v1 import planner_pb2
from tracing import stream_messages
from tracing.grpc_interceptors import SpanDescriber

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
DESCRIBER = SpanDescriber(name=lambda request: "admit", attributes=lambda request: {"a": 1})


@pytest.fixture(autouse=True)
def not_recording(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream_messages, "recording", lambda: False)


@pytest.mark.parametrize(("describer", "context"), [
    (None, {}), (None, {"traceparent": TRACEPARENT}), (DESCRIBER, {})])
def test_nothing_to_record_or_pass_on_is_no_span(describer: SpanDescriber | None,
                                                 context: dict[str, str]) -> None:
    assert stream_messages.message_span(describer, planner_pb2.AdmitRequest(), context) is None


def test_the_callers_context_is_passed_on_unrecorded() -> None:
    span = stream_messages.message_span(DESCRIBER, planner_pb2.AdmitRequest(),
                                        {"traceparent": TRACEPARENT})
    assert span is not None and not span.is_recording()
    ctx = span.get_span_context()
    assert (f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}") == (
        "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331")
    assert isinstance(span, trace.NonRecordingSpan)


def test_a_message_span_marked_failed_names_its_error_type() -> None:
    """Trace review 2026-12-06: a worker's generation cut by its deadline ended in error
    with no `error.type`, where the gateway's call span says DEADLINE_EXCEEDED."""
    import grpc
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tracing import genai
    from tracing.stream_messages import mark_failed

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    span = provider.get_tracer("test").start_span("ostinato.worker.generate")
    mark_failed(span, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    span.end()
    [done] = exporter.get_finished_spans()
    assert done.attributes is not None
    assert done.attributes[genai.ERROR_TYPE] == "DEADLINE_EXCEEDED"
    assert done.attributes["rpc.grpc.status_code"] == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
