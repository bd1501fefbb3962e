"""W3C trace context over HTTP (aiohttp): the request's traceparent becomes the current
context of its handler, and chosen routes get a SERVER span."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection

import structlog
from aiohttp import web
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Status, StatusCode

from tracing import genai
from tracing.logs import REQUEST_LOG_FIELDS

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_tracer = trace.get_tracer("ostinato.http")


def _route(request: web.Request) -> str | None:
    """The request's route template (`/v1/responses/{response_id}`); None for no route."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else None


def tracing_middleware(span_paths: Collection[str] = (), span_prefix: str | None = None,
                       ) -> Callable[..., Awaitable[web.StreamResponse]]:
    """`span_paths`: paths whose requests get a span named `<METHOD> <path>`; `span_prefix`:
    requests under it get one named `<METHOD> <route template>` (so a refused request, a
    400 or 404, is in its caller's trace too); the others only continue the caller's
    context, for spans their handler opens."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        parent = propagate.extract(request.headers)
        # a request's own log fields: none left from an earlier request served in the same
        # task (a keep-alive connection's)
        structlog.contextvars.unbind_contextvars("traceparent", *REQUEST_LOG_FIELDS)
        if "traceparent" in request.headers:
            structlog.contextvars.bind_contextvars(traceparent=request.headers["traceparent"])
        route = _route(request)
        if request.path in span_paths:
            name = f"{request.method} {request.path}"
        elif span_prefix is not None and request.path.startswith(span_prefix):
            # (no route: the method alone, as the HTTP conventions name it)
            name = f"{request.method} {route}" if route else request.method
        else:
            token = otel_context.attach(parent)
            try:
                return await handler(request)
            finally:
                otel_context.detach(token)
        with _tracer.start_as_current_span(
                name, context=parent, kind=trace.SpanKind.SERVER,
                attributes={"http.request.method": request.method, "url.path": request.path,
                            **({"http.route": route} if route else {})},
                record_exception=False, set_status_on_exception=False) as span:
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                span.set_attribute("http.response.status_code", exc.status)
                raise
            except asyncio.CancelledError as exc:  # the client went away: no status sent
                genai.mark_cancelled(span, exc)
                raise
            except Exception as exc:  # a bug: aiohttp answers 500
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                raise
            span.set_attribute("http.response.status_code", response.status)
            if response.status >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response

    return middleware
