"""One call's answer streamed as server-sent events over aiohttp: what the chat-completions
and the Responses streams share (gateway/http_api.py, gateway/responses_api.py). Nothing is
sent before the call's first output, so an early failure is a plain HTTP error; later ones
travel in the stream, in each API's own shape (`_send`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from aiohttp import web

from gateway.call_items import CallItem, Delta, Granted
from gateway.core import GatewayCore, GatewayError, Placement
from gateway.draining import DRAINING, STREAM_STARTED, stopping_error
from gateway.openai_response import answer_headers
from ostinato.v1 import common_pb2


class SseStream:
    EOF = b""  # written with the end of the body

    def __init__(self, core: GatewayCore, request: web.Request, tenant: str,
                 placed: Placement, *siblings: Placement) -> None:
        """`siblings`: more calls streamed beside `placed` (a chat's n choices)."""
        self._request, self._placed = request, placed
        timeout = core.timeout(None)
        self._items: AsyncIterator[CallItem] = core.run(tenant, placed, timeout)
        self._sibling_items = [core.run(tenant, p, timeout) for p in siblings]
        self._sibling_firsts: list[Delta | common_pb2.CallResult] = []  # their first outputs

    async def _next(self, items: AsyncIterator[CallItem] | None = None,
                    ) -> Delta | common_pb2.CallResult:
        """The next output (of `items`, else of the call); GatewayError(UNAVAILABLE) when a
        stopping gateway cut the stream short (the subclass's error path then ends the
        stream with it)."""
        while True:
            try:
                item = await anext(items or self._items)
            except asyncio.CancelledError:
                if self._cut_short():
                    raise stopping_error() from None
                raise
            if not isinstance(item, Granted):
                return item

    def _cut_short(self) -> bool:
        """On CancelledError: whether it was a stopping gateway's cut (then taken back)."""
        draining = self._request.app.get(DRAINING)
        return draining is not None and draining.take_cut()

    async def _first(self, items: AsyncIterator[CallItem]) -> Delta | common_pb2.CallResult:
        try:
            return await self._next(items)
        except StopAsyncIteration as exc:
            raise GatewayError(grpc.StatusCode.INTERNAL,
                               "the call ended without a result") from exc

    async def _firsts(self) -> list[Delta | common_pb2.CallResult]:
        """Each call's first output, the siblings' sought beside the first's (a task each):
        nothing is sent before all have one, so that a refusal is a plain HTTP error."""
        if not self._sibling_items:
            return [await self._first(self._items)]
        tasks = [asyncio.ensure_future(self._first(items))
                 for items in (self._items, *self._sibling_items)]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException as exc:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)  # before the iterators close
            if isinstance(exc, asyncio.CancelledError) and self._cut_short():
                raise stopping_error() from None
            raise

    async def run(self) -> web.StreamResponse:
        try:
            first, *self._sibling_firsts = await self._firsts()
            response = web.StreamResponse(headers={
                "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                **answer_headers(self._placed.client_program_id, first.cache_hit)})
            await response.prepare(self._request)
            self._request[STREAM_STARTED] = True
            try:
                await self._send(response, first)
                await response.write_eof(self.EOF)
            except ConnectionResetError:  # the client left mid-stream: no one to answer
                pass  # (its call is cancelled below, as for any client gone)
            return response
        finally:  # cancels the engine requests still running
            for items in (self._items, *self._sibling_items):
                await items.aclose()  # type: ignore[attr-defined]

    async def _send(self, response: web.StreamResponse,
                    first: Delta | common_pb2.CallResult) -> None:
        """The events from the first output to the result (or the error)."""
        raise NotImplementedError
