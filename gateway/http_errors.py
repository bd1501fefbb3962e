"""The HTTP API's errors: every failure in OpenAI's JSON error shape, with the HTTP status
of the gRPC code the same failure gets on the gRPC API (gateway/openai_response.py), and
what it tells a client about retrying (Retry-After, x-should-retry)."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

import structlog
from aiohttp import web

from gateway.core import MODEL_NOT_FOUND, GatewayError
from gateway.metrics import GatewayMetrics
from gateway.openai_format import BadRequest
from gateway.openai_response import OPENAI_ERROR_CODES, error_json, http_status

log = structlog.get_logger(__name__)

# the request's name for its output limit, where not max_tokens (a request key a handler
# sets): an error about it names the field the client sent
MAX_TOKENS_SENT_AS = "ostinato.max_tokens_sent_as"

CLIENT_CLOSED = 499  # the status a request its client left is counted under (no response)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpError(Exception):
    def __init__(self, status: int, message: str, kind: str, param: str | None = None,
                 retry_after_s: float | None = None, code: str | None = None, *,
                 final: bool = False, retried: bool = False) -> None:
        super().__init__(message)
        self.status, self.message, self.kind, self.param = status, message, kind, param
        self.retry_after_s, self.code = retry_after_s, code
        self.final = final or status == 409  # (a conflict: the same request conflicts again)
        self.retried = retried  # the gateway retried it already (CallFailed.retried)

    @classmethod
    def of(cls, exc: GatewayError) -> HttpError:
        if exc.error_code == MODEL_NOT_FOUND:
            return cls.no_model(exc.message)
        status, kind = http_status(exc.code)
        return cls(status, exc.message, kind, exc.param, exc.retry_after_s,
                   exc.error_code or OPENAI_ERROR_CODES.get(exc.code), final=exc.final,
                   retried=exc.retried)

    @classmethod
    def no_model(cls, message: str) -> HttpError:
        """A model not served here, in OpenAI's shape for a model that does not exist."""
        return cls(404, message, "invalid_request_error", "model", code=MODEL_NOT_FOUND)

    def response(self) -> web.Response:
        headers = {} if self.retry_after_s is None else {
            "Retry-After": str(max(1, math.ceil(self.retry_after_s)))}
        if self.status == 401:  # RFC 9110: a 401 names the scheme that would be accepted
            headers["WWW-Authenticate"] = 'Bearer realm="ostinato"'
        if self.final or self.retried:  # the openai SDK retries 409s, 429s and 5xx unless told not to
            headers["x-should-retry"] = "false"
        return web.json_response(error_json(self.message, self.kind, self.param, self.code),
                                 status=self.status, headers=headers)


def _endpoints(router: web.UrlDispatcher) -> str:
    """The OpenAI-style endpoints a 404 names (the API's roots, no per-id paths)."""
    roots = sorted({r.canonical for r in router.resources()
                    if r.canonical.startswith("/v1/") and "{" not in r.canonical})
    return ", ".join(roots)


def errors_middleware(metrics: GatewayMetrics) -> Callable[..., Awaitable[web.StreamResponse]]:
    """Answers every failure of a handler as an OpenAI error, and counts each response."""

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        route = request.match_info.route.resource.canonical if (
            request.match_info.route.resource is not None) else "unmatched"
        try:
            response = await handler(request)
        except asyncio.CancelledError:  # the client went away (or a stop cut the request):
            # counted as nginx's 499 "client closed request" (tracing review 2026-12-05 F10)
            metrics.http_response(route, CLIENT_CLOSED)
            raise
        except GatewayError as exc:
            if exc.param == "max_tokens":  # the call path's name for the output limit
                exc.param = request.get(MAX_TOKENS_SENT_AS, exc.param)
            response = HttpError.of(exc).response()
        except BadRequest as exc:
            response = HttpError(400, str(exc), "invalid_request_error", exc.param,
                                 code=exc.code).response()
        except UnicodeEncodeError:  # JSON may escape lone surrogates; protobuf strings refuse them
            response = HttpError(400, "a string in the request is not valid Unicode (a lone "
                                 "surrogate escape)", "invalid_request_error").response()
        except HttpError as exc:
            response = exc.response()
        except web.HTTPRequestEntityTooLarge as exc:
            response = HttpError(413, f"request body too large: {exc.text}",
                                 "invalid_request_error").response()
        except web.HTTPException as exc:  # aiohttp's own: unknown route, wrong method
            message = exc.reason
            if exc.status == 404 and route == "unmatched":
                message = (f"no endpoint {request.method} {request.path} here; this gateway "
                           f"serves {_endpoints(request.app.router)}")
            elif exc.status == 405 and "Allow" in exc.headers:
                message = (f"{request.path} does not take {request.method}; it takes "
                           f"{exc.headers['Allow']}")
            response = HttpError(exc.status, message, "invalid_request_error").response()
            if "Allow" in exc.headers:  # a 405 names the methods the route takes (RFC 9110)
                response.headers["Allow"] = exc.headers["Allow"]
        except Exception as exc:  # a bug here: still OpenAI's error shape (not aiohttp's text
            # page), the traceback in the log (what the request held is not)
            log.error("request failed", route=route, error=type(exc).__name__, exc_info=True)
            response = HttpError(500, "the gateway failed to answer this request; its log has "
                                 "the error", "api_error").response()
        metrics.http_response(route, response.status)
        return response

    return errors
