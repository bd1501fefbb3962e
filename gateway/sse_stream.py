"""One call's answer streamed as server-sent events over aiohttp: what the chat-completions
and the Responses streams share (gateway/http_api.py, gateway/responses_api.py). Nothing is
sent before the call's first output, so an early failure is a plain HTTP error; later ones
travel in the stream, in each API's own shape (`_send`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
from aiohttp import web

from cache.modes import HIT_HEADER, hit_header
from gateway.call_items import CallItem, Delta, Granted
from gateway.core import GatewayCore, GatewayError, Placement
from gateway.draining import DRAINING
from ostinato.v1 import common_pb2


class SseStream:
    EOF = b""  # written with the end of the body

    def __init__(self, core: GatewayCore, request: web.Request, tenant: str,
                 placed: Placement) -> None:
        self._request, self._placed = request, placed
        self._items: AsyncIterator[CallItem] = core.run(tenant, placed, core.timeout(None))

    async def _next(self) -> Delta | common_pb2.CallResult:
        """The next output; GatewayError(UNAVAILABLE) when a stopping gateway cut the
        stream short (the subclass's error path then ends the stream with it)."""
        while True:
            try:
                item = await anext(self._items)
            except asyncio.CancelledError:
                draining = self._request.app.get(DRAINING)
                if draining is not None:
                    draining.raise_if_cut()
                raise
            if not isinstance(item, Granted):
                return item

    async def run(self) -> web.StreamResponse:
        try:
            try:
                first = await self._next()
            except StopAsyncIteration as exc:
                raise GatewayError(grpc.StatusCode.INTERNAL,
                                   "the call ended without a result") from exc
            response = web.StreamResponse(headers={
                "Content-Type": "text/event-stream", "Cache-Control": "no-cache",
                HIT_HEADER: hit_header(first.cache_hit)})
            await response.prepare(self._request)
            try:
                await self._send(response, first)
                await response.write_eof(self.EOF)
            except ConnectionResetError:  # the client left mid-stream: no one to answer
                pass  # (its call is cancelled below, as for any client gone)
            return response
        finally:
            await self._items.aclose()  # type: ignore[attr-defined]  # cancels the engine request

    async def _send(self, response: web.StreamResponse,
                    first: Delta | common_pb2.CallResult) -> None:
        """The events from the first output to the result (or the error)."""
        raise NotImplementedError
