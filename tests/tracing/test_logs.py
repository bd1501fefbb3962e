"""Every log line carries the current span's trace and span ids."""

from __future__ import annotations

from opentelemetry.sdk.trace import TracerProvider

from tracing.logs import add_trace_ids


def test_trace_ids_added_inside_a_span_only() -> None:
    assert add_trace_ids(None, "info", {"event": "x"}) == {"event": "x"}
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("s") as span:
        event = add_trace_ids(None, "info", {"event": "x"})
    ctx = span.get_span_context()
    assert event == {"event": "x", "trace_id": format(ctx.trace_id, "032x"),
                     "span_id": format(ctx.span_id, "016x")}
