"""A chat completion (or a completion) streamed as OpenAI's chunk events: what
POST /v1/chat/completions and /v1/completions answer with `stream: true`."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from aiohttp import web

from gateway.call_items import CallItem, Delta
from gateway.core import GatewayCore, GatewayError, Placement
from gateway.draining import stopping_error
from gateway.openai_response import (
    chunk_sse,
    error_json,
    extension_json,
    http_status,
    legacy_logprobs_json,
    logprobs_json,
    tool_call_deltas,
    usage_json,
)
from gateway.sse_stream import SseStream
from ostinato.v1 import common_pb2
from tracing import genai


class ThinkingHold:
    """SGLang's stream_reasoning false: a streamed answer's thinking held back and sent
    whole, with the answer's first piece (or at its end). Otherwise passed on as it comes."""

    def __init__(self, hold: bool) -> None:
        self._hold = hold
        self._held: list[str] = []

    def pass_on(self, delta: Delta) -> str | None:
        """The thinking to send with `delta`'s text; None: nothing to send for it yet."""
        if delta.restart:
            self._held = []  # the thinking before it is void
        if not self._hold:
            return delta.reasoning
        self._held.append(delta.reasoning)
        if not (delta.text or delta.last):
            return None
        return self.rest()

    def rest(self) -> str:
        """What is held when the call ends without more text."""
        thinking, self._held = "".join(self._held), []
        return thinking


class _Choice:
    """One choice's outputs as chunk events: its thinking held or passed on, its last text
    written with its end (one write fewer)."""

    def __init__(self, stream: ChatStream, index: int, hold_thinking: bool) -> None:
        self._stream, self.index = stream, index
        self._thinking = ThinkingHold(hold_thinking)
        self._last = b""

    def delta(self, item: Delta) -> bytes:
        """The event to write now for `item` (b"": none yet)."""
        thinking = self._thinking.pass_on(item)
        if thinking is None:
            return b""
        event = self._stream.chunk({"reasoning_content": thinking, "content": item.text}
                                   if thinking else {"content": item.text}, index=self.index)
        if item.last and not item.restart:
            self._last = event
            return b""
        return event

    def end(self, result: common_pb2.CallResult, placed: Placement) -> bytes:
        """The choice's last events: its last text, its tool calls, its finish (with the
        answer's logprobs when asked for: the engine gives them with its result)."""
        chunk = self._stream.chunk
        calls = (chunk(d, index=self.index) for d in tool_call_deltas(result.tool_calls))
        return b"".join([self.cut(), *calls, chunk(
            {}, index=self.index, finish_reason=result.finish_reason or "stop",
            extension=extension_json(placed.client_program_id, placed.call, result),
            logprobs=self._stream.logprobs(result))])

    def cut(self) -> bytes:
        """What it holds, before an error ends the stream: its last text, and the
        thinking held back (stream_reasoning false) as the stream would have sent it."""
        held = self._thinking.rest()
        last, self._last = self._last, b""
        return last + (self._stream.chunk({"reasoning_content": held, "content": ""},
                                          index=self.index) if held else b"")


class ChatStream(SseStream):
    """A chat completion (n choices: `siblings` stream beside `placed`, as choices 1..n-1),
    or a completion (its prompts' choices alike), as chunk events."""

    EOF = b"data: [DONE]\n\n"

    def __init__(self, core: GatewayCore, request: web.Request, tenant: str, placed: Placement,
                 model: str, include_usage: bool, obj: str = "chat.completion.chunk",
                 hold_thinking: bool = False, siblings: Sequence[Placement] = (),
                 per_prompt: int = 0) -> None:
        super().__init__(core, request, tenant, placed, *siblings)
        self._model, self._usage, self._obj = model, include_usage, obj
        self._per_prompt = per_prompt  # choices per prompt (usage_json's)
        self._placements = [placed, *siblings]
        self._choices = [_Choice(self, i, hold_thinking) for i in range(len(self._placements))]
        self._id = ("chatcmpl-" if obj == "chat.completion.chunk" else "cmpl-") + uuid.uuid4().hex
        genai.record_response_id(self._id)
        self._created = int(time.time())

    def chunk(self, delta: dict[str, Any], **kwargs: Any) -> bytes:
        return chunk_sse(self._id, self._model, self._created, delta, obj=self._obj,
                         with_usage=self._usage, **kwargs)

    def logprobs(self, result: common_pb2.CallResult) -> dict[str, Any] | None:
        """The answer's logprobs in this stream's shape (chat's, or the legacy one)."""
        return logprobs_json(result) if self._obj == "chat.completion.chunk" \
            else legacy_logprobs_json(result)

    async def _send(self, response: web.StreamResponse, first: Delta | common_pb2.CallResult) -> None:
        if self._obj == "chat.completion.chunk":
            await response.write(b"".join(self.chunk({"role": "assistant", "content": ""},
                                                      index=c.index) for c in self._choices))
        results: list[common_pb2.CallResult] = []
        try:
            if len(self._choices) == 1:
                results.append(await self._pump(response, self._choices[0], self._items, first))
            else:
                results = await self._pump_all(response, first)
        except StopAsyncIteration:
            await response.write(self._cut() + self._error("the call ended without a result",
                                                           "api_error"))
            return
        except GatewayError as exc:  # headers are gone: the error travels in the stream
            _, kind = http_status(exc.code)
            await response.write(self._cut() + self._error(exc.message, kind, exc.code.name))
            return
        if self._usage:
            await response.write(self.chunk({}, usage=usage_json([r.usage for r in results],
                                                                 self._per_prompt)))

    async def _pump(self, response: web.StreamResponse, choice: _Choice,
                    items: AsyncIterator[CallItem], first: Delta | common_pb2.CallResult | None,
                    ) -> common_pb2.CallResult:
        """One choice's outputs written as they come, to its end; its result."""
        item = first
        while True:
            item = item if item is not None else await self._next(items)
            if isinstance(item, Delta):
                event = choice.delta(item)
                if event:
                    await response.write(event)
                item = None
                continue
            await response.write(choice.end(item, self._placements[choice.index]))
            return item

    async def _pump_all(self, response: web.StreamResponse,
                        first: Delta | common_pb2.CallResult) -> list[common_pb2.CallResult]:
        """n choices side by side; the first to fail ends them all (the others are
        cancelled, as an unstreamed request's are)."""
        sources = [self._items, *self._sibling_items]
        firsts = [first, *self._sibling_firsts]
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._pump(response, choice, items, firsts[i]))
                         for i, (choice, items) in enumerate(zip(self._choices, sources,
                                                                 strict=True))]
        except BaseExceptionGroup as failed:
            raise failed.exceptions[0] from None
        except asyncio.CancelledError:  # a stopping gateway cut the stream (not a pump)
            if self._cut_short():
                raise stopping_error() from None
            raise
        return [t.result() for t in tasks]

    def _cut(self) -> bytes:
        return b"".join(c.cut() for c in self._choices)

    @staticmethod
    def _error(message: str, kind: str, code: str | None = None) -> bytes:
        return b"data: " + json.dumps(error_json(message, kind, code=code)).encode() + b"\n\n"
