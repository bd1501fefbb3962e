"""The whole mesh as real processes on loopback: real Redis, real gRPC, sim SGLang engines."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import time
from pathlib import Path

import grpc
import pytest
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

import ostinato
from cache import keys
from ostinato.mesh import Mesh
from ostinato.sdk_types import call_spec
from ostinato.service_env import GRPC_EXPERIMENTS
from ostinato.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc, worker_pb2, worker_pb2_grpc
from tests.stored_ids import stored_program_id

USER = [{"role": "user", "content": "Plan a trip to Lyon."}]


def test_program_of_dependent_calls_and_fan_out(mesh: Mesh) -> None:
    ep = mesh.endpoints
    with ostinato.Client(ep.gateway, api_key="key-acme") as client, client.program() as program:
        history = list(USER)
        chain = []
        for step in range(5):  # five dependent calls, a client-side tool between them
            out = program.call(messages=history, max_tokens=8, temperature=0.0)
            chain.append(out)
            history += [{"role": "assistant", "content": out.text},
                        {"role": "tool", "content": f"tool result {step}"}]
        root = chain[-1].call_id
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(3) as pool:
            fan = list(pool.map(lambda i: program.call(
                messages=[*history, {"role": "user", "content": f"branch {i}"}],
                thread_id=f"b{i}", parents=[root], max_tokens=8), range(3)))
        join = program.call(messages=history, parents=[o.call_id for o in fan], max_tokens=8)
    outs = [*chain, *fan, join]
    assert all(o.text and o.worker_id in ep.workers and o.simulated for o in outs)
    # the default policy (srpt+affinity) keeps the conversation on the engine holding it
    assert len({o.worker_id for o in chain}) == 1
    assert all(o.usage.cached_tokens > 0 for o in chain[1:])
    assert all(o.usage.completion_tokens > 0 and o.usage.prompt_tokens > 0 for o in outs)
    assert chain[1].usage.prompt_tokens > chain[0].usage.prompt_tokens  # context grows
    summary = program.summary
    assert summary is not None and summary.calls_completed == 9 and summary.calls_failed == 0

    r = redis.Redis.from_url(ep.redis_url, decode_responses=True)
    stored = stored_program_id(r, "acme", program.program_id)
    meta = r.hgetall(keys.program_meta(stored))
    assert meta["tenant"] == "acme" and meta["state"] == "ended" and meta["calls"] == "9"
    calls = {k: json.loads(v) for k, v in r.hgetall(keys.program_calls(stored)).items()}
    assert len(calls) == 9 and all(c["state"] == "done" for c in calls.values())
    assert calls[join.call_id]["parents"] == [o.call_id for o in fan]
    assert {c["worker_id"] for c in calls.values()} <= set(ep.workers)
    assert stored in r.zrange(keys.tenant_programs("acme"), 0, -1)


def test_async_client_streams_deltas(mesh: Mesh) -> None:
    async def go() -> tuple[list[str], ostinato.CallOutput, ostinato.ProgramSummary]:
        async with ostinato.AsyncClient(mesh.endpoints.gateway) as client:
            program = await client.program(program_class="test")
            async with program:
                stream = program.stream(messages=USER, max_tokens=6)
                deltas = [d async for d in stream]
            assert stream.result is not None and program.summary is not None
            return deltas, stream.result, program.summary

    deltas, result, summary = asyncio.run(go())
    assert "".join(deltas) == result.text and len(deltas) > 1
    assert summary.calls_completed == 1


@pytest.mark.parametrize("service", ["gateway", "planner", "worker-0", "worker-1"])
def test_health_serving_and_reflection(mesh: Mesh, service: str) -> None:
    ep = mesh.endpoints
    address = {"gateway": ep.gateway, "planner": ep.planner, **ep.workers}[service]
    expected = {"gateway": "ostinato.v1.Gateway", "planner": "ostinato.v1.Planner"}.get(
        service, "ostinato.v1.Worker")
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for name in ("", expected):
            resp = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        services = ProtoReflectionDescriptorDatabase(channel).get_services()
        assert expected in services and "grpc.health.v1.Health" in services
    # (ostinato/service_env.py: each runs gRPC on the I/O path the mesh chose for it)
    environ = Path(f"/proc/{mesh.child(service).pid}/environ").read_bytes().split(b"\0")
    setting = os.environ.get("GRPC_EXPERIMENTS", GRPC_EXPERIMENTS)  # (an operator's wins)
    assert f"GRPC_EXPERIMENTS={setting}".encode() in environ


def _gateway(mesh: Mesh) -> gateway_pb2_grpc.GatewayStub:
    return gateway_pb2_grpc.GatewayStub(grpc.insecure_channel(mesh.endpoints.gateway))


def _chunks(stub, program_id: str, metadata=(), whole=False, **kwargs):  # type: ignore[no-untyped-def]
    """The call's chunks: Call's, or CallWhole's one (`whole`)."""
    req = gateway_pb2.CallRequest(program_id=program_id, call=call_spec(**kwargs))
    if whole:
        return [stub.CallWhole(req, metadata=metadata, timeout=10)]
    return list(stub.Call(req, metadata=metadata, timeout=10))


_call = _chunks


def _start(stub, metadata=()) -> str:  # type: ignore[no-untyped-def]
    return stub.StartProgram(gateway_pb2.StartProgramRequest(), metadata=metadata, timeout=5).program_id


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unknown program", grpc.StatusCode.NOT_FOUND),
        ("no messages", grpc.StatusCode.INVALID_ARGUMENT),
        ("parents without a program id", grpc.StatusCode.INVALID_ARGUMENT),
        ("oversized prompt", grpc.StatusCode.INVALID_ARGUMENT),
        ("unknown parent", grpc.StatusCode.INVALID_ARGUMENT),
        ("duplicate call id", grpc.StatusCode.ALREADY_EXISTS),
        ("bad api key", grpc.StatusCode.UNAUTHENTICATED),
        ("another tenant's program", grpc.StatusCode.NOT_FOUND),
        ("end unknown program", grpc.StatusCode.NOT_FOUND),
    ],
)
@pytest.mark.parametrize("rpc", ["Call", "CallWhole"])
def test_bad_input_gets_the_right_status(mesh: Mesh, case: str, code: grpc.StatusCode,
                                         rpc: str) -> None:
    stub, _call = _gateway(mesh), functools.partial(_chunks, whole=rpc == "CallWhole")
    acme = (("authorization", "Bearer key-acme"),)
    pid = _start(stub, acme)
    with pytest.raises(grpc.RpcError) as err:
        if case == "unknown program":
            _call(stub, "no-such-program", acme, messages=USER)
        elif case == "no messages":
            _call(stub, pid, acme)
        elif case == "parents without a program id":
            _call(stub, "", acme, messages=USER, parents=["c0"])
        elif case == "oversized prompt":
            _call(stub, pid, acme, prompt="x" * 60_000)
        elif case == "unknown parent":
            _call(stub, pid, acme, messages=USER, parents=["ghost"])
        elif case == "duplicate call id":
            _call(stub, pid, acme, messages=USER, call_id="c1", max_tokens=2)
            _call(stub, pid, acme, messages=USER, call_id="c1", max_tokens=2)
        elif case == "bad api key":
            _call(stub, pid, (("authorization", "Bearer wrong"),), messages=USER)
        elif case == "another tenant's program":
            _call(stub, pid, (("authorization", "Bearer key-globex"),), messages=USER)
        else:
            stub.EndProgram(gateway_pb2.EndProgramRequest(program_id="nope"), metadata=acme,
                            timeout=5)
    assert err.value.code() == code, err.value.details()
    assert err.value.details()  # a clear message, not an empty status


def _ended_with(r: redis.Redis, tenant: str, call_id: str) -> bool:
    """The program holding `call_id` is recorded as ended (written behind the answer: the
    planner's write lands soon after, so the caller polls)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for program_id in r.zrange(keys.tenant_programs(tenant), 0, -1):
            if r.hexists(keys.program_calls(program_id), call_id) and \
                    r.hget(keys.program_meta(program_id), "state") == "ended":
                return True
        time.sleep(0.05)
    return False


def test_a_call_without_a_program_is_a_program_of_its_own(mesh: Mesh) -> None:
    """One gateway RPC: the planner registers the program with the call's admission and
    ends it once the call is done (no StartProgram, no EndProgram), also when the answer
    cache answers it."""
    stub = _gateway(mesh)
    acme = (("authorization", "Bearer key-acme"),)
    r = redis.Redis.from_url(mesh.endpoints.redis_url, decode_responses=True)
    prompt = [{"role": "user", "content": "One call, no program."}]
    for hit in (common_pb2.CACHE_HIT_MISS, common_pb2.CACHE_HIT_EXACT):
        result = _call(stub, "", acme, messages=prompt, max_tokens=3, temperature=0.0)[-1].result
        assert result.text and result.usage.completion_tokens == 3 and result.cache_hit == hit
        assert _ended_with(r, "acme", result.call_id)


def test_sdk_raises_ostinato_error_with_status(mesh: Mesh) -> None:
    with ostinato.Client(mesh.endpoints.gateway) as client:
        program = client.program()
        with pytest.raises(ostinato.OstinatoError) as err:
            program.call(messages=[])
        assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
        assert program.call(messages=USER, max_tokens=2).text  # the program still works
        program.end()


def test_a_late_program_that_asked_for_it_is_refused_with_deadline_exceeded(mesh: Mesh) -> None:
    """reject_when_late under the mesh's default policy (srpt): once the deadline has passed,
    calls are refused with DEADLINE_EXCEEDED and nothing is left running; the program ends."""
    with ostinato.Client(mesh.endpoints.gateway) as client:
        program = client.program(deadline_s=0.001, reject_when_late=True)
        time.sleep(0.01)  # only ensures the deadline is behind us; no race either way
        with pytest.raises(ostinato.DeadlineExceeded, match="past its deadline"):
            program.call(messages=USER, max_tokens=2)
        summary = program.end()
        assert summary.calls_completed == 0
    with ostinato.Client(mesh.endpoints.gateway) as client:  # without it: demoted, not refused
        program = client.program(deadline_s=0.001)
        time.sleep(0.01)
        assert program.call(messages=USER, max_tokens=2).text
        program.end()


def test_cancelled_client_frees_its_worker_slot(mesh: Mesh) -> None:
    """Cancel long calls mid-stream; the budget comes back and later calls still run."""
    stub = _gateway(mesh)
    pid = _start(stub)
    for i in range(10):  # more than the mesh's total budget (2 workers x 4)
        stream = stub.Call(gateway_pb2.CallRequest(program_id=pid, call=_long(f"long{i}")),
                           timeout=30)
        next(iter(stream))  # first token arrived: the call is running on a worker
        stream.cancel()
    out = _call(stub, pid, messages=USER, max_tokens=3)
    assert out[-1].result.usage.completion_tokens == 3
    workers = [worker_pb2_grpc.WorkerStub(grpc.insecure_channel(a)) for a in mesh.endpoints.workers.values()]
    deadline = time.monotonic() + 10
    while True:  # cancellation reaches the workers asynchronously
        stats = [w.Stats(worker_pb2.StatsRequest(), timeout=5) for w in workers]
        if all(s.running == 0 for s in stats) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert all(s.running == 0 and s.simulated for s in stats)
    assert sum(s.failed for s in stats) >= 10  # the cancelled calls ended as not-ok


def test_a_callwhole_its_client_left_ends_on_the_worker(mesh: Mesh) -> None:
    """CallWhole is unary: a client that cancels it while it runs stops its call on the
    worker, as a cancelled Call stream does."""
    stub = _gateway(mesh)
    pid = _start(stub)
    answer = stub.CallWhole.future(gateway_pb2.CallRequest(program_id=pid, call=_long("gone")),
                                   timeout=30)
    deadline = time.monotonic() + 20
    while not sum(_running(mesh)):
        assert time.monotonic() < deadline, "the call never started on a worker"
        time.sleep(0.02)
    answer.cancel()
    while sum(_running(mesh)):  # cancellation reaches the worker asynchronously
        assert time.monotonic() < deadline + 10, "the call still runs on its worker"
        time.sleep(0.05)
    summary = stub.EndProgram(gateway_pb2.EndProgramRequest(program_id=pid), timeout=10).summary
    assert summary.calls_completed == 0 and summary.calls_cancelled == 1


def _running(mesh: Mesh) -> list[int]:
    workers = [worker_pb2_grpc.WorkerStub(grpc.insecure_channel(a))
               for a in mesh.endpoints.workers.values()]
    return [w.Stats(worker_pb2.StatsRequest(), timeout=5).running for w in workers]


def test_a_cancelled_declared_program_stops(mesh: Mesh) -> None:
    """The client cancels RunProgram mid-node: the node's engine request is aborted, its
    program ends, so nothing after it starts (a call into it is NOT_FOUND)."""
    stub = _gateway(mesh)
    nodes = [gateway_pb2.DagNode(id="first", call=_long("first")),
             gateway_pb2.DagNode(id="then", depends_on=["first"],
                                 call=call_spec(prompt="Go on: {{first}}", max_tokens=4))]
    events = stub.RunProgram(gateway_pb2.RunProgramRequest(nodes=nodes), timeout=60)
    program_id = next(e.program_id for e in events if e.HasField("node_delta"))
    events.cancel()
    deadline = time.monotonic() + 20  # (4000 tokens would take far longer)
    while any(_running(mesh)) or _open(stub, program_id):
        assert time.monotonic() < deadline, "the cancelled program still runs"
        time.sleep(0.05)


def _open(stub, program_id: str) -> bool:  # type: ignore[no-untyped-def]
    try:
        _call(stub, program_id, messages=USER, max_tokens=1)
    except grpc.RpcError as exc:
        assert exc.code() == grpc.StatusCode.NOT_FOUND, exc
        return False
    return True


def _long(call_id: str):  # type: ignore[no-untyped-def]
    spec = call_spec(messages=USER, call_id=call_id, max_tokens=4000)
    spec.sampling.ignore_eos = True
    return spec


def test_declared_program_runs_server_side(mesh: Mesh) -> None:
    stub = _gateway(mesh)
    nodes = [
        gateway_pb2.DagNode(id="outline", call=call_spec(prompt="Outline a report.", max_tokens=5)),
        *[gateway_pb2.DagNode(id=f"sec{i}", depends_on=["outline"],
                              call=call_spec(prompt=f"Write section {i} of: {{{{outline}}}}",
                                             max_tokens=5)) for i in range(3)],
        gateway_pb2.DagNode(id="final", depends_on=["sec0", "sec1", "sec2"],
                            call=call_spec(prompt="Merge {{sec0}} | {{sec1}} | {{sec2}}",
                                           max_tokens=5)),
    ]
    events = list(stub.RunProgram(gateway_pb2.RunProgramRequest(nodes=nodes), timeout=30))
    finished = {e.node_finished.node_id: e.node_finished.result for e in events
                if e.HasField("node_finished")}
    assert set(finished) == {"outline", "sec0", "sec1", "sec2", "final"}
    order = [e.node_finished.node_id for e in events if e.HasField("node_finished")]
    assert order[0] == "outline" and order[-1] == "final"
    assert finished["final"].usage.prompt_tokens > finished["outline"].usage.prompt_tokens
    assert events[-1].HasField("program_finished")
    assert events[-1].program_finished.calls_completed == 5
    started = {e.node_started.node_id: e.node_started.worker_id for e in events
               if e.HasField("node_started")}
    assert set(started) == set(finished) and all(started.values())
    for node_id in finished:  # each node starts before its output
        first = next(i for i, e in enumerate(events) if e.HasField("node_started")
                     and e.node_started.node_id == node_id)
        assert all(i > first for i, e in enumerate(events)
                   if e.HasField("node_finished") and e.node_finished.node_id == node_id)


def test_grpc_calls_carry_tools_and_return_tool_calls(mesh: Mesh) -> None:
    """The gRPC API has what the HTTP one has: tools on the call, tool calls in the result,
    and the model's answer in text once the tool's result is in the history."""
    stub = _gateway(mesh)
    params = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    program = stub.StartProgram(gateway_pb2.StartProgramRequest()).program_id
    spec = call_spec(messages=[{"role": "user", "content": "Weather in Oslo?"}], max_tokens=64)
    spec.tools.append(common_pb2.Tool(name="weather", parameters_json=json.dumps(params)))
    chunks = list(stub.Call(gateway_pb2.CallRequest(program_id=program, call=spec), timeout=30))
    result = chunks[-1].result
    assert result.finish_reason == "tool_calls" and result.text == ""
    [tool_call] = result.tool_calls
    assert tool_call.name == "weather" and "city" in json.loads(tool_call.arguments)
    assert all(not c.delta for c in chunks)  # no part of the call streamed as text
    follow = call_spec(messages=[{"role": "user", "content": "Weather in Oslo?"},
                                 {"role": "assistant", "content": ""},
                                 {"role": "tool", "content": "Cloudy, 4 C"}],
                       max_tokens=16, parents=[result.call_id])
    follow.messages[1].tool_calls.append(tool_call)
    follow.messages[2].tool_call_id = tool_call.id
    follow.tools.extend(spec.tools)
    answer = list(stub.Call(gateway_pb2.CallRequest(program_id=program, call=follow), timeout=30))
    assert answer[-1].result.text and not answer[-1].result.tool_calls
    assert answer[-1].result.usage.cached_tokens > 0  # the history is the engine's own prefix
    stub.EndProgram(gateway_pb2.EndProgramRequest(program_id=program))


def test_declared_program_with_a_cycle_is_rejected(mesh: Mesh) -> None:
    stub = _gateway(mesh)
    nodes = [gateway_pb2.DagNode(id="a", depends_on=["b"], call=call_spec(prompt="x")),
             gateway_pb2.DagNode(id="b", depends_on=["a"], call=call_spec(prompt="y"))]
    with pytest.raises(grpc.RpcError) as err:
        list(stub.RunProgram(gateway_pb2.RunProgramRequest(nodes=nodes), timeout=10))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "cycle" in err.value.details()
    hot = call_spec(prompt="y")
    hot.sampling.temperature = 9
    nodes = [gateway_pb2.DagNode(id="a", call=call_spec(prompt="x")),
             gateway_pb2.DagNode(id="b", depends_on=["a"], call=hot)]
    with pytest.raises(grpc.RpcError) as err:  # checked before anything runs, by node
        list(stub.RunProgram(gateway_pb2.RunProgramRequest(nodes=nodes), timeout=10))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith("node 'b': sampling.temperature")


def test_sdk_agent_loop_with_a_real_tool(mesh: Mesh) -> None:
    """A ReAct loop through the Python SDK: the model calls the tool, the tool runs here, the
    model answers once it has the result."""
    seen: list[dict] = []

    def add(a: int, b: int) -> int:
        seen.append({"a": a, "b": b})
        return a + b

    tools = [{"type": "function", "function": {"name": "add", "description": "Adds two integers",
              "parameters": {"type": "object", "properties": {"a": {"type": "integer"},
                             "b": {"type": "integer"}}, "required": ["a", "b"]}}}]
    history: list[dict] = [{"role": "user", "content": "What is 2 + 40?"}]
    with ostinato.Client(mesh.endpoints.gateway) as client, client.program() as program:
        for _ in range(4):
            out = program.call(messages=history, tools=tools, max_tokens=64)
            if not out.tool_calls:
                break
            history.append(out.message())
            for tc in out.tool_calls:
                history.append({"role": "tool", "tool_call_id": tc.id,
                                "content": str(add(**tc.args()))})
    assert seen and out.finish_reason in ("stop", "length") and out.text
    assert isinstance(seen[0]["a"], int) and isinstance(seen[0]["b"], int)
    assert program.summary is not None and program.summary.calls_completed == 2
