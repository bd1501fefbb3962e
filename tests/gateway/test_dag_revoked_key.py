"""A declared program (RunProgram) checks its caller's key again before each node's call:
the RPC is authenticated once, at its start, and a key revoked while a node ran let the
next nodes run all the same, unmetered, as a tenant with no record is (security review
2026-12-07). The program runner over a stand-in core whose calls answer at once."""

from __future__ import annotations

from collections.abc import AsyncGenerator

import grpc
import pytest

from gateway.call_items import Granted
from gateway.core import GatewayError, Placement
from gateway.program_runner import run_dag
from ostinato.sdk_types import call_spec
from ostinato.v1 import common_pb2, gateway_pb2


class _Core:
    """What run_dag uses of GatewayCore; records the calls it runs and the programs ended."""

    class config:
        max_prompt_chars = 1_000_000

    def __init__(self) -> None:
        self.ran: list[str] = []
        self.ended: list[str] = []
        self.on_run: list[object] = []

    def normalize(self, call: common_pb2.CallSpec) -> common_pb2.CallSpec:
        return call

    async def start_program(self, tenant: str, options: object, declared: bool) -> str:
        return "p1"

    def program(self, tenant: str, program_id: str) -> str:
        return f"{tenant}#g1/{program_id}"

    async def run(self, tenant: str, placed: Placement, timeout_s: float
                  ) -> AsyncGenerator[object, None]:
        self.ran.append(placed.call.call_id)
        for hook in self.on_run:
            hook()  # type: ignore[operator]
        yield Granted("w0")
        yield common_pb2.CallResult(call_id=placed.call.call_id, text="ok")

    async def end_placed(self, tenant: str, inner: str) -> common_pb2.ProgramSummary:
        self.ended.append(inner)
        return common_pb2.ProgramSummary(program_id="p1")


def _chain(n: int) -> list[gateway_pb2.DagNode]:
    return [gateway_pb2.DagNode(id=f"n{i}", depends_on=[f"n{i - 1}"] if i else [],
                                call=call_spec(prompt=f"step {i}", max_tokens=4))
            for i in range(n)]


async def test_a_key_revoked_while_a_node_runs_stops_the_next_nodes() -> None:
    core = _Core()
    revoked = False

    def authenticate() -> str:
        if revoked:
            raise GatewayError(grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
        return "acme"

    def revoke() -> None:
        nonlocal revoked
        revoked = True

    core.on_run.append(revoke)  # n0 runs, and the key is revoked meanwhile
    events = []
    with pytest.raises(GatewayError) as refused:
        async for event in run_dag(core, "acme", common_pb2.ProgramOptions(),  # type: ignore[arg-type]
                                   _chain(4), 30.0, authenticate):
            events.append(event)
    assert core.ran == ["n0"]
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    assert "node 'n1'" in refused.value.message
    # ended under the id it was placed with (the tenant's client id names none of its
    # generation once it is revoked)
    assert core.ended == ["acme#g1/p1"]
    assert [e.node_finished.node_id for e in events if e.HasField("node_finished")] == ["n0"]


async def test_a_key_still_valid_runs_every_node_and_ends_the_program() -> None:
    core = _Core()
    events = [e async for e in run_dag(core, "acme", common_pb2.ProgramOptions(),  # type: ignore[arg-type]
                                       _chain(3), 30.0, lambda: "acme")]
    assert core.ran == ["n0", "n1", "n2"]
    assert core.ended == ["acme#g1/p1"] and events[-1].HasField("program_finished")
