"""A stopping gateway's HTTP requests: they get the gRPC services' grace period to finish;
those still running when it ends are cut short with UNAVAILABLE (a 503, or an error event
in a stream already under way) instead of a dropped connection, and the gateway exits on
its own. OpenAI's clients retry a 503; the cut call is cancelled at its engine as for a
client gone."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
from aiohttp import web

from gateway.core import GatewayError

STOPPING = "the gateway is stopping: this call was cut short before it finished; send it again"
# how long a cut request may take to write its error once cancelled (aiohttp then closes it)
CUT_WRITE_S = 2.0


def stopping_error() -> GatewayError:
    return GatewayError(grpc.StatusCode.UNAVAILABLE, STOPPING, retry_after_s=1.0)


class Draining:
    """The HTTP requests in flight (their handler tasks) and which of them were cut. The
    app holds it (`DRAINING`), for a stream to tell its cut from other cancellations."""

    def __init__(self) -> None:
        self._running: set[asyncio.Task[Any]] = set()
        self._cut: set[asyncio.Task[Any]] = set()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        task = asyncio.current_task()
        assert task is not None
        self._running.add(task)
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except asyncio.CancelledError:
            # a stream under way ends its body with the error itself (gateway/sse_stream.py);
            # cut elsewhere in it, its connection is closed: no second response is written
            if not request.get(STREAM_STARTED) and self.take_cut():
                raise stopping_error() from None
            raise
        finally:
            self._running.discard(task)
            self._cut.discard(task)

    def take_cut(self) -> bool:
        """Called on CancelledError: whether the cancellation was this cut's; if so it is
        taken back (the caller raises `stopping_error()` in its place, else re-raises)."""
        task = asyncio.current_task()
        if task is None or task not in self._cut:
            return False
        self._cut.discard(task)
        task.uncancel()
        return True

    def cut_all(self) -> int:
        """Cuts every request still running; how many."""
        for task in self._running:
            self._cut.add(task)
            task.cancel()
        return len(self._running)

    async def stop(self, runner: web.AppRunner, grace_s: float) -> int:
        """Stops `runner`'s server (no new connections), waits up to `grace_s` for the
        requests in flight, then cuts the rest; how many were cut."""
        cleanup = asyncio.create_task(runner.cleanup())
        done, _ = await asyncio.wait({cleanup}, timeout=grace_s)
        cut = 0 if done else self.cut_all()
        await cleanup
        return cut


DRAINING = web.AppKey("draining", Draining)
STREAM_STARTED = web.RequestKey("stream_started", bool)  # its response's headers are sent


def told(request: web.Request) -> bool:
    """Whether the request's response began (a stream's headers went out): they named its
    program (X-Ostinato-Program), so its caller knows it (GatewayCore `answering`)."""
    return bool(request.get(STREAM_STARTED))
