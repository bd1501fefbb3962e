"""Declared programs (DAGs) run server-side: each node once its dependencies are done, its
templates filled with their outputs, through the gateway core's call path. Emits the
ProgramEvents of gateway.proto: NodeStarted (when the planner grants the node a worker, or
a cache answers it), NodeDelta, NodeFinished, then the program's summary."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Callable, Sequence

import grpc

from gateway.call_items import Delta, Granted
from gateway.calls import prompt_chars
from gateway.core import GatewayCore, GatewayError, Placement
from ostinato.dag_rules import InvalidDag, fill_templates, filled_growth, topological_order
from ostinato.v1 import common_pb2, gateway_pb2


def _node_call(node: gateway_pb2.DagNode) -> common_pb2.CallSpec:
    spec = common_pb2.CallSpec()
    spec.CopyFrom(node.call)
    spec.call_id = node.id
    spec.thread_id = spec.thread_id or node.id
    # its dependents read its finished output only: a node cut after streaming starts over
    # (NodeDelta.restarted), not failing the whole program
    spec.restart_on_failure = True
    del spec.parent_call_ids[:]
    spec.parent_call_ids.extend(node.depends_on)
    return spec


def _of_node(node_id: str, exc: GatewayError) -> GatewayError:
    """The error, saying which node it is of."""
    return exc.with_message(f"node {node_id!r}: {exc.message}")


def _normalized(core: GatewayCore, node: gateway_pb2.DagNode) -> common_pb2.CallSpec:
    try:
        return core.normalize(_node_call(node))
    except GatewayError as exc:
        raise _of_node(node.id, exc) from exc


async def run_dag(core: GatewayCore, tenant: str, options: common_pb2.ProgramOptions,
                  nodes: Sequence[gateway_pb2.DagNode], timeout_s: float,
                  authenticate: Callable[[], str]) -> AsyncGenerator[gateway_pb2.ProgramEvent, None]:
    """`authenticate`: the caller's tenant, its key checked again (GatewayError when it is
    no longer valid), before each node's call: the RPC is authenticated once, at its start,
    and a key revoked meanwhile must stop the program's calls at once, not let them run,
    unmetered as a tenant with no record is (security review 2026-12-07)."""
    try:
        order = topological_order(nodes)
    except InvalidDag as exc:
        raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, str(exc)) from exc
    calls = {n.id: _normalized(core, n) for n in nodes}
    # the client's id; one open already is refused: the run ends its program, its own
    program_id = await core.start_program(tenant, options, declared=True)
    placed_in = core.program(tenant, program_id)  # the mesh's
    events: asyncio.Queue[gateway_pb2.ProgramEvent | GatewayError] = asyncio.Queue()
    outputs: dict[str, str] = {}
    done = {node_id: asyncio.Event() for node_id in order}

    def emit(**event: object) -> None:
        events.put_nowait(gateway_pb2.ProgramEvent(program_id=program_id, **event))  # type: ignore[arg-type]

    async def run_node(node_id: str) -> None:
        for parent in calls[node_id].parent_call_ids:
            await done[parent].wait()
        size = prompt_chars(calls[node_id]) + filled_growth(calls[node_id], outputs)
        if size > core.config.max_prompt_chars:  # checked before the text is built
            events.put_nowait(GatewayError(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"node {node_id!r}: prompt too large once its templates are filled: {size} "
                f"characters > {core.config.max_prompt_chars}"))
            return
        call = fill_templates(calls[node_id], outputs)
        try:
            if authenticate() != tenant:
                raise GatewayError(grpc.StatusCode.UNAUTHENTICATED,
                                   "the API key now names another tenant")
            async for item in core.run(tenant, Placement(placed_in, call, False, node=True),
                                       timeout_s):
                if isinstance(item, Granted):
                    emit(node_started=gateway_pb2.NodeStarted(node_id=node_id,
                                                              worker_id=item.worker_id))
                elif isinstance(item, Delta):
                    if item.text or item.restart:  # (a node's thinking is in its result)
                        emit(node_delta=gateway_pb2.NodeDelta(node_id=node_id, delta=item.text,
                                                              restarted=item.restart))
                else:
                    outputs[node_id] = item.text
                    emit(node_finished=gateway_pb2.NodeFinished(node_id=node_id, result=item))
        except GatewayError as exc:
            events.put_nowait(_of_node(node_id, exc))
            return
        done[node_id].set()

    tasks = [asyncio.create_task(run_node(node_id)) for node_id in order]
    try:
        finished = 0
        while finished < len(order):
            event = await events.get()
            if isinstance(event, GatewayError):
                raise event
            if event.HasField("node_finished"):
                finished += 1
            yield event
    except (GatewayError, asyncio.CancelledError, GeneratorExit):  # (closed: the client left)
        await _stopped(tasks)  # first: ending the program waits for its calls' reports
        with contextlib.suppress(GatewayError):  # best effort: the planner frees it now
            await core.end_placed(tenant, placed_in)  # (the mesh's id: a revoked tenant's
            # client id names no program of its generation now)
        raise
    finally:
        await _stopped(tasks)
    # Every node finished: the summary is the program's last event; a planner that cannot
    # end it fails the RPC with the planner's status.
    summary = await core.end_placed(tenant, placed_in)
    yield gateway_pb2.ProgramEvent(program_id=program_id, program_finished=summary)


async def _stopped(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.gather(*tasks, return_exceptions=True)
