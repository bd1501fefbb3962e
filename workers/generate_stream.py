"""The worker's end of GenerateStream: many generations over one stream, each run as the
Generate RPC runs (its own task, its deadline, its span), its chunks sent with its id.

A message on an open stream costs the worker (and the gateway) far less than an RPC: no
call set up, no metadata, no server interceptors. What the interceptors do for an RPC is
done here per generation: the caller's trace context continued and the Generate span.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing, nullcontext
from contextvars import ContextVar

import grpc
import structlog
from opentelemetry import trace

from ostinato.deadlines import cut_by_deadline
from ostinato.stream_tasks import StreamTasks, carrier, drained
from ostinato.v1 import worker_pb2
from tracing import genai
from tracing.grpc_interceptors import SpanDescriber
from tracing.stream_messages import Refused, bind_call_ids, mark_failed, message_span

log = structlog.get_logger(__name__)

# The running generation's deadline (the event loop's clock; None: none), set where it is
# known (GenerateStream's message, Generate's RPC) for the code that counts how it ended.
GENERATION_DEADLINE: ContextVar[float | None] = ContextVar("generation_deadline", default=None)


def cut_by_its_deadline() -> bool:
    """Whether the generation being cancelled now is cut by its deadline (not its caller)."""
    return cut_by_deadline(asyncio.get_running_loop().time(), GENERATION_DEADLINE.get())


class GenerateRefused(Refused):
    """A generation ends with this status (the Generate RPC aborts with it)."""


Generate = Callable[[worker_pb2.GenerateRequest], AsyncGenerator[worker_pb2.GenerateChunk, None]]
Reply = worker_pb2.GenerateStreamChunk
Send = Callable[..., None]  # (reply, and optionally a future set once it is written)


def _reply_bytes(item: tuple[Reply, asyncio.Future[None] | None]) -> int:
    return item[0].ByteSize()


def _ended(generation: int, code: grpc.StatusCode, details: str) -> Reply:
    return Reply(id=generation, end=True, status=code.value[0], details=details)


async def _run(generate: Generate, msg: worker_pb2.GenerateStreamRequest,
               describer: SpanDescriber | None, send: Send) -> None:
    """One generation: its chunks, or its end with the status it failed with."""
    bind_call_ids(msg.request)  # (this task's own context, as an RPC's)
    span = message_span(describer, msg.request, msg.trace_context)
    deadline = asyncio.get_running_loop().time() + msg.timeout_s if msg.timeout_s else None
    GENERATION_DEADLINE.set(deadline)  # (this generation's task's own context)
    finished = False
    try:
        with trace.use_span(span, end_on_exit=False) if span is not None else nullcontext():
            async with asyncio.timeout_at(deadline):
                # to its end: what the generation does after its result runs now (as after
                # Generate's last message), not whenever the generator is collected; and
                # closed if cancelled while a chunk is written (its report made then)
                async with aclosing(generate(msg.request)) as chunks:
                    async for chunk in chunks:
                        if span is not None and describer is not None and span.is_recording():
                            describer.on_response(span, chunk)
                        if chunk.HasField("result"):
                            finished = True
                            # written before the generation goes on (as Generate's last message)
                            written = asyncio.get_running_loop().create_future()
                            send(Reply(id=msg.id, chunk=chunk), written)
                            await written
                        else:
                            send(Reply(id=msg.id, chunk=chunk))
        if not finished:
            send(_ended(msg.id, grpc.StatusCode.INTERNAL, "generation ended without a result"))
    except GenerateRefused as exc:
        mark_failed(span, exc.code, exc.details)
        send(_ended(msg.id, exc.code, exc.details))
    except TimeoutError:
        mark_failed(span, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        send(_ended(msg.id, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
    except asyncio.CancelledError as exc:  # the gateway cancelled it (its caller went away,
        if cut_by_its_deadline():  # or the call's deadline passed there first)
            mark_failed(span, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        else:
            genai.mark_cancelled(span, exc)
        raise
    except Exception as exc:  # a bug: the caller is told at once (as an RPC's end would)
        log.exception("generation failed", call_id=msg.request.call_id)
        mark_failed(span, grpc.StatusCode.INTERNAL, "worker error")
        send(_ended(msg.id, grpc.StatusCode.INTERNAL, f"worker error: {type(exc).__name__}"))
    finally:
        if span is not None:
            span.end()


async def serve_generations(generate: Generate,
                            requests: AsyncIterator[worker_pb2.GenerateStreamRequest],
                            describer: SpanDescriber | None = None,
                            batches: bool = False) -> AsyncGenerator[Reply, None]:
    """Runs each generation read from `requests`, sending its chunks as they come. A
    cancel, or the stream's end, cancels the generations concerned (as a cancelled
    Generate: the engine request aborted, the call reported CANCELLED). `batches`: the
    caller reads carriers (ostinato/stream_tasks.py): chunks that queued meanwhile go as
    one message."""
    replies: asyncio.Queue[tuple[Reply, asyncio.Future[None] | None] | None] = asyncio.Queue()

    def send(reply: Reply, written: asyncio.Future[None] | None = None) -> None:
        replies.put_nowait((reply, written))

    async def one(msg: worker_pb2.GenerateStreamRequest) -> None:
        await _run(generate, msg, describer, send)

    tasks = StreamTasks(one)

    async def read() -> None:
        try:
            await tasks.read(requests)  # the caller closed its side: the rest still streams
        finally:
            replies.put_nowait(None)

    reader = asyncio.get_running_loop().create_task(read())
    try:
        async for items in drained(replies, lambda: batches, _reply_bytes):
            yield carrier(Reply, [reply for reply, _ in items])  # (resumed once written)
            for _, written in items:
                if written is not None and not written.done():
                    written.set_result(None)
        await reader
    finally:
        reader.cancel()
        tasks.cancel_all()
