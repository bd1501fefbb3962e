"""Completion reports to the planner, batched: one ReportCompletions RPC in flight at a time,
carrying every report queued while the one before was on its way (and, with `linger_s`, for
that long). Nothing waits here for a report: under load the reports of many calls share one
RPC, and when idle one goes at once (or after `linger_s`).

Reports are idempotent at the planner (it ignores a report it already has), so a batch is
retried through a planner restart (with_retry, RETRYABLE_IDEMPOTENT) within `budget_s`.
Used by the workers (a call's end) and the gateway (the outcome it delivered).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import grpc
import structlog

from ostinato.retry import RETRYABLE_IDEMPOTENT, with_retry
from ostinato.v1 import planner_pb2, planner_pb2_grpc

log = structlog.get_logger(__name__)

MAX_BATCH = 256  # reports per RPC


class CompletionReporter:
    def __init__(self, planner: planner_pb2_grpc.PlannerStub, *, budget_s: float = 60.0,
                 attempt_timeout_s: float = 5.0, linger_s: float = 0.0,
                 on_done: Callable[[planner_pb2.CompletionReport], None] | None = None) -> None:
        """`on_done`: told of each report once its batch is through, or given up;
        `linger_s`: how long a batch waits for more reports before it leaves (for reports
        nobody waits for: fewer RPCs)."""
        self._planner = planner
        self._linger_s = linger_s
        self.budget_s = budget_s
        self._attempt_timeout_s = attempt_timeout_s
        self._on_done = on_done
        self._queue: list[planner_pb2.CompletionReport] = []
        self._queued = self._through = 0  # reports queued, and through (sent or given up)
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self._flush = asyncio.Event()  # a lingering batch leaves now
        self.batches = 0  # RPCs sent (each batch counted once, however often retried)

    def send(self, report: planner_pb2.CompletionReport) -> None:
        """Queues a report; it leaves with the next batch (at once when none is in flight)."""
        self._queue.append(report)
        self._queued += 1
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def flush(self) -> None:
        """A batch lingering now leaves at once (someone waits for what it reports)."""
        if self._queue:
            self._flush.set()

    async def _run(self) -> None:
        while self._queue:
            if self._linger_s > 0 and not self._flush.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._flush.wait(), self._linger_s)
            self._flush.clear()
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            self.batches += 1
            try:
                await with_retry(self._planner.ReportCompletions,
                                 planner_pb2.CompletionReports(reports=batch), self.budget_s,
                                 attempt_timeout_s=self._attempt_timeout_s,
                                 retry_on=RETRYABLE_IDEMPOTENT)
            except grpc.aio.AioRpcError as exc:
                log.warning("completion reports failed", calls=len(batch), error=exc.details())
            finally:
                if self._on_done is not None:
                    for report in batch:
                        self._on_done(report)
                self._through += len(batch)  # (batches leave in the order queued)
                self._wake()

    def _wake(self) -> None:
        waiting = []
        for target, waiter in self._waiters:
            if self._through < target:
                waiting.append((target, waiter))
            elif not waiter.done():
                waiter.set_result(None)
        self._waiters = waiting

    async def queued_through(self, timeout_s: float) -> None:
        """Until every report queued before now is through (or `timeout_s`), whatever is
        queued after it: for a caller about to read what they report."""
        target = self._queued
        if self._through >= target:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(waiter), timeout_s)

    async def drain(self, timeout_s: float) -> None:
        """Until every queued report is through (or `timeout_s`)."""
        with contextlib.suppress(asyncio.TimeoutError):
            while self._task is not None and not self._task.done():
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
