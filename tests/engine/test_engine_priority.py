"""Priority inside real SGLang: with `--enable-priority-scheduling` (which the worker's
launcher sets) and one request running at a time, a higher-priority request queued after
lower-priority ones runs before them. Requests go through the worker's own SGLang client."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.engine.conftest import engine
from workers.sglang_client import EngineError, EngineRequest, SGLangClient

pytestmark = pytest.mark.engine


async def _queue(client: SGLangClient) -> tuple[int, int]:
    """(running, waiting) requests, as the engine's scheduler reports them (/v1/loads)."""
    async with client._http().get(client.base_url + "/v1/loads") as resp:
        resp.raise_for_status()
        loads = (await resp.json())["loads"]
    return (sum(x.get("num_running_reqs", 0) for x in loads),
            sum(x.get("num_waiting_reqs", 0) for x in loads))


async def _until_waiting(client: SGLangClient, n: int) -> None:
    """Polls until the blocker runs and `n` requests wait behind it (state, not time)."""
    for _ in range(600):
        if await _queue(client) == (1, n):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"the engine never had 1 running and {n} waiting: {await _queue(client)}")


async def test_a_higher_priority_request_overtakes_queued_ones(engine_build: Path,
                                                               tmp_path: Path) -> None:
    finished: list[str] = []

    async def run(client: SGLangClient, name: str, priority: int, tokens: int) -> None:
        try:
            out = await client.generate_once(EngineRequest(
                rid=name, text=f"{name} " * 20, priority=priority,
                sampling_params={"max_new_tokens": tokens, "ignore_eos": True}))
            finished.append(f"{name}:{out.finish_reason}")
        except EngineError as exc:  # an aborted request may end as an error response
            finished.append(f"{name}:error {exc}")

    async with engine(str(engine_build / "launch"), str(engine_build / "model"), tmp_path,
                      "priority", "--max-running-requests 1 --max-total-tokens 8192") as client:
        # The blocker holds the engine's one running slot until it is aborted, so what is
        # queued behind it is known before anything else runs: no sleeps decide the order.
        blocker = asyncio.create_task(run(client, "blocker", 0, 3000))
        await _until_waiting(client, 0)
        lows = []
        for i in range(3):  # queued one after another, in this order
            lows.append(asyncio.create_task(run(client, f"low{i}", 0, 8)))
            await _until_waiting(client, i + 1)
        high = asyncio.create_task(run(client, "high", 10, 8))
        await _until_waiting(client, 4)
        await client.abort("blocker")
        await asyncio.gather(blocker, *lows, high)
    assert finished[0].startswith("blocker:") and "length" not in finished[0], finished
    assert [n.split(":")[0] for n in finished[1:]] == ["high", "low0", "low1", "low2"], finished
