"""W3C trace context over gRPC metadata, and server spans for the RPCs that describe one.

The server interceptor continues the caller's traceparent for every RPC, binds the request's
tenant / program / call ids to the log context, and, for a method with a `SpanDescriber`,
opens a SERVER span around the handler that the describer names and annotates from the
request and the response (or each streamed message). The client interceptors put the
current context into the outgoing metadata. Servicers hold no span code.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracing.logs import REQUEST_LOG_FIELDS

_tracer = trace.get_tracer("ostinato.grpc")
_NO_PROVIDER = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)  # none installed


def recording() -> bool:
    """Whether this process records spans: a tracer provider was installed (tracing/setup.py
    installs the SDK's; a vendor's or a subclass counts too). Without one every span is a
    no-op: a server span's name and attributes are not worked out for nobody, and the
    caller's context alone carries the trace on."""
    return not isinstance(trace.get_tracer_provider(), _NO_PROVIDER)


@dataclass(frozen=True)
class SpanDescriber:
    """How one RPC becomes a span: its name and attributes from the request, then more from
    the response (unary) or from each message of a response stream."""

    name: Callable[[Any], str]
    attributes: Callable[[Any], Mapping[str, Any]]
    on_response: Callable[[trace.Span, Any], None] = lambda span, response: None


def _log_fields(request: Any) -> dict[str, str]:
    out = {}
    for name in REQUEST_LOG_FIELDS:
        value = getattr(request, name, "")
        if isinstance(value, str) and value:
            out[name] = value
    return out


def _record_error(span: trace.Span, exc: BaseException, context: grpc.aio.ServicerContext) -> None:
    code = context.code() if hasattr(context, "code") else None
    if isinstance(exc, grpc.aio.AbortError) and code is not None:
        span.set_attribute("rpc.grpc.status_code", code.value[0])
        span.set_status(Status(StatusCode.ERROR, f"{code.name}: {context.details() or ''}"))
    elif not isinstance(exc, GeneratorExit):
        span.record_exception(exc)
        span.set_status(Status(StatusCode.ERROR, repr(exc)))


class TracingServerInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, describers: Mapping[str, SpanDescriber] | None = None) -> None:
        """`describers`: full method name (/package.Service/Method) -> its span."""
        self._describers = dict(describers or {})

    def describe(self, describers: Mapping[str, SpanDescriber]) -> None:
        """Adds span describers (before the server starts)."""
        self._describers.update(describers)

    async def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        carrier = {k: v for k, v in (details.invocation_metadata or ()) if isinstance(v, str)}
        describer = self._describers.get(details.method)
        if handler.unary_unary is not None:
            return handler._replace(unary_unary=self._unary(handler.unary_unary, carrier, describer))
        if handler.unary_stream is not None:
            if not inspect.isasyncgenfunction(handler.unary_stream):
                # a stream written by context.write (the health service's Watch): one await
                return handler._replace(unary_stream=self._unary(handler.unary_stream, carrier,
                                                                 describer))
            return handler._replace(unary_stream=self._stream(handler.unary_stream, carrier, describer))
        return handler

    def _unary(self, inner: Callable[..., Any], carrier: Mapping[str, str],
               describer: SpanDescriber | None) -> Callable[..., Any]:
        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> Any:
            rpc = _RpcSpan(describer, request, carrier)
            try:
                token = otel_context.attach(rpc.ctx)
                try:
                    response = await inner(request, context)
                finally:
                    otel_context.detach(token)
                rpc.observe(response)
                return response
            except BaseException as exc:
                rpc.failed(exc, context)
                raise
            finally:
                rpc.end()
        return behavior

    def _stream(self, inner: Callable[..., Any], carrier: Mapping[str, str],
                describer: SpanDescriber | None) -> Callable[..., Any]:
        async def behavior(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            rpc = _RpcSpan(describer, request, carrier)
            messages = inner(request, context)
            try:
                while True:
                    # attached around each step only: a generator may be finished elsewhere
                    # (attach/detach inline: a context manager costs a generator per message)
                    token = otel_context.attach(rpc.ctx)
                    try:
                        message = await messages.__anext__()
                    except StopAsyncIteration:
                        break
                    finally:
                        otel_context.detach(token)
                    rpc.observe(message)
                    yield message
            except BaseException as exc:
                rpc.failed(exc, context)
                raise
            finally:
                rpc.end()
        return behavior


class _RpcSpan:
    """One RPC served: the caller's context continued, its ids bound to the log context, and
    with a describer a SERVER span, annotated from the response or each streamed message."""

    def __init__(self, describer: SpanDescriber | None, request: Any,
                 carrier: Mapping[str, str]) -> None:
        structlog.contextvars.bind_contextvars(**_log_fields(request))
        parent = propagate.extract(carrier)
        self._describer = describer
        self.span = None if describer is None or not recording() else _tracer.start_span(
            describer.name(request), context=parent, kind=SpanKind.SERVER,
            attributes=dict(describer.attributes(request)))
        self.ctx = parent if self.span is None else trace.set_span_in_context(self.span, parent)

    def observe(self, message: Any) -> None:
        if self.span is not None and self._describer is not None:
            self._describer.on_response(self.span, message)

    def failed(self, exc: BaseException, context: grpc.aio.ServicerContext) -> None:
        if self.span is not None:
            _record_error(self.span, exc, context)

    def end(self) -> None:
        if self.span is not None:
            self.span.end()


def _with_context(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if not carrier:
        return details
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    for key, value in carrier.items():
        metadata[key] = value
    return grpc.aio.ClientCallDetails(details.method, details.timeout, metadata,
                                      details.credentials, details.wait_for_ready)


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_context(details), request)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(_with_context(details), request)


def client_interceptors() -> list[grpc.aio.ClientInterceptor]:
    """For grpc.aio channels: the current trace context goes out with every call."""
    return [_UnaryUnary(), _UnaryStream()]
