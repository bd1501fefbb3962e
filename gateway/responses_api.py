"""POST /v1/responses: OpenAI's Responses API (what the OpenAI Agents SDK's default model,
OpenAIResponsesModel, calls), on the gateway's one call path: the request becomes the
chat-completions request it asks for (gateway/responses_format.py), placed and run as any
call; the answer is rendered as a response object or its streamed events
(gateway/responses_output.py)."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from cache.modes import HIT_HEADER, REQUEST_HEADER, hit_header
from gateway.call_items import Delta
from gateway.core import GatewayCore, GatewayError, Placement
from gateway.openai_format import BadRequest, call_from_openai
from gateway.openai_response import extension_json
from gateway.responses_format import chat_from_responses
from gateway.responses_output import ResponseEvents, ResponseShell, output_json
from gateway.sse_stream import SseStream
from ostinato.v1 import common_pb2

# a chat field named in an error -> the Responses field the client sent (longest first)
_PARAMS = (("response_format.json_schema", "text.format"), ("response_format", "text"),
           ("max_completion_tokens", "max_output_tokens"), ("max_new_tokens", "max_output_tokens"),
           ("messages", "input"))


def _renamed(text: str | None) -> str | None:
    if text is None:
        return None
    for chat_name, name in _PARAMS:
        text = text.replace(chat_name, name)
    return text


def _top(param: str | None) -> str | None:
    """The request's top-level field a parameter path lies in ("text.format.schema": text)."""
    return None if param is None else param.split(".")[0].split("[")[0]


Place = Callable[[web.Request, str, common_pb2.CallSpec], Awaitable[Placement]]
Result = Callable[[str, Placement], Awaitable[common_pb2.CallResult]]


def call_from_responses(body: Any, cache_header: str | None) -> common_pb2.CallSpec:
    """A Responses request body as a CallSpec; raises BadRequest naming Responses fields."""
    chat = chat_from_responses(body)
    try:
        return call_from_openai(chat, cache_header)
    except BadRequest as exc:
        raise BadRequest(_renamed(str(exc)) or "", _top(_renamed(exc.param))) from None


async def respond(core: GatewayCore, request: web.Request, tenant: str, body: Any,
                  place: Place, result_of: Result) -> web.StreamResponse:
    """The response, or a GatewayError that names the Responses field at fault."""
    try:
        return await _respond(core, request, tenant, body, place, result_of)
    except GatewayError as exc:
        raise GatewayError(exc.code, _renamed(exc.message) or "", _top(_renamed(exc.param)),
                           exc.retry_after_s) from None


async def _respond(core: GatewayCore, request: web.Request, tenant: str, body: Any,
                   place: Place, result_of: Result) -> web.StreamResponse:
    call = call_from_responses(body, request.headers.get(REQUEST_HEADER))
    placed = await place(request, tenant, call)
    shell = ResponseShell(core.config.model, int(time.time()), body)
    if body.get("stream"):
        return await _Stream(core, request, tenant, placed, shell).run()
    result = await result_of(tenant, placed)
    return web.json_response(
        shell.json("completed", output_json(result), result,
                   extension_json(placed.client_program_id, placed.call, result)),
        headers={HIT_HEADER: hit_header(result.cache_hit)})


class _Stream(SseStream):
    """One streamed response: OpenAI's events; a failure after the first is
    response.failed."""

    def __init__(self, core: GatewayCore, request: web.Request, tenant: str, placed: Placement,
                 shell: ResponseShell) -> None:
        super().__init__(core, request, tenant, placed)
        self._events = ResponseEvents(shell)

    async def _send(self, response: web.StreamResponse,
                    first: Delta | common_pb2.CallResult) -> None:
        events = self._events
        pending = events.started()  # written with the first text: one write fewer
        item: Delta | common_pb2.CallResult | None = first
        try:
            while True:
                item = item if item is not None else await self._next()
                if isinstance(item, Delta):
                    if item.restart:
                        events.restarted()
                    pending += events.text(item.text)
                    if not item.last:
                        await response.write(pending)
                        pending = b""
                    item = None
                    continue
                await response.write(pending + events.finished(
                    item, extension_json(self._placed.client_program_id, self._placed.call,
                                         item)))
                return
        except StopAsyncIteration:
            await response.write(pending + events.failed(
                "api_error", "the call ended without a result"))
        except GatewayError as exc:  # headers are gone: the error travels in the stream
            await response.write(pending + events.failed(exc.code.name.lower(), exc.message))
