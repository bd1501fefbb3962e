"""RegisterProgram answers only once the program's record is written: a planner killed just
after answering would otherwise forget a program its caller goes on to use (the soak saw every
later call of three such programs answered NOT_FOUND)."""

from __future__ import annotations

import asyncio

import pytest

from ostinato.clock import SystemClock
from ostinato.v1 import common_pb2, planner_pb2
from planner.core import PlannerCore
from planner.core.selection import parse_policy
from tests.planner.loopback import planner_on_loopback


class HeldWrites:
    """The store's writes, each left pending until the test lets them through."""

    def __init__(self) -> None:
        self.written = asyncio.get_running_loop().create_future()
        self.published = asyncio.Event()

    def publish(self, events: object) -> asyncio.Future[None]:
        self.published.set()
        return self.written

    def hurry(self) -> None:
        return None

    async def load_ended(self, program_id: str) -> None:
        return None


async def test_register_program_answers_once_the_record_is_written() -> None:
    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    store = HeldWrites()
    async with planner_on_loopback(core, SystemClock(), store) as (stub, service):
        service.persist_timeout_s = 600.0  # only the write lets the answer go
        answer = asyncio.ensure_future(stub.RegisterProgram(planner_pb2.RegisterProgramRequest(
            tenant="t", options=common_pb2.ProgramOptions(program_id="p"))))
        await store.published.wait()
        # held while the write is pending (this wait can only let a wrong planner pass,
        # never fail a right one)
        done, _ = await asyncio.wait({answer}, timeout=0.5)
        assert not done
        store.written.set_result(None)
        assert (await answer).program_id == "p"


async def test_register_program_takes_the_gateways_deadlines_and_refuses_the_rest() -> None:
    """A sub-microsecond deadline is a deadline (already late), as the gateway takes it; one
    out of range is INVALID_ARGUMENT (an OverflowError made it UNKNOWN)."""
    import grpc
    from google.protobuf.duration_pb2 import Duration

    from tests.planner.loopback import NoStore

    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with planner_on_loopback(core, SystemClock(), NoStore()) as (stub, _):
        reply = await stub.RegisterProgram(planner_pb2.RegisterProgramRequest(
            tenant="t", options=common_pb2.ProgramOptions(program_id="p",
                                                          deadline=Duration(nanos=500))))
        assert reply.program_id == "p" and not reply.already_open
        again = await stub.RegisterProgram(planner_pb2.RegisterProgramRequest(
            tenant="t", options=common_pb2.ProgramOptions(program_id="p")))
        assert again.program_id == "p" and again.already_open  # idempotent, and says so
        for bad in (Duration(seconds=10**14), Duration(seconds=2, nanos=-2_000_000_000)):
            try:
                await stub.RegisterProgram(planner_pb2.RegisterProgramRequest(
                    tenant="t", options=common_pb2.ProgramOptions(program_id="q", deadline=bad)))
            except grpc.aio.AioRpcError as exc:
                assert exc.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert exc.details() == "deadline must be positive and at most 31536000 s"
            else:
                raise AssertionError(f"{bad} was taken")


@pytest.mark.parametrize(("first", "again", "already_open"), [
    ("r1", "r1", False),  # the same registration retried (its first answer lost)
    ("r1", "r2", True),  # another registration of the same program
    ("", "", True),  # a caller that sends none: every registration after the first
    ("r1", "", True),
    ("", "r1", True),
])
async def test_a_retried_registration_is_told_it_opened_the_program(
        first: str, again: str, already_open: bool) -> None:
    from tests.planner.loopback import NoStore

    core = PlannerCore(SystemClock(), *parse_policy("fcfs+round_robin"))
    async with planner_on_loopback(core, SystemClock(), NoStore()) as (stub, _):
        def register(registration: str) -> planner_pb2.RegisterProgramRequest:
            return planner_pb2.RegisterProgramRequest(
                tenant="t", options=common_pb2.ProgramOptions(program_id="p"),
                registration=registration)

        assert not (await stub.RegisterProgram(register(first))).already_open
        assert (await stub.RegisterProgram(register(again))).already_open is already_open
        assert core.programs_open == 1
