"""Priority inside real SGLang: with `--enable-priority-scheduling` (which the worker's
launcher sets) and one request running at a time, a higher-priority request queued after
lower-priority ones runs before them. Requests go through the worker's own SGLang client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.engine.conftest import engine
from workers.sglang_client import EngineRequest, SGLangClient

pytestmark = pytest.mark.engine


async def test_a_higher_priority_request_overtakes_queued_ones(engine_build: Path,
                                                               tmp_path: Path) -> None:
    finished: list[str] = []

    async def run(client: SGLangClient, name: str, priority: int, tokens: int) -> None:
        await client.generate_once(EngineRequest(
            rid=name, text=f"{name} " * 20, priority=priority,
            sampling_params={"max_new_tokens": tokens, "ignore_eos": True}))
        finished.append(name)

    async with engine(str(engine_build / "launch"), str(engine_build / "model"), tmp_path,
                      "priority", "--max-running-requests 1 --max-total-tokens 8192") as client:
        blocker = asyncio.create_task(run(client, "blocker", 0, 400))  # holds the engine
        await asyncio.sleep(0.2)
        lows = [asyncio.create_task(run(client, f"low{i}", 0, 8)) for i in range(3)]
        await asyncio.sleep(0.2)  # queued in this order; ordering, not timing, is asserted
        high = asyncio.create_task(run(client, "high", 10, 8))
        await asyncio.gather(blocker, *lows, high)
    queued = [n for n in finished if n != "blocker"]
    assert queued[0] == "high", finished
