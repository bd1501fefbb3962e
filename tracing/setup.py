"""One TracerProvider per service process, exporting where the mesh config says.

`configure_tracing` is called once by each service's entry point (ostinato/cli.py); the
span code lives in interceptors, HTTP middleware and the traced call path, never in the
cores. Without exporters no provider is installed and every span is a no-op.
"""

from __future__ import annotations

import atexit

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
    SpanExporter,
)
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from ostinato.config import TelemetryConfig
from tracing.file_exporter import JsonLinesSpanExporter

SERVICE_NAMESPACE = "ostinato"
# How long a stopping process waits for its last spans to be exported. A live collector takes
# them in milliseconds; an unreachable one had each process retry for 6-7 s (the OTLP
# exporters' backoff) before it could exit, after which the batch is dropped anyway.
SHUTDOWN_FLUSH_MS = 2_000


class BoundedBatchSpanProcessor(BatchSpanProcessor):
    """A BatchSpanProcessor whose shutdown waits at most SHUTDOWN_FLUSH_MS for the export in
    progress, then shuts its exporter down (which ends an OTLP exporter's retries). The SDK's
    takes no bound (TracerProvider.shutdown calls it bare, and it then waits up to 30 s)."""

    def shutdown(self) -> None:
        self._batch_processor.shutdown(timeout_millis=SHUTDOWN_FLUSH_MS)


def _otlp_grpc(endpoint: str) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    if not endpoint:
        return OTLPSpanExporter()
    insecure = not endpoint.startswith("https://")
    return OTLPSpanExporter(endpoint=endpoint, insecure=insecure)


def _otlp_http(endpoint: str) -> SpanExporter:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    if endpoint and not endpoint.startswith(("http://", "https://")):
        endpoint = f"http://{endpoint}/v1/traces"
    return OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()


def exporters_for(cfg: TelemetryConfig) -> list[SpanExporter]:
    out: list[SpanExporter] = []
    for name in cfg.exporters():
        if name == "otlp-grpc":
            out.append(_otlp_grpc(cfg.otlp_endpoint))
        elif name == "otlp-http":
            out.append(_otlp_http(cfg.otlp_endpoint))
        elif name == "console":
            out.append(ConsoleSpanExporter())
        else:
            out.append(JsonLinesSpanExporter(cfg.trace_file, max_bytes=cfg.trace_file_max_mb << 20))
    return out


def configure_tracing(service: str, cfg: TelemetryConfig,
                      instance: str = "") -> TracerProvider | None:
    """Installs the global TracerProvider of this process (service.name `ostinato-<service>`).

    Sampling follows the caller's traceparent when it has one, else `sample_ratio`. Spans
    are batched (flushed every 200 ms, and at exit within SHUTDOWN_FLUSH_MS)."""
    exporters = exporters_for(cfg)
    if not exporters:
        return None
    attrs = {"service.name": f"{SERVICE_NAMESPACE}-{service}",
             "service.namespace": SERVICE_NAMESPACE}
    if instance:
        attrs["service.instance.id"] = instance
    provider = TracerProvider(resource=Resource.create(attrs),
                              sampler=ParentBased(TraceIdRatioBased(cfg.sample_ratio)))
    for exporter in exporters:
        if isinstance(exporter, ConsoleSpanExporter):
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            provider.add_span_processor(BoundedBatchSpanProcessor(exporter,
                                                                    schedule_delay_millis=200))
    trace.set_tracer_provider(provider)
    atexit.register(provider.shutdown)
    return provider
