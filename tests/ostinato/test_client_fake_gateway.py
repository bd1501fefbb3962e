"""ostinato.Client and ostinato.AsyncClient against a fake gateway on loopback (the generated
Gateway servicer): what the SDK sends and what it makes of the answers, without a mesh.

The fake answers a call whose prompt is "endless" with deltas until it is cancelled, and
records which calls were cancelled (the gRPC call's termination: it never ends otherwise)."""

from __future__ import annotations

import asyncio
import gc
import inspect
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest

import ostinato
from ostinato import dag, sdk_types
from ostinato.sdk_results import TokenLogprob, TopLogprob
from ostinato.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

WAIT_S = 10.0  # a hang guard, not a timing


class FakeGateway(gateway_pb2_grpc.GatewayServicer):
    def __init__(self) -> None:
        self.calls: list[gateway_pb2.CallRequest] = []
        self.whole: list[str] = []  # the calls made as CallWhole (the answer in one message)
        self.cancelled: dict[str, threading.Event] = {}
        self._ids: set[tuple[str, str]] = set()
        self._lock = threading.Lock()
        self.start_deadlines: list[float | None] = []  # seconds left as each StartProgram came

    def StartProgram(self, request, context):
        self.start_deadlines.append(context.time_remaining())
        return gateway_pb2.StartProgramResponse(program_id=request.options.program_id)

    def EndProgram(self, request, context):
        return gateway_pb2.EndProgramResponse(summary=common_pb2.ProgramSummary(
            program_id=request.program_id, tenant="acme", calls_completed=1))

    def CacheStats(self, request, context):
        return gateway_pb2.CacheStatsResponse(enabled=True, redis_up=True,
                                              server_vector_search=True)

    def Call(self, request, context):
        call = request.call
        with self._lock:
            self.calls.append(request)
            if call.call_id in call.parent_call_ids:  # as the gateway answers
                context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a call cannot be its own parent")
            if (request.program_id, call.call_id) in self._ids:
                context.abort(grpc.StatusCode.ALREADY_EXISTS, f"call {call.call_id} exists")
            self._ids.add((request.program_id, call.call_id))
        if call.prompt == "endless":
            yield from (gateway_pb2.CallChunk(delta=d) for d in self._endless(call.call_id, context))
            return
        result = common_pb2.CallResult(call_id=call.call_id, text="hi", finish_reason="stop")
        if call.logprobs:
            result.logprobs.append(common_pb2.TokenLogprob(token="hi", logprob=-0.5, top_logprobs=[
                common_pb2.TopLogprob(token="hi", logprob=-0.5),
                common_pb2.TopLogprob(token="yo", logprob=-1.5)][:call.top_logprobs]))
        yield gateway_pb2.CallChunk(delta="hi", result=result)

    def CallWhole(self, request, context):
        self.whole.append(request.call.call_id)
        *_, last = self.Call(request, context)
        return last

    def RunProgram(self, request, context):
        yield from (gateway_pb2.ProgramEvent(program_id=request.options.program_id,
                                             node_delta=gateway_pb2.NodeDelta(node_id="n0", delta=d))
                    for d in self._endless(request.options.program_id, context))

    def _endless(self, key: str, context: grpc.ServicerContext) -> Iterator[str]:
        done = self.cancelled.setdefault(key, threading.Event())
        context.add_callback(done.set)  # the RPC ended: here, only when the client cancels it
        while context.is_active():
            yield "x"
            time.sleep(0.005)

    def wait_started(self, key: str) -> None:
        deadline = time.monotonic() + WAIT_S
        while key not in self.cancelled:
            assert time.monotonic() < deadline, f"{key} never reached the gateway"
            time.sleep(0.01)

    def was_cancelled(self, key: str) -> bool:
        deadline = time.monotonic() + WAIT_S
        while key not in self.cancelled and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.cancelled[key].wait(max(0.0, deadline - time.monotonic()))


@pytest.fixture(scope="module")
def gateway() -> Iterator[tuple[str, FakeGateway]]:
    fake = FakeGateway()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    gateway_pb2_grpc.add_GatewayServicer_to_server(fake, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", fake
    server.stop(grace=None)


@pytest.fixture
def client(gateway: tuple[str, FakeGateway]) -> Iterator[ostinato.Client]:
    with ostinato.Client(gateway[0], timeout_s=WAIT_S) as c:
        yield c


# -- a call id used again ----------------------------------------------------------------------


def test_a_call_id_used_again_on_its_thread_is_already_exists(
        client: ostinato.Client, gateway: tuple[str, FakeGateway]) -> None:
    """The thread's last call is the id itself: it is not made its own parent (which the
    gateway refuses as INVALID_ARGUMENT), so the gateway's ALREADY_EXISTS comes through."""
    with client.program() as program:
        program.call(prompt="x", call_id="step")
        with pytest.raises(ostinato.AlreadyExists):
            program.call(prompt="x", call_id="step")
        assert list(gateway[1].calls[-1].call.parent_call_ids) == []
        after = program.call(prompt="x")  # a new id still follows the thread's last call
    assert list(gateway[1].calls[-1].call.parent_call_ids) == ["step"] and after.call_id


async def test_the_async_client_is_the_same(gateway: tuple[str, FakeGateway]) -> None:
    async with ostinato.AsyncClient(gateway[0], timeout_s=WAIT_S) as client, \
            client.program() as program:
        await program.call(prompt="x", call_id="step")
        with pytest.raises(ostinato.AlreadyExists):
            await program.call(prompt="x", call_id="step")
    assert program.summary is not None and program.summary.calls_completed == 1  # ended


async def test_an_async_program_is_awaited_or_entered(gateway: tuple[str, FakeGateway]) -> None:
    """`await client.program()` gives the program (ended by the caller, or by entering it);
    `async with client.program()` ends it on leaving, an error raised inside too."""
    async with ostinato.AsyncClient(gateway[0], timeout_s=WAIT_S) as client:
        program = await client.program(program_id="p-awaited")
        assert program.program_id == "p-awaited" and program.summary is None
        async with program:
            pass
        assert program.summary is not None
        async with await client.program(program_id="p-entered") as entered:
            pass
        assert entered.summary is not None
        with pytest.raises(RuntimeError, match="inside"):
            async with client.program(program_id="p-failed") as failed:
                raise RuntimeError("inside")
        assert failed.summary is not None and failed.program_id == "p-failed"


# -- what a call carries and returns -------------------------------------------------------------


def test_logprobs_and_parallel_tool_calls_go_out_and_logprobs_come_back(
        client: ostinato.Client, gateway: tuple[str, FakeGateway]) -> None:
    with client.program() as program:
        out = program.call(prompt="x", logprobs=True, top_logprobs=2, parallel_tool_calls=False)
        sent = gateway[1].calls[-1].call
        assert sent.logprobs and sent.top_logprobs == 2
        assert sent.HasField("parallel_tool_calls") and not sent.parallel_tool_calls
        assert out.logprobs == (TokenLogprob("hi", -0.5, (TopLogprob("hi", -0.5),
                                                          TopLogprob("yo", -1.5))),)
        plain = program.call(prompt="x")
        assert not gateway[1].calls[-1].call.HasField("parallel_tool_calls")  # the default
        assert plain.logprobs == ()


def test_the_summary_names_the_tenant_and_cache_stats_vector_search(
        client: ostinato.Client) -> None:
    with client.program() as program:
        program.call(prompt="x")
    assert program.summary is not None and program.summary.tenant == "acme"
    assert client.cache_stats().server_vector_search


def test_the_sync_stream_takes_what_the_async_one_does(
        client: ostinato.Client, gateway: tuple[str, FakeGateway]) -> None:
    sync = inspect.signature(ostinato.Program.stream).parameters
    asyncio_ = inspect.signature(ostinato.AsyncProgram.stream).parameters
    assert [(p.name, p.kind, p.default) for p in sync.values()] == \
        [(p.name, p.kind, p.default) for p in asyncio_.values()]
    with client.program() as program:
        stream = program.stream(prompt="x", whole=True)
        assert list(stream) == ["hi"] and gateway[1].calls[-1].whole


# -- leaving a stream early cancels its call -----------------------------------------------------


def test_breaking_out_of_a_stream_cancels_the_call(
        client: ostinato.Client, gateway: tuple[str, FakeGateway]) -> None:
    with client.program() as program:
        for _ in program.stream(prompt="endless", call_id="broken"):
            break
        assert gateway[1].was_cancelled("broken")
        deltas = iter(program.stream(prompt="endless", call_id="dropped"))
        next(deltas)
        del deltas  # collected
        assert gateway[1].was_cancelled("dropped")
        deltas = iter(program.stream(prompt="endless", call_id="closed"))
        next(deltas)
        deltas.close()
        assert gateway[1].was_cancelled("closed")
        assert program.call(prompt="x").text == "hi"  # the client goes on


def test_a_stream_dropped_before_it_was_read_cancels_the_call(
        gateway: tuple[str, FakeGateway]) -> None:
    """SDK review 2026-12-05 F5: the RPC starts as the stream is made; dropped unread, it ran
    to its end (and took its tenant's quota). No deadline on the calls: only a cancel ends
    them."""
    with ostinato.Client(gateway[0]) as client, client.program() as program:
        stream = program.stream(prompt="endless", call_id="never-read")
        gateway[1].wait_started("never-read")  # running at the gateway, not read here
        del stream
        gc.collect()
        assert gateway[1].was_cancelled("never-read")
        run = client.run_stream(dag_graph(), program_id="dag-never-read")
        gateway[1].wait_started("dag-never-read")
        del run
        gc.collect()
        assert gateway[1].was_cancelled("dag-never-read")


def dag_graph() -> dag.Graph:
    g = dag.Graph()
    g.call(prompt="x")
    return g


def test_a_closed_client_is_client_closed_and_cancel_does_nothing(
        gateway: tuple[str, FakeGateway]) -> None:
    """SDK review 2026-12-05 F6: a bare RuntimeError (event loop is closed) and a warning of
    a coroutine never awaited."""
    client = ostinato.Client(gateway[0], timeout_s=WAIT_S)
    program = client.program()
    stream = program.stream(prompt="x")
    assert "".join(stream) == "hi"
    client.close()
    stream.cancel()  # ended with the client: nothing to do
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "coroutine ... was never awaited"
        with pytest.raises(ostinato.ClientClosed, match="the client is closed"):
            program.call(prompt="x")
        with pytest.raises(ostinato.Cancelled):
            client.program()


async def test_breaking_out_of_an_async_stream_cancels_the_call(
        gateway: tuple[str, FakeGateway]) -> None:
    async with ostinato.AsyncClient(gateway[0], timeout_s=WAIT_S) as client, \
            await client.program() as program:
        async for _ in program.stream(prompt="endless", call_id="async-broken"):
            break
        assert await asyncio.to_thread(gateway[1].was_cancelled, "async-broken")


def test_breaking_out_of_a_declared_programs_events_cancels_it(
        client: ostinato.Client, gateway: tuple[str, FakeGateway]) -> None:
    g = dag.Graph()
    g.call(prompt="x")
    for _ in client.run_stream(g, program_id="dag-broken"):
        break
    assert gateway[1].was_cancelled("dag-broken")


@pytest.mark.parametrize(("timeout_s", "least", "most"), [
    (None, 50.0, 60.0),  # the SDK's default for the operations that are not calls
    (90.0, 80.0, 90.0),  # longer than the default: the client's (was cut to 60 s)
    (5.0, 0.0, 5.0),
])
def test_program_operations_carry_the_clients_deadline(
        gateway: tuple[str, FakeGateway], timeout_s: float | None, least: float,
        most: float) -> None:
    """SDK review 2026-12-05 F3: the channel's service config also set 60 s, and gRPC takes
    the shorter deadline (a Client(timeout_s=90) gave up after 60 s). gRPC enforces the
    service config's timeout on the client's side, where the server does not see it: so
    the config must set none, and each RPC carries the deadline. Bounds with a wide margin
    (a slow machine only shortens what is left), never a timing."""
    assert not any("timeout" in method for method in sdk_types.SERVICE_CONFIG["methodConfig"])
    with ostinato.Client(gateway[0], timeout_s=timeout_s) as c:
        c.program().end()
    left = gateway[1].start_deadlines[-1]
    assert left is not None and least < left <= most + 1.0  # (gRPC rounds the deadline up)


def test_closing_the_client_ends_other_threads_waits_with_client_closed(
        gateway: tuple[str, FakeGateway]) -> None:
    """SDK review 2026-12-06: the channel was closed first, so a call and a stream waiting on
    other threads ended with Cancelled (and calls started meanwhile with grpc's bare
    UsageError), not the ClientClosed the docs promise."""
    client = ostinato.Client(gateway[0])
    program = client.program()
    outcome: dict[str, BaseException | None] = {}

    def wait(kind: str) -> None:
        try:
            if kind == "call":
                program.call(prompt="endless", call_id="close-call")
            else:
                for _ in program.stream(prompt="endless", call_id="close-stream"):
                    pass
            outcome[kind] = None
        except BaseException as exc:  # (what the thread got is the point)
            outcome[kind] = exc

    threads = [threading.Thread(target=wait, args=(kind,)) for kind in ("call", "stream")]
    for t in threads:
        t.start()
    for key in ("close-call", "close-stream"):
        gateway[1].wait_started(key)
    client.close()
    for t in threads:
        t.join(WAIT_S)
    assert set(outcome) == {"call", "stream"}
    for kind, exc in outcome.items():  # (a stream between two chunks as the close began is
        # told "the client is closed", one waiting "closed while this call waited": both are)
        assert isinstance(exc, ostinato.ClientClosed), (kind, exc)
    assert gateway[1].was_cancelled("close-call") and gateway[1].was_cancelled("close-stream")


def test_an_async_client_used_on_another_loop_says_so(gateway: tuple[str, FakeGateway]) -> None:
    """SDK review 2026-12-06: a raw "Event loop is closed" from gRPC."""
    async def make() -> ostinato.AsyncClient:
        return ostinato.AsyncClient(gateway[0], timeout_s=WAIT_S)

    client = asyncio.run(make())

    async def use() -> None:
        with pytest.raises(RuntimeError, match="made in another event loop"):
            await client.cache_stats()
        with pytest.raises(RuntimeError, match="made in another event loop"):
            await client.program()

    asyncio.run(use())


async def test_a_run_that_fails_before_its_first_event_still_names_its_program() -> None:
    """SDK review 2026-12-06: its result's program_id stayed empty (it came with the first
    event), so the caller could not end or look up the program it asked for."""
    from tests.ports import closed_port

    async with ostinato.AsyncClient(f"127.0.0.1:{closed_port()}", timeout_s=1.0) as client:
        named = client.run_stream(dag_graph(), program_id="named")
        unnamed = client.run_stream(dag_graph())
        for stream in (named, unnamed):
            with pytest.raises(ostinato.Unavailable):
                _ = [event async for event in stream]
    assert named.result.program_id == "named"
    assert len(unnamed.result.program_id) == 32  # the one the SDK named and sent


@pytest.mark.parametrize("sync", [True, False])
def test_a_with_body_that_raised_keeps_its_error_when_the_gateway_is_gone(sync: bool) -> None:
    """Fault review 2026-12-06: a stream cut by a gateway gone raised, `with` then ended the
    program, which waited 60 s for the gateway and raised its own UNAVAILABLE instead."""
    fake = FakeGateway()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    gateway_pb2_grpc.add_GatewayServicer_to_server(fake, server)
    address = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    server.start()

    class BodyFailed(Exception):
        pass

    def gateway_gone() -> None:
        server.stop(grace=None).wait()
        raise BodyFailed("the body's own error")

    async def run_async() -> None:
        async with ostinato.AsyncClient(address) as client, client.program():
            gateway_gone()

    with pytest.raises(BodyFailed):
        if sync:
            with ostinato.Client(address) as client, client.program():
                gateway_gone()
        else:
            asyncio.run(run_async())
