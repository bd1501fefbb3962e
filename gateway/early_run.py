"""Early start, the run: a call's generation on the guessed worker (gateway/early_guess.py),
started while its admission is on its way to the planner. What it yields is held until the
grant decides: the call's attempt (`items` hands it on, as a granted attempt's generation
would), or not (`cancel`: the worker stops the call)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator
from typing import Generic, TypeVar

from gateway.tool_output import ToolOutput
from ostinato.v1 import planner_pb2

T = TypeVar("T")
_END = object()


class _Raised:
    def __init__(self, exc: Exception) -> None:
        self.exc = exc


class EarlyRun(Generic[T]):
    def __init__(self, guess: planner_pb2.Grant, generation: AsyncGenerator[T, None],
                 output: ToolOutput) -> None:
        """`guess`: the grant it goes by; `output`: what its generation feeds (its tool
        calls' and thinking's parser)."""
        self.guess, self.output = guess, output
        self._held: asyncio.Queue[object] = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._hold(generation))

    async def _hold(self, generation: AsyncGenerator[T, None]) -> None:
        try:
            async with contextlib.aclosing(generation):
                async for item in generation:
                    self._held.put_nowait(item)
        except Exception as exc:  # (the attempt's failure: raised by `items`)
            self._held.put_nowait(_Raised(exc))
        else:
            self._held.put_nowait(_END)

    async def items(self) -> AsyncGenerator[T, None]:
        """What the run yielded and yields, then its end or its failure; closed before its
        end, the run is cancelled."""
        try:
            while (item := await self._held.get()) is not _END:
                if isinstance(item, _Raised):
                    raise item.exc
                yield item  # type: ignore[misc]
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stops the run (its generation closed: the worker ends the call), if it runs."""
        if not self._task.done():
            self._task.cancel()
