"""The soak load's backoff between a caller's calls: doubling after each failure up to the
cap, back to the first wait after a success."""

from __future__ import annotations

import asyncio

import pytest

from bench import soak_load
from bench.soak_load import Backoff


@pytest.mark.parametrize(("outcomes", "waits"), [
    ([True, True], []),
    ([False, False, False, False], [0.2, 0.4, 0.8, 1.0]),
    ([False, False, True, False], [0.2, 0.4, 0.2]),
])
def test_backoff_doubles_to_the_cap_and_resets_on_success(
        monkeypatch: pytest.MonkeyPatch, outcomes: list[bool], waits: list[float]) -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(soak_load.asyncio, "sleep", sleep)
    backoff = Backoff(first_s=0.2, max_s=1.0)

    async def drive() -> None:
        for ok in outcomes:
            await backoff.after(ok)

    asyncio.run(drive())
    assert slept == pytest.approx(waits)
