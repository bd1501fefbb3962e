"""A chat completion (or a completion) streamed as OpenAI's chunk events: what
POST /v1/chat/completions and /v1/completions answer with `stream: true`."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from aiohttp import web

from gateway.call_items import Delta
from gateway.core import GatewayCore, GatewayError, Placement
from gateway.openai_response import (
    chunk_sse,
    error_json,
    extension_json,
    http_status,
    tool_call_deltas,
    usage_json,
)
from gateway.sse_stream import SseStream
from ostinato.v1 import common_pb2


class ThinkingHold:
    """SGLang's stream_reasoning false: a streamed answer's thinking held back and sent
    whole, with the answer's first piece (or at its end). Otherwise passed on as it comes."""

    def __init__(self, hold: bool) -> None:
        self._hold, self._held = hold, ""

    def pass_on(self, delta: Delta) -> str | None:
        """The thinking to send with `delta`'s text; None: nothing to send for it yet."""
        if delta.restart:
            self._held = ""  # the thinking before it is void
        if not self._hold:
            return delta.reasoning
        self._held += delta.reasoning
        if not (delta.text or delta.last):
            return None
        thinking, self._held = self._held, ""
        return thinking

    def rest(self) -> str:
        """What is held when the call ends without more text."""
        thinking, self._held = self._held, ""
        return thinking


class ChatStream(SseStream):
    """One streamed answer as chat.completion.chunk (or text_completion) events, ending
    with `data: [DONE]`."""

    EOF = b"data: [DONE]\n\n"

    def __init__(self, core: GatewayCore, request: web.Request, tenant: str, placed: Placement,
                 model: str, include_usage: bool, obj: str = "chat.completion.chunk",
                 hold_thinking: bool = False) -> None:
        super().__init__(core, request, tenant, placed)
        self._model, self._usage, self._obj = model, include_usage, obj
        self._thinking = ThinkingHold(hold_thinking)
        self._id = ("chatcmpl-" if obj == "chat.completion.chunk" else "cmpl-") + uuid.uuid4().hex
        self._created = int(time.time())

    def _chunk(self, delta: dict[str, Any], **kwargs: Any) -> bytes:
        return chunk_sse(self._id, self._model, self._created, delta, obj=self._obj, **kwargs)

    async def _send(self, response: web.StreamResponse, first: Delta | common_pb2.CallResult) -> None:
        if self._obj == "chat.completion.chunk":
            await response.write(self._chunk({"role": "assistant", "content": ""}))
        item: Delta | common_pb2.CallResult | None = first
        last = b""  # the last text's event, written with the result's: one write fewer
        try:
            while True:
                item = item if item is not None else await self._next()
                if isinstance(item, Delta):
                    thinking = self._thinking.pass_on(item)
                    if thinking is None:
                        item = None
                        continue
                    event = self._chunk({"reasoning_content": thinking, "content": item.text}
                                        if thinking else {"content": item.text})
                    if item.last and not item.restart:
                        last = event
                    else:
                        await response.write(event)
                    item = None
                    continue
                calls = (self._chunk(d) for d in tool_call_deltas(item.tool_calls))
                events = [last + self._held(), *calls,
                          self._chunk({}, finish_reason=item.finish_reason or "stop",
                                      extension=extension_json(self._placed.client_program_id,
                                                               self._placed.call, item))]
                if self._usage:
                    events.append(self._chunk({}, usage=usage_json([item.usage])))
                await response.write(b"".join(events))
                return
        except StopAsyncIteration:
            await response.write(last + self._held() + b"data: " + json.dumps(error_json(
                "the call ended without a result", "api_error")).encode() + b"\n\n")
        except GatewayError as exc:  # headers are gone: the error travels in the stream
            _, kind = http_status(exc.code)
            await response.write(last + self._held() + b"data: " + json.dumps(error_json(
                exc.message, kind, code=exc.code.name)).encode() + b"\n\n")

    def _held(self) -> bytes:
        """The thinking held back (stream_reasoning false), as the stream would have sent
        it: the call ended before its answer began."""
        held = self._thinking.rest()
        return self._chunk({"reasoning_content": held, "content": ""}) if held else b""
