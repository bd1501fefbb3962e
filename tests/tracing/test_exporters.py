"""Trace exporters from the telemetry config, each against a real receiver or file."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)

from ostinato.config import ConfigError, TelemetryConfig
from tests.tracing.otlp_receiver import grpc_receiver
from tracing.file_exporter import JsonLinesSpanExporter
from tracing.otlp_json import request_json
from tracing.setup import SHUTDOWN_FLUSH_MS, BoundedBatchSpanProcessor, exporters_for
from tracing.span_file import read_spans, spans_of_request


def _emit(exporter: SpanExporter, names: list[str]) -> None:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span(names[0], attributes={"gen_ai.usage.input_tokens": 7,
                                                            "ostinato.call.parents": ["a", "b"]}):
        for name in names[1:]:
            with tracer.start_as_current_span(name):
                pass
    provider.shutdown()


@pytest.mark.parametrize(("fields", "error"), [
    ({"traces": "jaeger"}, "unknown exporter 'jaeger'"),
    ({"traces": "file"}, "trace_file: required"),
    ({"sample_ratio": 1.5}, "sample_ratio"),
    ({"traces": "console, otlp-http"}, None),
    ({"traces": ""}, None),
    # the collector's address, refused as the config is read (a walkthrough: a traceback
    # from the planner, or nothing at all)
    ({"traces": "otlp-grpc", "otlp_endpoint": "http://[bad"}, "otlp_endpoint: expected"),
    ({"traces": "otlp-grpc", "otlp_endpoint": "localhost:notaport"}, "otlp_endpoint: expected"),
    ({"traces": "otlp-grpc", "otlp_endpoint": "ftp://x:1"}, "otlp_endpoint: expected"),
    ({"traces": "otlp-grpc", "otlp_endpoint": "localhost:70000"}, "otlp_endpoint: expected"),
    ({"traces": "otlp-http", "otlp_endpoint": "localhost:4318"}, None),
    ({"traces": "otlp-grpc", "otlp_endpoint": "localhost:4317"}, None),
    ({"traces": "otlp-grpc", "otlp_endpoint": "http://[::1]:4317"}, None),
    ({"traces": "otlp-http", "otlp_endpoint": "https://otel.example:4318/v1/traces"}, None),
])
def test_telemetry_config_is_checked(fields: dict, error: str | None) -> None:
    if error is None:
        TelemetryConfig(**fields)
    else:
        with pytest.raises(ConfigError, match=error):
            TelemetryConfig(**fields)


def test_no_exporters_no_provider() -> None:
    assert exporters_for(TelemetryConfig()) == []
    (console,) = exporters_for(TelemetryConfig(traces="console"))
    assert isinstance(console, ConsoleSpanExporter)


def test_otlp_grpc_exporter_reaches_a_real_receiver() -> None:
    with grpc_receiver() as (address, received):
        (exporter,) = exporters_for(TelemetryConfig(traces="otlp-grpc",
                                                    otlp_endpoint=f"http://{address}"))
        _emit(exporter, ["parent", "child"])
        spans = {s.name: s for s in received.spans()}
    assert set(spans) == {"parent", "child"}
    assert spans["child"].parent_id == spans["parent"].span_id
    assert spans["parent"].attributes["gen_ai.usage.input_tokens"] == 7
    assert spans["parent"].attributes["ostinato.call.parents"] == ["a", "b"]


@pytest.fixture
def http_receiver() -> Iterator[tuple[str, list[trace_service_pb2.ExportTraceServiceRequest]]]:
    """OTLP/HTTP: POST /v1/traces with a protobuf ExportTraceServiceRequest."""
    got: list[trace_service_pb2.ExportTraceServiceRequest] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            ok = self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf"
            if ok:
                got.append(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200 if ok else 400)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", got
    finally:
        server.shutdown()
        server.server_close()


def test_otlp_http_exporter_reaches_a_real_receiver(http_receiver) -> None:  # type: ignore[no-untyped-def]
    address, got = http_receiver
    (exporter,) = exporters_for(TelemetryConfig(traces="otlp-http", otlp_endpoint=address))
    _emit(exporter, ["parent", "child"])
    spans = {s.name for r in got for s in spans_of_request(request_json(r))}
    assert spans == {"parent", "child"}


def test_processes_appending_to_one_file_never_mix_lines(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    exporters = [JsonLinesSpanExporter(str(path)) for _ in range(4)]
    threads = [threading.Thread(target=_emit, args=(e, [f"s{i}-{j}" for j in range(30)]))
               for i, e in enumerate(exporters)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with open(path, "ab") as f:
        f.write(b'{"resourceSpans": [{"cut sho')  # a process killed mid-write
    names = sorted(s.name for s in read_spans(path))
    assert names == sorted(f"s{i}-{j}" for i in range(4) for j in range(30))


def test_direct_otlp_json_equals_protobufs_json_mapping() -> None:
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import (
        Link,
        NonRecordingSpan,
        SpanContext,
        SpanKind,
        Status,
        StatusCode,
        TraceFlags,
        TraceState,
    )

    from tracing.otlp_json import to_otlp_json

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test", "1.2")
    with tracer.start_as_current_span("root", kind=SpanKind.SERVER) as root:  # noqa: SIM117
        with tracer.start_as_current_span("child", kind=SpanKind.CLIENT, links=[
                Link(root.get_span_context(), {"why": "step"})], attributes={
                "i": 7, "f": 0.5, "b": True, "s": "x", "ls": ["a", "b"], "li": [1, 2],
                "lf": [0.5], "lb": [True]}) as child:
            child.add_event("first", {"n": 1})
            child.set_status(Status(StatusCode.ERROR, "broke"))
    remote = SpanContext(0x1234, 0x5678, True, TraceFlags(1), TraceState([("vendor", "v1")]))
    with tracer.start_as_current_span(  # under a caller's span: its trace state, remote flags
            "served", context=trace.set_span_in_context(NonRecordingSpan(remote)),
            links=[Link(remote)]):
        pass
    spans = exporter.get_finished_spans()
    direct = list(spans_of_request(to_otlp_json(spans)))
    assert direct == list(spans_of_request(request_json(encode_spans(spans))))

    def raw(request: dict) -> list[dict]:  # (tracing review 2026-12-05 F7: these were dropped)
        return [{k: s.get(k) for k in ("name", "flags", "traceState")} | {"links": [
            {k: ln.get(k) for k in ("flags", "traceState")} for ln in s.get("links", [])]}
            for rs in request["resourceSpans"] for ss in rs["scopeSpans"] for s in ss["spans"]]

    assert raw(to_otlp_json(spans)) == raw(request_json(encode_spans(spans)))
    assert any(s["traceState"] == "vendor=v1" for s in raw(to_otlp_json(spans)))
    assert {s.name: s.kind for s in direct} == {"root": "SERVER", "child": "CLIENT",
                                                "served": "INTERNAL"}
    child_record = next(s for s in direct if s.name == "child")
    assert child_record.status == "ERROR" and child_record.attributes["li"] == [1, 2]


class _Unreachable(SpanExporter):
    """An exporter whose export never gets through (as an OTLP exporter retrying against a
    collector that is down) until it is shut down."""

    def __init__(self) -> None:
        self.exporting = threading.Event()
        self.shut = threading.Event()
        self.returned = threading.Event()
        self.released_by_shutdown = False

    def export(self, spans):  # type: ignore[no-untyped-def]
        self.exporting.set()
        # (gives up by itself well before the SDK's own 30 s bound, after ours)
        self.released_by_shutdown = self.shut.wait(20)
        self.returned.set()
        return SpanExportResult.FAILURE

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        self.shut.set()


def test_a_stopping_process_waits_a_bounded_time_for_its_last_spans() -> None:
    """The SDK's BatchSpanProcessor, shut down by TracerProvider.shutdown (at exit), waits up to
    30 s for an export; ours gives it SHUTDOWN_FLUSH_MS, then shuts the exporter down."""
    exporter = _Unreachable()
    provider = TracerProvider()
    provider.add_span_processor(BoundedBatchSpanProcessor(exporter, schedule_delay_millis=1))
    with provider.get_tracer("test").start_as_current_span("last"):
        pass
    assert exporter.exporting.wait(30)
    provider.shutdown()
    assert exporter.returned.wait(30)
    assert exporter.released_by_shutdown  # not waited out: the SDK's processor fails here
    assert SHUTDOWN_FLUSH_MS <= 5_000


def test_a_nan_or_infinite_attribute_is_written_as_protobufs_json_writes_it() -> None:
    """Trace review 2026-12-06: a refused call's NaN temperature was written as a bare NaN,
    which no strict JSON reader (the Collector's otlpjsonfile) takes: its whole line lost."""
    import json

    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from tracing.otlp_json import to_otlp_json

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("test").start_as_current_span("refused", attributes={
            "nan": float("nan"), "inf": float("inf"), "ninf": float("-inf"), "f": 0.5}):
        pass
    spans = exporter.get_finished_spans()

    def values(request: dict) -> dict:
        [span] = [s for rs in request["resourceSpans"] for ss in rs["scopeSpans"]
                  for s in ss["spans"]]
        return {a["key"]: a["value"] for a in span["attributes"]}

    written = json.dumps(to_otlp_json(spans), allow_nan=False)  # strict JSON
    assert values(json.loads(written)) == values(request_json(encode_spans(spans))) == {
        "nan": {"doubleValue": "NaN"}, "inf": {"doubleValue": "Infinity"},
        "ninf": {"doubleValue": "-Infinity"}, "f": {"doubleValue": 0.5}}
