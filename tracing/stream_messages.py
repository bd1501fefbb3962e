"""What the server interceptors do for an RPC, done for one message of a multiplexed stream
(AdmitStream, GenerateStream): its log lines name its call, and its server span continues
the trace context the message carries."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc
import structlog
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracing import genai
from tracing.grpc_interceptors import SpanDescriber, recording

_tracer = trace.get_tracer("ostinato.grpc")


class Refused(Exception):
    """A message's operation ends with this status (its unary RPC aborts with it)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


def bind_call_ids(request: Any) -> None:
    """This task's log lines name the request's tenant, program and call (as an RPC's do);
    call it in the message's own task."""
    structlog.contextvars.bind_contextvars(**{k: v for k, v in (
        ("tenant", request.tenant), ("program_id", request.program_id),
        ("call_id", request.call_id)) if v})


def message_span(describer: SpanDescriber | None, request: Any,
                 trace_context: Mapping[str, str]) -> trace.Span | None:
    """The message's server span, a child of the caller's; None when spans are not recorded
    here and the caller sent no trace context. Not recorded, it is the caller's context
    (to be passed on), not a span of ours."""
    if describer is None or (not trace_context and not recording()):
        return None
    parent = propagate.extract(dict(trace_context))
    if not recording():
        return trace.get_current_span(parent)
    return _tracer.start_span(describer.name(request), context=parent, kind=SpanKind.SERVER,
                              attributes=dict(describer.attributes(request)))


def mark_failed(span: trace.Span | None, code: grpc.StatusCode, details: str) -> None:
    """The span ends with the status the message's operation ended with, and its
    `error.type` the code's name, as the gateway's call spans say it (trace review
    2026-12-06: a worker's generation cut by its deadline had none)."""
    if span is not None:
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        span.set_attribute(genai.ERROR_TYPE, code.name)
        span.set_status(Status(StatusCode.ERROR, f"{code.name}: {details}"))
