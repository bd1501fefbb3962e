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
from gateway.responses_format import Sources, translate
from gateway.responses_output import ResponseEvents, ResponseShell, output_json
from gateway.sse_stream import SseStream
from ostinato.v1 import common_pb2

# a chat field named in an error -> the Responses field the client sent (longest first)
_PARAMS = (("response_format.json_schema", "text.format"), ("response_format", "text"),
           ("max_completion_tokens", "max_output_tokens"), ("max_new_tokens", "max_output_tokens"),
           ("max_tokens", "max_output_tokens"))


def _renamed(text: str | None, sources: Sources) -> str | None:
    if text is None:
        return None
    text = sources.rename(text)
    for chat_name, name in _PARAMS:
        text = text.replace(chat_name, name)
    return text


def _top(param: str | None) -> str | None:
    """The request's top-level field a parameter path lies in ("text.format.schema": text;
    "messages", a chat message: input)."""
    if param is None:
        return None
    top = param.split(".")[0].split("[")[0]
    return "input" if top == "messages" else top


Place = Callable[[web.Request, str, common_pb2.CallSpec], Awaitable[Placement]]
Result = Callable[[str, Placement], Awaitable[common_pb2.CallResult]]


def call_from_responses(body: Any, cache_header: str | None
                        ) -> tuple[common_pb2.CallSpec, Sources]:
    """A Responses request body as a CallSpec, and where its messages came from; raises
    BadRequest naming Responses fields."""
    chat, sources = translate(body)
    try:
        return call_from_openai(chat, cache_header), sources
    except BadRequest as exc:
        raise BadRequest(_renamed(str(exc), sources) or "",
                         _top(_renamed(exc.param, sources))) from None


async def respond(core: GatewayCore, request: web.Request, tenant: str, body: Any,
                  place: Place, result_of: Result) -> web.StreamResponse:
    """The response, or a GatewayError that names the Responses field at fault."""
    call, sources = call_from_responses(body, request.headers.get(REQUEST_HEADER))
    try:
        placed = await place(request, tenant, call)
        shell = ResponseShell(core.config.model, int(time.time()), body)
        if body.get("stream"):
            return await _Stream(core, request, tenant, placed, shell).run()
        result = await result_of(tenant, placed)
    except GatewayError as exc:
        raise GatewayError(exc.code, _renamed(exc.message, sources) or "",
                           _top(_renamed(exc.param, sources)), exc.retry_after_s) from None
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
                "INTERNAL", "the call ended without a result"))
        except GatewayError as exc:  # headers are gone: the error travels in the stream
            await response.write(pending + events.failed(exc.code.name, exc.message))
