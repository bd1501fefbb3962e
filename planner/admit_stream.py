"""The planner's end of AdmitStream: many admissions over one stream, each run as the unary
Admit runs (its own task, its deadline, its span), answered by id as each is granted.

A message on an open stream costs the planner (and the gateway) far less than an RPC: no
call set up, no metadata, no server interceptors. What the interceptors do for an RPC is
done here per admission: the caller's trace context continued and the Admit span.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable

import grpc
import structlog
from opentelemetry import trace

from ostinato.stream_tasks import StreamTasks, carrier, drained
from ostinato.v1 import planner_pb2
from tracing import genai
from tracing.grpc_interceptors import SpanDescriber
from tracing.stream_messages import Refused, bind_call_ids, mark_failed, message_span

log = structlog.get_logger(__name__)


# The unary Admit's trailing metadata for a refusal no retry can change (AdmitStreamResponse
# `final`)
FINAL = "ostinato-final"


class AdmitRefused(Refused):
    """An admission ends with this status (the unary Admit aborts with it). `final`: no
    retry of it can be granted (its program is past its deadline)."""

    def __init__(self, code: grpc.StatusCode, details: str, final: bool = False) -> None:
        super().__init__(code, details)
        self.final = final


Admit = Callable[[planner_pb2.AdmitRequest], Awaitable[planner_pb2.Grant]]


async def _answer(admit: Admit, msg: planner_pb2.AdmitStreamRequest,
                  describer: SpanDescriber | None) -> planner_pb2.AdmitStreamResponse:
    """One admission, as the unary Admit with its deadline; its span when traced."""
    bind_call_ids(msg.admit)  # (this task's own context, as an RPC's)
    span = message_span(describer, msg.admit, msg.trace_context)
    if span is None or describer is None:
        return await _decide(admit, msg)
    try:
        with trace.use_span(span, end_on_exit=False):
            try:
                reply = await _decide(admit, msg)
            except BaseException as exc:  # cancelled while it waited (its caller went away)
                genai.mark_cancelled(span, exc)
                raise
        if reply.status:
            mark_failed(span, _CODES[reply.status], reply.details)
        else:
            describer.on_response(span, reply.grant)
        return reply
    finally:
        span.end()


_CODES = {code.value[0]: code for code in grpc.StatusCode}


async def _decide(admit: Admit, msg: planner_pb2.AdmitStreamRequest,
                  ) -> planner_pb2.AdmitStreamResponse:
    try:
        async with asyncio.timeout(msg.timeout_s or None):
            grant = await admit(msg.admit)
    except AdmitRefused as exc:
        return planner_pb2.AdmitStreamResponse(id=msg.id, status=exc.code.value[0],
                                               details=exc.details, final=exc.final)
    except TimeoutError:
        return planner_pb2.AdmitStreamResponse(
            id=msg.id, status=grpc.StatusCode.DEADLINE_EXCEEDED.value[0],
            details="Deadline Exceeded")
    except Exception as exc:  # a bug: the caller is told at once (as an RPC's end would)
        log.exception("admission failed", program_id=msg.admit.program_id,
                      call_id=msg.admit.call_id)
        return planner_pb2.AdmitStreamResponse(
            id=msg.id, status=grpc.StatusCode.INTERNAL.value[0],
            details=f"planner error: {type(exc).__name__}")
    return planner_pb2.AdmitStreamResponse(id=msg.id, grant=grant)


_NOT_ACTIVE = "this planner is not the active one (standby, or its lease lapsed)"


async def serve_admissions(admit: Admit, requests: AsyncIterator[planner_pb2.AdmitStreamRequest],
                           describer: SpanDescriber | None = None,
                           active: Callable[[], bool] = lambda: True,
                           batches: bool = False,
                           ) -> AsyncGenerator[planner_pb2.AdmitStreamResponse, None]:
    """Answers each admission read from `requests` once it is decided. A cancel, or the
    stream's end, cancels the admissions of the ids concerned (the unary Admit's
    cancellation: the call is dropped, or its just-given worker freed). While not
    `active()` (planner HA: its lease lapsed), answers are void: UNAVAILABLE, as
    planner/ha.py's ActiveOnly answers a unary call then. `batches`: the caller reads
    carriers (ostinato/stream_tasks.py): answers decided meanwhile go as one message."""
    replies: asyncio.Queue[planner_pb2.AdmitStreamResponse | None] = asyncio.Queue()

    async def one(msg: planner_pb2.AdmitStreamRequest) -> None:
        replies.put_nowait(await _answer(admit, msg, describer))

    tasks = StreamTasks(one)

    async def read() -> None:
        try:
            await tasks.read(requests)  # the caller closed its side: the rest is answered
        finally:
            replies.put_nowait(None)

    reader = asyncio.get_running_loop().create_task(read())
    try:
        async for answers in drained(replies, lambda: batches,
                                       planner_pb2.AdmitStreamResponse.ByteSize):
            if not active():
                answers = [planner_pb2.AdmitStreamResponse(
                    id=reply.id, status=grpc.StatusCode.UNAVAILABLE.value[0], details=_NOT_ACTIVE)
                    for reply in answers]
            yield carrier(planner_pb2.AdmitStreamResponse, answers)
        await reader  # (done: its errors, if any, end the stream)
    finally:
        reader.cancel()
        tasks.cancel_all()
