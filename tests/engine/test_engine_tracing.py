"""Real SGLang joins an Ostinato trace. A worker launches SGLang with `--enable-trace
--otlp-traces-endpoint host:port` when the mesh exports OTLP over gRPC (`sglang_command`, field
`otlp_traces_endpoint`), and its client sends the current context as a W3C `traceparent` header
with every engine request.

SGLang 0.5.23 (sglang/srt/observability/trace.py, TraceReqContext.trace_req_start) opens one
root span per request, named " Req <first 8 characters of the rid>" (the role prefix is empty
when not disaggregated; the rid is cut after its last "_"), with attributes `rid`, `module`
("sglang::request") and `gen_ai.*` (usage, max_tokens, finish reasons, latencies). Its parent is
the span of the incoming traceparent, in that span's trace. Under it, one thread span per
process that handled the request ("Tokenizer(host:… | pid:…)", "Scheduler [TP 0]  [PP 0]
(host:… | pid:…)"), and under those the request's stages ("tokenize", "api_server_dispatch";
"request_process", "prefill_waiting", "prefill_forward", "decode_forward" with a "decode_loop"
per step), each linked to the stage before it. All spans are INTERNAL; the service is "sglang"
(no --otlp-service-name, no OTEL_SERVICE_NAME). A request without a traceparent starts a trace
of its own, with a 64-bit trace id (SGLang's TraceCustomIdGenerator); so do its warm-up and
/health_generate requests.

SGLang's BatchSpanProcessor exports every SGLANG_OTLP_EXPORTER_SCHEDULE_DELAY_MILLIS (500 ms by
default; 100 here: the engine inherits the test's environment). The test polls the in-process
OTLP receiver until the spans it needs have arrived, within a bounded deadline."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from tests.ports import fixed_port
from tests.tracing.otlp_receiver import Received, grpc_receiver
from tracing.span_file import SpanRecord
from workers.engine_process import EngineLaunch, EngineProcess, sglang_command
from workers.sglang_client import EngineRequest, SGLangClient

pytestmark = pytest.mark.engine

DEADLINE_S = 90.0  # from the request's end to its spans at the receiver (100 ms batches)
SERVICE = "sglang"  # trace.py: --otlp-service-name, else OTEL_SERVICE_NAME, else "sglang"


@asynccontextmanager
async def traced_engine(build: Path, tmp: Path, otlp: str) -> AsyncIterator[SGLangClient]:
    """One engine launched as a worker launches it when the mesh exports OTLP over gRPC."""
    spec = EngineLaunch(launch=str(build / "launch"), model=str(build / "model"),
                        host="127.0.0.1", port=fixed_port(),
                        extra_args="--max-running-requests 4 --max-total-tokens 8192",
                        otlp_traces_endpoint=otlp)
    cmd = sglang_command(spec)
    assert cmd[cmd.index("--enable-trace"):][:3] == ["--enable-trace", "--otlp-traces-endpoint",
                                                     otlp]
    process = EngineProcess(spec, start_timeout_s=400, log_path=str(tmp / "traced.log"))
    client = SGLangClient(await process.start())
    try:
        yield client
    finally:
        await client.close()
        await process.stop()


def rid_of(span: SpanRecord) -> str | None:
    return span.attributes.get("rid")


def trace_of(spans: list[SpanRecord], rid: str) -> list[SpanRecord]:
    """Every span in the trace of the request whose root span carries `rid`."""
    traces = {s.trace_id for s in spans if rid_of(s) == rid}
    return [s for s in spans if s.trace_id in traces]


def has_request_spans(rid: str) -> Callable[[list[SpanRecord]], bool]:
    """The request's root span and both its processes' thread spans (each with a stage under
    it) have arrived: what SGLang exports for one finished request."""
    def done(spans: list[SpanRecord]) -> bool:
        mine = trace_of(spans, rid)
        names = [s.name for s in mine]
        return (any(rid_of(s) == rid for s in mine)
                and any(n.startswith("Tokenizer") for n in names)
                and any(n.startswith("Scheduler") for n in names)
                and {"tokenize", "prefill_forward", "decode_forward"} <= set(names))
    return done


async def until(received: Received, done: Callable[[list[SpanRecord]], bool],
                what: str) -> list[SpanRecord]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while True:
        spans = received.spans()
        if done(spans):
            return spans
        if loop.time() > deadline:
            seen = sorted({(s.trace_id, s.name, str(rid_of(s))) for s in spans})
            raise AssertionError(f"{what}: not within {DEADLINE_S} s; received {seen}")
        await asyncio.sleep(0.2)


def thread_label(span: SpanRecord) -> str:
    """ "Scheduler [TP 0] (host:… | pid:…)" -> "Scheduler"; "Tokenizer(host:…)" -> "Tokenizer"."""
    return span.name.split("(")[0].split("[")[0].strip()


def ancestors(span: SpanRecord, by_id: dict[str, SpanRecord]) -> list[SpanRecord]:
    out = []
    while span.parent_id in by_id:
        span = by_id[span.parent_id]
        out.append(span)
    return out


async def test_sglang_continues_the_callers_trace(engine_build: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SGLANG_OTLP_EXPORTER_SCHEDULE_DELAY_MILLIS", "100")
    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", raising=False)  # grpc
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    # Hyphens only: SGLang takes the part of a rid after its last "_" as the request's name.
    traced_rid = f"traced-{uuid.uuid4().hex}"
    plain_rid = f"plain-{uuid.uuid4().hex}"
    tracer = TracerProvider().get_tracer(__name__)  # local: the global provider stays as is

    with grpc_receiver() as (otlp, received):
        async with traced_engine(engine_build, tmp_path, otlp) as client:
            with tracer.start_as_current_span("program step") as step:
                out = await client.generate_once(EngineRequest(
                    rid=traced_rid, text="the engine joins the trace " * 4,
                    sampling_params={"max_new_tokens": 6, "ignore_eos": True}))
            assert out.finish_reason == "length" and out.completion_tokens == 6
            caller = step.get_span_context()
            trace_id, step_id = f"{caller.trace_id:032x}", f"{caller.span_id:016x}"

            assert not trace.get_current_span().get_span_context().is_valid
            plain = await client.generate_once(EngineRequest(  # no traceparent sent
                rid=plain_rid, text="a request outside any trace " * 4,
                sampling_params={"max_new_tokens": 4, "ignore_eos": True}))
            assert plain.finished

            spans = await until(received, has_request_spans(traced_rid),
                                "the traced request's spans")
            spans = await until(received, has_request_spans(plain_rid),
                                "the untraced request's spans")

    # The traced request: every span SGLang made for it is in the caller's trace.
    mine = trace_of(spans, traced_rid)
    assert mine and {s.trace_id for s in mine} == {trace_id}, mine
    assert {s.service for s in mine} == {SERVICE}
    by_id = {s.span_id: s for s in mine}
    roots = [s for s in mine if s.parent_id not in by_id]
    assert len(roots) == 1, [(s.name, s.parent_id) for s in roots]
    root = roots[0]
    # SGLang's root-most span is the request's, parented on the span of the traceparent.
    assert root.parent_id == step_id
    assert root.name == f" Req {traced_rid[:8]}"
    assert root.attributes["rid"] == traced_rid
    assert root.attributes["module"] == "sglang::request"
    assert root.attributes["gen_ai.request.id"] == traced_rid
    assert root.attributes["gen_ai.request.max_tokens"] == 6
    assert root.attributes["gen_ai.usage.completion_tokens"] == out.completion_tokens
    assert root.attributes["gen_ai.usage.prompt_tokens"] == out.prompt_tokens
    assert root.attributes["gen_ai.response.finish_reasons"] == '["length"]'
    assert root.start_ns <= min(s.start_ns for s in mine)
    # Under it: one thread span per process, the request's stages under those.
    threads = {thread_label(s): s for s in mine if s.parent_id == root.span_id}
    assert set(threads) == {"Tokenizer", "Scheduler"}, sorted(s.name for s in mine)
    assert "[TP 0]" in threads["Scheduler"].name
    stages = {s.name: thread_label(ancestors(s, by_id)[-2]) for s in mine
              if s is not root and s.parent_id != root.span_id}
    assert stages["tokenize"] == "Tokenizer"
    assert stages["api_server_dispatch"] == "Tokenizer"
    assert stages["request_process"] == stages["prefill_forward"] == "Scheduler"
    assert stages["decode_forward"] == stages["decode_loop"] == "Scheduler"
    assert all(ancestors(s, by_id)[-1] is root for s in mine if s is not root)

    # The untraced request: a trace of its own, SGLang's root span without a parent.
    theirs = trace_of(spans, plain_rid)
    assert len({s.trace_id for s in theirs}) == 1
    plain_trace = theirs[0].trace_id
    assert plain_trace != trace_id
    (plain_root,) = [s for s in theirs if rid_of(s) == plain_rid]
    assert plain_root.parent_id == "" and plain_root.name == f" Req {plain_rid[:8]}"
    assert {s.service for s in theirs} == {SERVICE}
    # SGLang's own id generator (TraceCustomIdGenerator) makes 64-bit trace ids.
    assert plain_trace.startswith("0" * 16), plain_trace
