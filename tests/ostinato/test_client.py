"""ostinato.Client and ostinato.AsyncClient against the session mesh: one implementation, so
each behaviour is checked through both (the blocking client drives the asyncio one)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis

import ostinato
from ostinato.mesh import Mesh
from tests.examples.mesh_records import program_calls
from tests.ports import closed_port

USER = [{"role": "user", "content": "Plan a trip to Lyon."}]
KEY = "key-acme"  # tests/conftest.py's mesh


@pytest.fixture(scope="module")
def store(mesh: Mesh) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(mesh.endpoints.redis_url, decode_responses=True)
    yield client
    client.close()


def test_threads_fan_out_from_a_result_and_join_on_theirs(mesh: Mesh, store: redis.Redis) -> None:
    """Python threads share one Program; each branch names its parent by the result it got."""
    with ostinato.Client(mesh.endpoints.gateway, api_key=KEY) as client, \
            client.program(program_class="fan-out") as program:
        root = program.call(messages=USER, max_tokens=4)
        with ThreadPoolExecutor(4) as pool:
            branches = list(pool.map(lambda i: program.call(
                messages=USER, max_tokens=4, thread_id=f"b{i}", parents=[root]), range(4)))
        join = program.call(messages=USER, max_tokens=4, parents=branches)
        after = program.call(messages=USER, max_tokens=4)  # main thread: after the join
    assert program.summary is not None and program.summary.calls_completed == 7
    calls = program_calls(store, program.program_id, 7, tenant="acme")
    assert all(calls[b.call_id]["parents"] == [root.call_id] for b in branches)
    assert {calls[b.call_id]["thread_id"] for b in branches} == {"b0", "b1", "b2", "b3"}
    assert sorted(calls[join.call_id]["parents"]) == sorted(b.call_id for b in branches)
    assert calls[after.call_id]["parents"] == [join.call_id]


def test_a_stream_yields_deltas_then_its_result(mesh: Mesh) -> None:
    with ostinato.Client(mesh.endpoints.gateway) as client, client.program() as program:
        stream = program.stream(messages=USER, max_tokens=12, ignore_eos=True)
        deltas = list(stream)
    assert stream.result is not None and len(deltas) > 1
    assert "".join(deltas) == stream.text == stream.result.text
    assert stream.result.usage.completion_tokens == 12 and stream.restarts == 0


async def test_the_async_stream_is_the_same(mesh: Mesh) -> None:
    async with ostinato.AsyncClient(mesh.endpoints.gateway) as client, \
            await client.program() as program:
        stream = program.stream(messages=USER, max_tokens=12, ignore_eos=True)
        deltas = [d async for d in stream]
        root = stream.result
        assert root is not None and "".join(deltas) == root.text
        a, b = await asyncio.gather(
            program.call(messages=USER, max_tokens=3, thread_id="a", parents=[root]),
            program.call(messages=USER, max_tokens=3, thread_id="b", parents=[root.call_id]))
    assert program.summary is not None and program.summary.calls_completed == 3
    assert a.call_id != b.call_id


def test_a_cancelled_stream_raises_cancelled(mesh: Mesh) -> None:
    with ostinato.Client(mesh.endpoints.gateway) as client, client.program() as program:
        stream = program.stream(messages=USER, max_tokens=4000, ignore_eos=True)
        deltas = iter(stream)
        next(deltas)  # the call is running
        stream.cancel()
        with pytest.raises(ostinato.Cancelled):
            list(deltas)
        assert program.call(messages=USER, max_tokens=2).text  # the program goes on


# -- errors: each status the mesh answers, as its exception, through both clients --------------


def _sync(address: str, client_args: dict[str, Any], call_args: dict[str, Any]) -> None:
    with ostinato.Client(address, **client_args) as client, client.program() as program:
        program.call(**{"messages": USER, "max_tokens": 2, **call_args})


def _async(address: str, client_args: dict[str, Any], call_args: dict[str, Any]) -> None:
    async def run() -> None:
        async with ostinato.AsyncClient(address, **client_args) as client, \
                await client.program() as program:
            await program.call(**{"messages": USER, "max_tokens": 2, **call_args})
    asyncio.run(run())


@pytest.mark.parametrize("run", [_sync, _async])
@pytest.mark.parametrize(("client_args", "call_args", "error"), [
    ({"api_key": "key-nobody-knows"}, {}, ostinato.Unauthenticated),
    ({}, {"model": "other/model"}, ostinato.NotFound),
    ({}, {"max_tokens": 10**6}, ostinato.InvalidArgument),
    ({}, {"parents": ["no-such-call"]}, ostinato.InvalidArgument),
    ({"timeout_s": 1e-3}, {}, ostinato.DeadlineExceeded),  # the StartProgram's deadline
])
def test_each_refusal_raises_its_exception(mesh: Mesh, run: Any, client_args: dict[str, Any],
                                           call_args: dict[str, Any], error: type) -> None:
    with pytest.raises(error) as err:
        run(mesh.endpoints.gateway, client_args, call_args)
    assert type(err.value) is error and err.value.message


@pytest.mark.parametrize("run", [_sync, _async])
def test_an_unreachable_gateway_is_unavailable_and_named(run: Any) -> None:
    """Nothing listens there: the SDK waits for the gateway until the deadline (a restarting
    one comes back), then says it could not reach it, not a bare "Deadline Exceeded"."""
    address = f"127.0.0.1:{closed_port()}"
    with pytest.raises(ostinato.Unavailable, match=f"cannot reach the gateway at {address}"):
        run(address, {"timeout_s": 1.5}, {})


def test_a_call_id_used_twice_and_a_call_after_the_end(mesh: Mesh) -> None:
    with ostinato.Client(mesh.endpoints.gateway) as client:
        program = client.program()
        program.call(messages=USER, max_tokens=2, call_id="once")
        with pytest.raises(ostinato.AlreadyExists):
            program.call(messages=USER, max_tokens=2, call_id="once", parents=[])
        with pytest.raises(ostinato.AlreadyExists):  # on its thread, it is not its own parent
            program.call(messages=USER, max_tokens=2, call_id="once")
        summary = program.end()
        assert program.end() is summary  # ending twice: the same summary
        with pytest.raises(ostinato.NotFound, match="no program"):  # the planner forgot it
            program.call(messages=USER, max_tokens=2)


@pytest.mark.parametrize("run", [_sync, _async])
def test_a_gateway_that_accepts_and_never_answers_is_unavailable_and_named(run: Any) -> None:
    """A port that takes connections and says nothing (a gateway stopped with SIGSTOP): the
    channel stays CONNECTING; it was a bare DEADLINE_EXCEEDED (SDK review 2026-12-06)."""
    import socket

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)  # accepted into the backlog by the kernel; nobody reads
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(ostinato.Unavailable, match=f"cannot reach the gateway at {address}"):
            run(address, {"timeout_s": 1.5}, {})
