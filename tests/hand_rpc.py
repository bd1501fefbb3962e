"""A streaming handler's gRPC context, driven by hand: tests call a servicer's handler as
gRPC would and end its RPC when they choose (`end`: its done callbacks run), as gRPC ends
one whose caller went away while a message was being sent."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class HandDrivenRpc:
    def __init__(self) -> None:
        self.callbacks: list[Callable[[object], None]] = []

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return ()

    async def send_initial_metadata(self, metadata: object) -> None:
        return None

    def time_remaining(self) -> None:
        return None

    def add_done_callback(self, callback: Callable[[object], None]) -> None:
        self.callbacks.append(callback)

    async def end(self) -> None:
        """The RPC ends: its done callbacks run, then the closes they started
        (ostinato/rpc_closing.py's)."""
        for callback in self.callbacks:
            callback(self)
        await asyncio.gather(*[t for t in asyncio.all_tasks()
                               if t.get_coro().__qualname__ == "_close"])  # type: ignore[union-attr]
