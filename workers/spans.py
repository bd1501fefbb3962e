"""The worker's spans: one per Generate (SERVER), and under it the engine request
(`text_completion <model>`, CLIENT) whose traceparent header the engine continues (SGLang
with --enable-trace; the sim engine records it)."""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from ostinato.v1 import worker_pb2
from tracing import genai
from tracing.grpc_interceptors import SpanDescriber, recording
from workers.engine_output import EngineOutput
from workers.sglang_client import EngineError, EngineRequest, SGLangClient

GENERATE = "/ostinato.v1.Worker/Generate"
_tracer = trace.get_tracer("ostinato.worker")
_SAMPLING = {"max_new_tokens": genai.REQUEST_MAX_TOKENS, "temperature": genai.REQUEST_TEMPERATURE,
             "top_p": genai.REQUEST_TOP_P, "top_k": genai.REQUEST_TOP_K,
             "sampling_seed": genai.REQUEST_SEED}


def describers(worker_id: str) -> dict[str, SpanDescriber]:
    def attributes(req: worker_pb2.GenerateRequest) -> dict[str, Any]:
        return {genai.WORKER_ID: worker_id, genai.CONVERSATION_ID: req.program_id,
                genai.TENANT: req.tenant, genai.CALL_ID: req.call_id,
                genai.PRIORITY: req.priority, genai.RESPONSE_ID: req.request_id}

    def on_chunk(span: trace.Span, chunk: worker_pb2.GenerateChunk) -> None:
        if chunk.HasField("result"):
            r = chunk.result
            span.set_attributes({genai.RESPONSE_FINISH_REASONS: [r.finish_reason],
                                 genai.USAGE_INPUT: r.usage.prompt_tokens,
                                 genai.USAGE_OUTPUT: r.usage.completion_tokens,
                                 genai.USAGE_CACHE_READ: r.usage.cached_tokens})

    return {GENERATE: SpanDescriber(lambda req: genai.SPAN_WORKER_GENERATE, attributes, on_chunk)}


class TracedSGLangClient(SGLangClient):
    """SGLangClient with a span per engine request, current while the request is sent so
    that its traceparent goes out in the HTTP headers."""

    def __init__(self, *args: Any, model: str = "", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.model = model

    def _attributes(self, request: EngineRequest) -> dict[str, Any]:
        attrs: dict[str, Any] = {
            genai.OPERATION: genai.TEXT_COMPLETION, genai.PROVIDER: genai.PROVIDER_SGLANG,
            genai.REQUEST_MODEL: self.model, genai.RESPONSE_ID: request.rid}
        engine = urlsplit(self.base_url)
        if engine.hostname:  # the host and port, not the URL
            attrs[genai.SERVER_ADDRESS] = engine.hostname
            attrs[genai.SERVER_PORT] = engine.port or (443 if engine.scheme == "https" else 80)
        for name, key in _SAMPLING.items():
            if name in request.sampling_params:
                attrs[key] = request.sampling_params[name]
        if request.priority is not None:
            attrs[genai.PRIORITY] = request.priority
        return attrs

    def generate(self, request: EngineRequest,
                 stream: bool = True) -> AsyncGenerator[EngineOutput, None]:
        """The engine's outputs, under a span of the request; where this process records
        no spans, the client's own (a no-op span would only pass on the current context,
        which the request's headers carry anyway)."""
        if not recording():
            return super().generate(request, stream)
        return self._traced(request, stream)

    async def _traced(self, request: EngineRequest, stream: bool
                      ) -> AsyncGenerator[EngineOutput, None]:
        span = _tracer.start_span(genai.span_name(genai.TEXT_COMPLETION, self.model),
                                  kind=trace.SpanKind.CLIENT, attributes=self._attributes(request))
        ctx = trace.set_span_in_context(span)
        start = time.monotonic()
        outputs = super().generate(request, stream)
        first = True
        try:
            while True:
                token = otel_context.attach(ctx)
                try:
                    out = await outputs.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    otel_context.detach(token)
                if first and (out.delta or out.completion_tokens):
                    first = False
                    span.add_event(genai.FIRST_TOKEN_EVENT)
                    span.set_attribute(genai.TTFT_S, time.monotonic() - start)
                if out.finished:
                    span.set_attributes({
                        genai.RESPONSE_FINISH_REASONS: [out.finish_reason or ""],
                        genai.USAGE_INPUT: out.prompt_tokens,
                        genai.USAGE_OUTPUT: out.completion_tokens,
                        genai.USAGE_CACHE_READ: out.cached_tokens, genai.SIMULATED: out.simulated})
                yield out
        except EngineError as exc:
            span.set_attribute(genai.ERROR_TYPE, type(exc).__name__)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            raise
        except BaseException as exc:  # cancelled, or closed before its end
            genai.mark_cancelled(span, exc)
            raise
        finally:
            span.end()
            await outputs.aclose()
