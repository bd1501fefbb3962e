"""Hypothesis over the public gRPC API of a live mesh (real gateway, planner, worker, sim
engine and Redis on loopback, through the generated stubs): odd, huge, empty and missing
fields, odd numbers, malformed wire bytes, deep, wide and broken DAGs. The gateway answers
every request with a documented status (never INTERNAL or UNKNOWN), keeps serving, and
nothing is left open, queued or running at the planner.

Bounded and deterministic: fixed max_examples, derandomize=True, no example database."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ostinato.mesh import Mesh
from ostinato.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.fuzz.conftest import FUZZ_KEY, assert_nothing_left
from tests.fuzz.proto_strategies import messages, prompt_text, text

AUTH = (("authorization", f"Bearer {FUZZ_KEY}"),)
TIMEOUT_S = 20.0
NEVER = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DEADLINE_EXCEEDED,
         grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNIMPLEMENTED,
         grpc.StatusCode.DATA_LOSS}
FUZZ = settings(max_examples=40, derandomize=True, database=None, deadline=None,
                suppress_health_check=list(HealthCheck), print_blob=True)


@pytest.fixture(scope="module")
def channel(fuzz_mesh: Mesh) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(fuzz_mesh.endpoints.gateway, options=[
            ("grpc.max_send_message_length", 64 * 1024 * 1024)]) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> gateway_pb2_grpc.GatewayStub:
    return gateway_pb2_grpc.GatewayStub(channel)


def _status(run) -> grpc.StatusCode:  # type: ignore[no-untyped-def]
    """Runs an RPC to its end; its status (OK when it succeeded)."""
    try:
        run()
    except grpc.RpcError as exc:
        code = exc.code()  # type: ignore[attr-defined]
        assert code not in NEVER, f"{code}: {exc.details()}"  # type: ignore[attr-defined]
        assert exc.details(), f"{code} without a message"  # type: ignore[attr-defined]
        return code
    return grpc.StatusCode.OK


def _still_serving(stub: gateway_pb2_grpc.GatewayStub, mesh: Mesh) -> None:
    started = stub.StartProgram(gateway_pb2.StartProgramRequest(), metadata=AUTH, timeout=TIMEOUT_S)
    call = common_pb2.CallSpec(messages=[common_pb2.Message(role="user", content="still there?")])
    chunks = list(stub.Call(gateway_pb2.CallRequest(program_id=started.program_id, call=call),
                            metadata=AUTH, timeout=TIMEOUT_S))
    assert chunks[-1].result.text
    stub.EndProgram(gateway_pb2.EndProgramRequest(program_id=started.program_id), metadata=AUTH,
                    timeout=TIMEOUT_S)
    assert_nothing_left(mesh)


def _calls() -> st.SearchStrategy[common_pb2.CallSpec]:
    message = messages(common_pb2.Message.DESCRIPTOR, content=prompt_text(),
                       role=st.sampled_from(["user", "system", "assistant", "tool", "", "x"]))
    anything = messages(common_pb2.CallSpec.DESCRIPTOR, prompt=st.one_of(st.just(""), prompt_text()),
                        messages=st.lists(message, max_size=4),
                        model=st.sampled_from(["", "", "sim/llama-3.1-8b", "gpt-4", "\x00"]))
    plausible = st.builds(  # odd text in a call that is otherwise valid: it runs
        lambda text, tokens, temperature: common_pb2.CallSpec(
            messages=[common_pb2.Message(role="user", content=text)],
            sampling=common_pb2.SamplingParams(max_new_tokens=tokens, temperature=temperature)),
        prompt_text(), st.integers(1, 8), st.sampled_from([0.0, 0.5, 2.0]))
    structured = st.builds(  # a schema nested shallow to past every bound: runs, or refused
        lambda depth, where: _with_schema(depth, where),
        st.sampled_from([1, 8, 31, 32, 33, 200, 2000]), st.sampled_from(["tool", "format"]))
    return st.one_of(anything, plausible, structured)


def _with_schema(depth: int, where: str) -> common_pb2.CallSpec:
    """`depth` object schemas nested in one (2 x depth + 1 JSON levels)."""
    text = '{"type": "object", "properties": {"a": ' * depth + '{"type": "string"}' + "}}" * depth
    call = common_pb2.CallSpec(messages=[common_pb2.Message(role="user", content="fill it")],
                               sampling=common_pb2.SamplingParams(max_new_tokens=4))
    if where == "tool":
        call.tools.add(name="deep", parameters_json=text)
    else:
        call.response_format.type = common_pb2.ResponseFormatType.RESPONSE_FORMAT_TYPE_JSON_SCHEMA
        call.response_format.schema_json = text
    return call


def test_start_and_end_program(stub: gateway_pb2_grpc.GatewayStub, fuzz_mesh: Mesh) -> None:
    @FUZZ
    @given(options=messages(common_pb2.ProgramOptions.DESCRIPTOR), end_id=text())
    def check(options: common_pb2.ProgramOptions, end_id: str) -> None:
        started: list[str] = []

        def start() -> None:
            resp = stub.StartProgram(gateway_pb2.StartProgramRequest(options=options),
                                     metadata=AUTH, timeout=TIMEOUT_S)
            started.append(resp.program_id)

        _status(start)
        for program_id in started:
            stub.EndProgram(gateway_pb2.EndProgramRequest(program_id=program_id), metadata=AUTH,
                            timeout=TIMEOUT_S)
        # an unknown id: NOT_FOUND; one ended before: its summary again (OK)
        assert _status(lambda: stub.EndProgram(gateway_pb2.EndProgramRequest(
            program_id=end_id), metadata=AUTH, timeout=TIMEOUT_S)) in (
            grpc.StatusCode.OK, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)

    check()
    _still_serving(stub, fuzz_mesh)


def test_calls(stub: gateway_pb2_grpc.GatewayStub, fuzz_mesh: Mesh) -> None:
    program = stub.StartProgram(gateway_pb2.StartProgramRequest(), metadata=AUTH,
                                timeout=TIMEOUT_S).program_id

    @FUZZ
    @given(call=_calls(), program_id=st.one_of(st.just(program), st.just(program), text()),
           rpc=st.sampled_from(["Call", "Call whole", "CallWhole"]))
    def check(call: common_pb2.CallSpec, program_id: str, rpc: str) -> None:
        request = gateway_pb2.CallRequest(program_id=program_id, call=call,
                                          whole=rpc == "Call whole")
        if rpc == "CallWhole":  # the unary form: one answer
            _status(lambda: stub.CallWhole(request, metadata=AUTH, timeout=TIMEOUT_S))
        else:
            _status(lambda: list(stub.Call(request, metadata=AUTH, timeout=TIMEOUT_S)))

    try:
        check()
    finally:
        stub.EndProgram(gateway_pb2.EndProgramRequest(program_id=program), metadata=AUTH,
                        timeout=TIMEOUT_S)
    _still_serving(stub, fuzz_mesh)


@pytest.mark.parametrize(("depth", "code"), [
    (31, grpc.StatusCode.OK), (32, grpc.StatusCode.INVALID_ARGUMENT),
    (2000, grpc.StatusCode.INVALID_ARGUMENT),  # the validator's recursion: was UNKNOWN
])
@pytest.mark.parametrize("where", ["tool", "format"])
def test_schema_nesting_bound(stub: gateway_pb2_grpc.GatewayStub, depth: int, where: str,
                              code: grpc.StatusCode) -> None:
    got: list[gateway_pb2.CallChunk] = []
    assert _status(lambda: got.extend(stub.Call(gateway_pb2.CallRequest(
        call=_with_schema(depth, where)), metadata=AUTH, timeout=TIMEOUT_S))) == code
    if code == grpc.StatusCode.OK:
        assert got[-1].HasField("result")


def _node(node_id: str, *deps: str, temperature: float | None = None) -> gateway_pb2.DagNode:
    call = common_pb2.CallSpec(prompt=f"step {node_id}")
    if temperature is not None:
        call.sampling.temperature = temperature
    return gateway_pb2.DagNode(id=node_id, depends_on=list(deps), call=call)


def _bad_last(nodes: list[gateway_pb2.DagNode]) -> list[gateway_pb2.DagNode]:
    """A large DAG whose last node is invalid: refused before any of it runs."""
    nodes[-1].call.sampling.temperature = 9.0
    return nodes


@st.composite
def _dags(draw: st.DrawFn) -> list[gateway_pb2.DagNode]:
    n = draw(st.sampled_from([1, 2, 3, 50, 999, 1024, 1025, 3000]))
    shape = draw(st.sampled_from(["chain", "chain_reversed", "wide", "cycle", "self", "missing", "duplicate",
                                  "empty_id", "template", "fuzzed"]))
    if shape == "fuzzed":
        return draw(st.lists(messages(gateway_pb2.DagNode.DESCRIPTOR, max_depth=2), max_size=4))
    ids = [f"n{i}" for i in range(n)]
    if shape in ("chain", "chain_reversed"):
        nodes = [_node(ids[0]), *(_node(i, p) for p, i in itertools.pairwise(ids))]
        if shape == "chain_reversed":  # the deepest walk for the dependency check
            nodes.reverse()
    else:
        nodes = [_node(i) for i in ids]
    if shape == "cycle":
        nodes[0].depends_on.append(ids[-1])
        if n > 1:
            nodes[-1].depends_on.append(ids[0])
    elif shape == "self":
        nodes[-1].depends_on.append(ids[-1])
    elif shape == "missing":
        nodes[-1].depends_on.append("nowhere")
    elif shape == "duplicate":
        nodes.append(_node(ids[0]))
    elif shape == "empty_id":
        nodes.append(_node(""))
    elif shape == "template":
        nodes[-1].call.prompt = "use {{" + draw(st.sampled_from([*ids, "other"])) + "}}"
    if n > 3 or draw(st.booleans()):
        _bad_last(nodes if shape != "chain_reversed" else nodes[::-1])
    return nodes


def test_run_program(stub: gateway_pb2_grpc.GatewayStub, fuzz_mesh: Mesh) -> None:
    @FUZZ
    @given(nodes=_dags(), options=messages(common_pb2.ProgramOptions.DESCRIPTOR, max_depth=1))
    def check(nodes: list[gateway_pb2.DagNode], options: common_pb2.ProgramOptions) -> None:
        options.ClearField("program_id")  # a fresh program each time (an id reused: ALREADY_EXISTS)
        _status(lambda: list(stub.RunProgram(gateway_pb2.RunProgramRequest(
            options=options, nodes=nodes), metadata=AUTH, timeout=TIMEOUT_S)))

    check()
    events = list(stub.RunProgram(gateway_pb2.RunProgramRequest(nodes=[
        _node("a"), _node("b"), _node("c", "a", "b")]), metadata=AUTH, timeout=TIMEOUT_S))
    assert events[-1].HasField("program_finished")
    _still_serving(stub, fuzz_mesh)


_METHODS = ["StartProgram", "CallWhole", "EndProgram", "CacheStats"]
_STREAMS = ["Call", "RunProgram"]


def _wire_garbage() -> st.SearchStrategy[bytes]:
    """Bytes that are not a valid request: random bytes, and string fields (1: program id or
    options, 2: the call) holding invalid UTF-8 or UTF-16 surrogates encoded as UTF-8."""
    bad_utf8 = st.sampled_from([b"\xff\xfe", b"\xed\xa0\x80", b"\xc0\x80", b"a\x80b",
                                b"\xf4\x90\x80\x80"])
    string_field = bad_utf8.map(lambda b: b"\x0a" + bytes([len(b)]) + b)
    nested = bad_utf8.map(lambda b: b"\x12" + bytes([len(b) + 2]) + b"\x2a" + bytes([len(b)]) + b)
    return st.one_of(st.binary(min_size=1, max_size=64), string_field, nested,
                     st.just(b"\x0a\xff\xff\xff\xff\x0f"))


def test_malformed_wire_bytes(channel: grpc.Channel, stub: gateway_pb2_grpc.GatewayStub,
                              fuzz_mesh: Mesh) -> None:
    @FUZZ
    @given(method=st.sampled_from(_METHODS + _STREAMS), payload=_wire_garbage())
    def check(method: str, payload: bytes) -> None:
        path = f"/ostinato.v1.Gateway/{method}"
        identity = {"request_serializer": lambda b: b, "response_deserializer": lambda b: b}
        if method in _STREAMS:
            rpc = channel.unary_stream(path, **identity)
            _status(lambda: list(rpc(payload, metadata=AUTH, timeout=TIMEOUT_S)))
        else:
            rpc1 = channel.unary_unary(path, **identity)
            replies: list[bytes] = []
            _status(lambda: replies.append(rpc1(payload, metadata=AUTH, timeout=TIMEOUT_S)))
            if method == "StartProgram" and replies:  # the bytes parsed as a request after all
                started = gateway_pb2.StartProgramResponse.FromString(replies[0])
                stub.EndProgram(gateway_pb2.EndProgramRequest(program_id=started.program_id),
                                metadata=AUTH, timeout=TIMEOUT_S)

    check()
    _still_serving(stub, fuzz_mesh)
