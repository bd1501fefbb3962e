"""Programs ending at the planner service: the summaries of those ended lately (a retried
EndProgram gets the same one), one-call programs (AdmitRequest.end_program_after) ended
once their call is done, and the Admit callers of an ended program's waiting calls told."""

from __future__ import annotations

import asyncio
from collections import OrderedDict

from cache.redis_client import FAILURES
from ostinato.clock import Clock
from ostinato.v1 import common_pb2
from planner.core import Grant, PlannerCore, PlannerError, ProgramClosed
from planner.core.model import Program
from planner.fencing import FencedOut
from planner.store import ProgramStore
from planner.translate import summary_proto


class ProgramEndings:
    def __init__(self, core: PlannerCore, clock: Clock,
                 waiters: dict[str, asyncio.Future[Grant]], keep: int = 1_000) -> None:
        """`keep`: summaries kept for EndProgram retried here (its answer lost); older ones,
        and those of programs another planner ended, the service rebuilds from the store's
        ended records (`in_store`). Each is ~1 KiB: 10,000 kept were
        ~100 KiB per 1,000 calls of a soak's planner, near its memory bound."""
        self._core = core
        self._clock = clock
        self._waiters = waiters  # the service's Admit callers, by "program/call"
        # Summaries of programs ended here lately, by (tenant, program id)
        self._ended: OrderedDict[tuple[str, str], common_pb2.ProgramSummary] = OrderedDict()
        self.keep = keep
        # One-call programs, ended here once their call is done or cancelled: program id ->
        # tenant. Held in memory only: after a restart such a program ends by idle expiry.
        self.one_call: dict[str, str] = {}

    def ended(self, tenant: str, program_id: str) -> common_pb2.ProgramSummary | None:
        """The summary of the tenant's program ended here lately, if kept."""
        return self._ended.get((tenant, program_id))

    async def in_store(self, store: ProgramStore, tenant: str, program_id: str
                       ) -> common_pb2.ProgramSummary | None:
        """The summary of the tenant's program that the store says ended (soak: EndProgram
        sent 36 ms before its planner was killed, retried on the restarted one: NOT_FOUND,
        though the end was written); None if not, or if Redis does not answer."""
        try:
            found = await store.load_ended(program_id)
        except (*FAILURES, TimeoutError, FencedOut):
            return None
        if found is None or found[0].tenant != tenant:
            return None
        summary = summary_proto(found[0], self._clock.now())
        summary.elapsed_s = found[1]
        return summary

    def summary(self, program: Program) -> common_pb2.ProgramSummary:
        """After the core ended `program` for its caller: its waiting calls fail, its
        summary is kept."""
        self.closed(program)
        summary = summary_proto(program, self._clock.now())
        self._ended[(program.tenant, program.program_id)] = summary
        while len(self._ended) > self.keep:
            self._ended.popitem(last=False)
        return summary

    def closed(self, program: Program) -> None:
        """Its waiting calls fail (the program ended while they waited)."""
        self.one_call.pop(program.program_id, None)
        for call in program.calls.values():
            waiter = self._waiters.pop(f"{program.program_id}/{call.call_id}", None)
            if waiter is not None and not waiter.done():
                waiter.set_exception(ProgramClosed("the program ended while this call waited"))

    def end_one_call(self, program_id: str) -> None:
        """Ends a one-call program once no call of it is left to run (the caller pumps)."""
        tenant = self.one_call.get(program_id)
        if tenant is None:
            return
        try:
            program = self._core.program(program_id, tenant)
        except PlannerError:
            self.one_call.pop(program_id, None)
            return
        if all(c.state.finished for c in program.calls.values()):
            # no summary kept: nobody ends a one-call program (its id never leaves the
            # gateway); 10,000 kept summaries were ~10 MiB of the planner in one-call soaks
            self.closed(self._core.end_program(program_id, tenant))
