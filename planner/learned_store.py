"""What the planner learned (per-class output lengths and program sizes) kept in Redis, so a
restarted planner does not start cold: `srpt` and the output estimates need history.

Saved every `every_s` and at shutdown as one JSON document; read at start. A missing or
corrupt document means starting cold, never failing to start. One Redis could not give (slow
or away at the start) is read again before each save, and nothing is saved until it has
been: a cold planner's save would replace what the planners before it learned.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import structlog

from cache.keys import planner_learned
from cache.redis_client import FAILURES, AsyncClient
from planner.core.planner import PlannerCore

log = structlog.get_logger(__name__)

VERSION = 1


def _histories(doc: Any, name: str) -> dict[str, list[float]]:
    part = doc.get(name, {})
    if not isinstance(part, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(
                isinstance(x, int | float) and not isinstance(x, bool) for x in v)
            for k, v in part.items()):
        raise ValueError(f"{name}: expected an object of number arrays")
    return part


def _merged(stored: dict[str, list[float]], learned: dict[str, list[Any]]) -> dict[str, list[float]]:
    """The stored histories with what was learned since appended (the newest last, as a
    window keeps them)."""
    return {k: [*stored.get(k, ()), *learned.get(k, ())] for k in stored}


class LearnedStore:
    def __init__(self, client: AsyncClient, timeout_s: float = 0.5) -> None:
        self._redis = client
        self._timeout_s = timeout_s
        self.loaded = False  # whether Redis was read (a missing or unreadable document too)
        self._loading = asyncio.Lock()  # (a save at shutdown and the periodic one: one read)

    async def save(self, core: PlannerCore) -> bool:
        async with self._loading:
            if not self.loaded:
                await self.load(core)
        if not self.loaded:
            return False
        doc = {"version": VERSION, "saved_wall": time.time(),
               "outputs": core.estimator.history(), "program_sizes": core.program_sizes.history()}
        try:
            await asyncio.wait_for(self._redis.set(planner_learned(), json.dumps(doc)),
                                   self._timeout_s * 4)
        except FAILURES as exc:
            log.warning("learned estimates not saved", error=str(exc) or type(exc).__name__)
            return False
        return True

    async def load(self, core: PlannerCore) -> int:
        """Restores what a previous planner learned; returns the number of classes restored."""
        try:
            raw = await asyncio.wait_for(self._redis.get(planner_learned()), self._timeout_s * 4)
        except FAILURES as exc:
            log.warning("learned estimates not loaded: starting cold (read again before "
                        "the next save)", error=str(exc) or type(exc).__name__)
            return 0
        self.loaded = True
        if raw is None:
            return 0
        try:
            doc = json.loads(raw)
            if not isinstance(doc, dict) or doc.get("version") != VERSION:
                raise ValueError("unknown version")
            outputs = _histories(doc, "outputs")
            sizes = _histories(doc, "program_sizes")
        except ValueError as exc:  # JSONDecodeError is a ValueError
            log.warning("learned estimates unreadable: starting cold", error=str(exc))
            return 0
        # (read late: what this planner learned meanwhile comes after the stored history)
        core.estimator.restore(_merged(outputs, core.estimator.history()))
        core.program_sizes.restore(_merged(sizes, core.program_sizes.history()))
        return len(set(outputs) | set(sizes))

    async def run(self, core: PlannerCore, every_s: float = 30.0) -> None:
        while True:
            await asyncio.sleep(every_s)
            await self.save(core)
