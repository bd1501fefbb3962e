"""Writes the spans of test programs as the services do: the real OpenTelemetry SDK, one
TracerProvider per service (resource service.name), each exporting through its own
JsonLinesSpanExporter appending to one file, with explicit times and parents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracing import genai
from tracing.file_exporter import JsonLinesSpanExporter

T0_NS = 1_750_000_000 * 10**9  # second 0 of every test program
MODEL = "sim/llama-3.1-8b"
GATEWAY, PLANNER, WORKER, ENGINE = ("ostinato-gateway", "ostinato-planner", "ostinato-worker",
                                    "ostinato-sim-engine")


def ns(t_s: float) -> int:
    return T0_NS + round(t_s * 1e9)


@dataclass(frozen=True)
class CallSpec:
    """One call of a test program; times in seconds from T0."""

    call_id: str
    thread: str
    start: float
    end: float
    parents: tuple[str, ...] = ()
    worker: str = ""
    cache_hit: str = "miss"
    admits: tuple[tuple[float, float], ...] = ()  # one per attempt
    engine: tuple[float, float] | None = None  # the engine request span
    first_token: float | None = None  # the ostinato.first_token event
    ttft_s: float | None = None  # ostinato.time_to_first_token_s on the engine request
    lookup: bool = True  # an ostinato.cache.lookup span
    error: str = ""  # status message of a failed call
    tokens: tuple[int, int, int] = (0, 0, 0)  # input, output, cache read
    error_type: str = ""  # error.type of a failed call, as the gateway sets it (a gRPC code)
    refused: bool = False  # refused before it ran: no result attributes, its admits failed
    kind: str = ""  # ostinato.program.kind: a program without a program span by design


@dataclass
class SpanWriter:
    path: Path
    _providers: dict[str, TracerProvider] = field(default_factory=dict)

    def _tracer(self, service: str) -> trace.Tracer:
        if service not in self._providers:
            provider = TracerProvider(resource=Resource.create({"service.name": service}))
            provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(str(self.path))))
            self._providers[service] = provider
        return self._providers[service].get_tracer("tests.tracing")

    def span(self, service: str, name: str, start: float, end: float, parent: trace.Span | None = None,
             kind: SpanKind = SpanKind.INTERNAL, attributes: dict[str, Any] | None = None,
             events: Sequence[tuple[str, float]] = (), error: str = "") -> trace.Span:
        ctx = trace.set_span_in_context(parent) if parent is not None else None
        span = self._tracer(service).start_span(name, context=ctx, kind=kind,
                                                attributes=attributes or {}, start_time=ns(start))
        for event, at in events:
            span.add_event(event, timestamp=ns(at))
        if error:
            span.set_status(Status(StatusCode.ERROR, error))
        span.end(end_time=ns(end))
        return span

    def close(self) -> None:
        for provider in self._providers.values():
            provider.shutdown()


def write_call(w: SpanWriter, program_id: str, parent: trace.Span | None, c: CallSpec,
               tenant: str = "acme") -> None:
    """The gateway's call span and what the planner, worker and engine record under it; a
    refused request (gateway/spans.py) has the request's attributes only, error.type and an
    error status, and its admit spans (the planner refusing it) failed too."""
    attrs: dict[str, Any] = {
        genai.OPERATION: genai.CHAT, genai.REQUEST_MODEL: MODEL, genai.CONVERSATION_ID: program_id,
        genai.TENANT: tenant,
        genai.CALL_ID: c.call_id, genai.THREAD_ID: c.thread, genai.CALL_PARENTS: list(c.parents),
    }
    if not c.refused:
        attrs.update({
            genai.CACHE_HIT: c.cache_hit, genai.PRIORITY: 1, genai.USAGE_INPUT: c.tokens[0],
            genai.USAGE_OUTPUT: c.tokens[1], genai.USAGE_CACHE_READ: c.tokens[2],
            genai.RESPONSE_FINISH_REASONS: ["error" if c.error else "stop"]})
    if c.worker:
        attrs[genai.WORKER_ID] = c.worker
    if c.error_type:
        attrs[genai.ERROR_TYPE] = c.error_type
    if c.kind:
        attrs[genai.PROGRAM_KIND] = c.kind
    call = w.span(GATEWAY, genai.span_name(genai.CHAT, MODEL), c.start, c.end, parent,
                  SpanKind.SERVER, attrs, error=c.error)
    if c.lookup:
        w.span(GATEWAY, genai.SPAN_CACHE_LOOKUP, c.start, c.start + 0.005, call,
               attributes={genai.CACHE_LOOKUP_RESULT: c.cache_hit})
    for i, (a0, a1) in enumerate(c.admits):
        admit: dict[str, Any] = {genai.CONVERSATION_ID: program_id, genai.TENANT: tenant,
                                 genai.CALL_ID: c.call_id, genai.ROUTE_POLICY: "cache_aware"}
        if c.refused:
            w.span(PLANNER, genai.SPAN_PLANNER_ADMIT, a0, a1, call, SpanKind.SERVER, admit,
                   error=c.error)
            continue
        w.span(PLANNER, genai.SPAN_PLANNER_ADMIT, a0, a1, call, SpanKind.SERVER, {
            **admit, genai.WORKER_ID: c.worker, genai.PRIORITY: 1,
            genai.ROUTE_MATCHED_BLOCKS: 3 + i, genai.PARKED: False, genai.PARKED_S: 0.0,
            genai.QUEUE_S: a1 - a0})
    if c.engine is None:
        return
    e0, e1 = c.engine
    generate = w.span(WORKER, genai.SPAN_WORKER_GENERATE, e0 - 0.005, e1 + 0.005, call,
                      SpanKind.SERVER, {genai.WORKER_ID: c.worker})
    req_attrs: dict[str, Any] = {genai.OPERATION: genai.TEXT_COMPLETION, genai.REQUEST_MODEL: MODEL,
                                 genai.USAGE_INPUT: c.tokens[0], genai.USAGE_OUTPUT: c.tokens[1],
                                 genai.SIMULATED: True}
    if c.ttft_s is not None:
        req_attrs[genai.TTFT_S] = c.ttft_s
    events = [(genai.FIRST_TOKEN_EVENT, c.first_token)] if c.first_token is not None else []
    request = w.span(WORKER, genai.span_name(genai.TEXT_COMPLETION, MODEL), e0, e1, generate,
                     SpanKind.CLIENT, req_attrs, events)
    # the engine's own server span: not part of the timeline
    w.span(ENGINE, genai.span_name(genai.TEXT_COMPLETION, MODEL), e0 + 0.001, e1 - 0.001, request,
           SpanKind.SERVER, {genai.OPERATION: genai.TEXT_COMPLETION})


def write_program(path: Path, program_id: str, calls: Sequence[CallSpec], *, tenant: str = "acme",
                  program: tuple[float, float] | None = (0.0, 3.0)) -> None:
    """A program's spans in one trace: under its program span, or, without one, under a
    client's own span (the program was still open, or another gateway holds its span)."""
    w = SpanWriter(path)
    if program is not None:
        root = w.span(GATEWAY, genai.span_name(genai.INVOKE_WORKFLOW, "fanout"), *program,
                      attributes={genai.OPERATION: genai.INVOKE_WORKFLOW,
                                  genai.CONVERSATION_ID: program_id, genai.PROGRAM_ID: program_id,
                                  genai.TENANT: tenant, genai.PROGRAM_END: "ended"})
    else:
        root = w.span("client-app", "agent run", -1.0, 10.0)
    for c in calls:
        write_call(w, program_id, root, c, tenant)
    w.close()


def write_requests(path: Path, program_id: str, calls: Sequence[CallSpec], *,
                   tenant: str = "acme") -> None:
    """Calls naming `program_id` sent where the gateway holds no span of that program (it
    ended, never existed, or another gateway holds it), from a client without spans: each
    request's call span is the root of a trace of its own."""
    w = SpanWriter(path)
    for c in calls:
        write_call(w, program_id, None, c, tenant)
    w.close()


# The main fixture: a root call fans out to three parallel calls on two workers (one answered
# from the cache), joined by a last call. Critical path: c-root -> c-b -> c-join.
FAN_OUT = (
    CallSpec("c-root", "t0", 0.0, 1.0, worker="worker-a", admits=((0.02, 0.10),),
             engine=(0.11, 0.97), first_token=0.30, tokens=(500, 100, 0)),
    CallSpec("c-a", "t1", 1.05, 1.90, ("c-root",), "worker-a", admits=((1.06, 1.20),),
             engine=(1.22, 1.88), first_token=1.40, tokens=(620, 80, 480)),
    CallSpec("c-b", "t2", 1.05, 2.30, ("c-root",), "worker-b", admits=((1.06, 1.10),),
             engine=(1.12, 2.28), first_token=1.30, tokens=(640, 200, 480)),
    CallSpec("c-c", "t3", 1.05, 1.08, ("c-root",), cache_hit="exact", tokens=(600, 50, 0)),
    CallSpec("c-join", "t0", 2.35, 2.90, ("c-a", "c-b", "c-c"), "worker-b", admits=((2.36, 2.40),),
             engine=(2.41, 2.88), first_token=2.50, tokens=(1400, 120, 900)),
)
FAN_OUT_ID = "prog-fanout-7f3a"


def write_fan_out(path: Path) -> Path:
    write_program(path, FAN_OUT_ID, FAN_OUT)
    return path
