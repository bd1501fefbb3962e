"""Tenant quotas on the live mesh: a tenant over its calls per minute is refused at once with
RESOURCE_EXHAUSTED (gRPC, with a retry-after-ms trailer) or 429 with Retry-After (HTTP);
another tenant is untouched."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import grpc
import pytest

import ostinato
from ostinato.mesh import Mesh
from ostinato.sdk_types import call_spec
from ostinato.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc
from tests.integration.test_tenancy import eventually, tenants
from tests.prometheus_text import parse, value

USER = [{"role": "user", "content": "hello"}]


@pytest.fixture
def mesh(auth_mesh: Mesh) -> Mesh:
    """Keys and quotas are checked with auth on, as the mesh ships (tests/conftest.py)."""
    return auth_mesh


def _create(mesh: Mesh, name: str, *limits: str) -> str:
    created = tenants(mesh, "create", name, *limits)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().splitlines()[-1]


def _refused_over_http(mesh: Mesh, key: str, body: dict[str, object]) -> urllib.error.HTTPError:
    """The HTTP error a chat completion of `body` gets, as tenant `key`'s."""
    request = urllib.request.Request(
        f"http://{mesh.endpoints.gateway_http}/v1/chat/completions", data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    return refused.value


def _call(stub: gateway_pb2_grpc.GatewayStub, key: str) -> gateway_pb2.CallChunk:
    md = (("authorization", f"Bearer {key}"),)
    program = stub.StartProgram(gateway_pb2.StartProgramRequest(
        options=common_pb2.ProgramOptions()), metadata=md, timeout=10)
    chunks = list(stub.Call(gateway_pb2.CallRequest(
        program_id=program.program_id, call=call_spec(messages=USER, max_tokens=4)),
        metadata=md, timeout=30))
    return chunks[-1]


def _known(stub: gateway_pb2_grpc.GatewayStub, key: str) -> gateway_pb2.CallChunk:
    """A call once the gateway has reloaded the new tenant (every 2 s)."""
    def attempt() -> gateway_pb2.CallChunk:
        try:
            return _call(stub, key)
        except grpc.RpcError as exc:
            assert exc.code() != grpc.StatusCode.UNAUTHENTICATED, "not reloaded yet"
            raise
    return eventually(attempt)


def test_calls_over_a_tenants_rate_are_refused_with_when_to_retry(mesh: Mesh) -> None:
    key = _create(mesh, "quota-rpm", "--rpm", "2")
    other = _create(mesh, "quota-free")
    with grpc.insecure_channel(mesh.endpoints.gateway) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        assert _known(stub, other).HasField("result")
        first = _known(stub, key)
        assert first.HasField("result")
        assert _call(stub, key).HasField("result")  # the burst: 2 a minute
        with pytest.raises(grpc.RpcError) as refused:
            _call(stub, key)
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "over its quota" in refused.value.details()
        trailers = dict(refused.value.trailing_metadata() or ())
        assert 0 < int(trailers["retry-after-ms"]) <= 30_000
        assert _call(stub, other).HasField("result")  # another tenant is not held back
    with ostinato.Client(mesh.endpoints.gateway, api_key=key) as client, \
            pytest.raises(ostinato.RateLimited) as sdk_refused:
        client.program().call(messages=USER, max_tokens=4)
    assert sdk_refused.value.retry_after_s is not None and 0 < sdk_refused.value.retry_after_s <= 30

    http_refused = _refused_over_http(mesh, key, {"messages": USER, "max_tokens": 4})
    assert http_refused.code == 429
    assert 1 <= int(http_refused.headers["Retry-After"]) <= 30
    assert "x-should-retry" not in http_refused.headers  # a retry after it may fit
    error = json.loads(http_refused.read())["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    # n answers are n calls: never within 2/min
    too_many = _refused_over_http(mesh, key, {"messages": USER, "max_tokens": 4, "n": 3})
    assert too_many.code == 400
    assert json.loads(too_many.read())["error"]["param"] == "n"


def test_a_prompt_larger_than_a_minutes_tokens_is_refused_for_good(mesh: Mesh) -> None:
    key = _create(mesh, "quota-tpm", "--tpm", "5")
    with grpc.insecure_channel(mesh.endpoints.gateway) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)

        def refused() -> None:
            try:
                _call(stub, key)
            except grpc.RpcError as exc:
                assert exc.code() != grpc.StatusCode.UNAUTHENTICATED, "not reloaded yet"
                assert exc.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "tokens per minute" in (exc.details() or "")
                assert "retry-after-ms" not in dict(exc.trailing_metadata() or ())
                return
            raise AssertionError("a prompt over the tenant's tpm was served")

        eventually(refused)
    # and the openai SDK is told not to retry it (HTTP API review 2026-12-05 F4)
    never = _refused_over_http(mesh, key, {"messages": USER, "max_tokens": 4})
    assert never.code == 429 and never.headers["x-should-retry"] == "false"
    assert "Retry-After" not in never.headers


def test_a_tenants_open_programs_are_bounded(mesh: Mesh) -> None:
    key = _create(mesh, "quota-programs", "--max-programs", "1")
    md = (("authorization", f"Bearer {key}"),)
    with grpc.insecure_channel(mesh.endpoints.gateway) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)

        def start() -> str:
            try:
                return str(stub.StartProgram(gateway_pb2.StartProgramRequest(), metadata=md,
                                             timeout=10).program_id)
            except grpc.RpcError as exc:
                assert exc.code() != grpc.StatusCode.UNAUTHENTICATED, "not reloaded yet"
                raise

        def limited() -> None:  # once the gateway has the tenant's record
            first = start()
            try:
                with pytest.raises(grpc.RpcError) as refused:
                    start()
                assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
                assert "programs open" in refused.value.details()
                # when to retry: no time of its own (until a program ends), the load default
                assert dict(refused.value.trailing_metadata() or ())["retry-after-ms"] == "1000"
            finally:
                stub.EndProgram(gateway_pb2.EndProgramRequest(program_id=first), metadata=md,
                                timeout=10)

        eventually(limited)
        second = start()  # the first ended: room again
        stub.EndProgram(gateway_pb2.EndProgramRequest(program_id=second), metadata=md, timeout=10)


def test_conversations_that_nobody_ends_do_not_lock_a_tenant_out(mesh: Mesh) -> None:
    # An OpenAI client never ends the program the gateway opens for its conversation: with
    # --max-programs 1, one-turn chats one after the other are all served, each at once
    # (each counts only while its call runs: the planner has the call's completion report
    # before its answer goes out, so the next request never finds it busy; they were
    # refused in turn while the report lingered ~50 ms after the answer), while a program
    # that the tenant opened and did not end holds the place for good.
    key = _create(mesh, "quota-chats", "--max-programs", "1")

    def chat(n: int) -> int:
        request = urllib.request.Request(
            f"http://{mesh.endpoints.gateway_http}/v1/chat/completions",
            data=json.dumps({"messages": [{"role": "user", "content": f"question {n}"}],
                             "max_tokens": 4}).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            assert exc.code != 401, "not reloaded yet"
            return int(exc.code)

    def first() -> None:
        assert chat(0) == 200
    eventually(first)  # once the gateway has loaded the new key

    assert [chat(n) for n in range(1, 6)] == [200] * 5  # back to back, none refused
    md = (("authorization", f"Bearer {key}"),)
    with grpc.insecure_channel(mesh.endpoints.gateway) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        opened = stub.StartProgram(gateway_pb2.StartProgramRequest(), metadata=md, timeout=10)
        try:
            assert chat(6) == 429
        finally:
            stub.EndProgram(gateway_pb2.EndProgramRequest(program_id=opened.program_id),
                            metadata=md, timeout=10)
    assert chat(7) == 200


def _post(mesh: Mesh, key: str, body: dict[str, object]) -> int:
    request = urllib.request.Request(
        f"http://{mesh.endpoints.gateway_http}/v1/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


LONG = [{"role": "user", "content": "lighthouse " * 200}]  # ~400 tokens (sim tokenizer)
# valid JSON Schema that no value meets: the engine refuses it (400), after admission
IMPOSSIBLE = {"messages": LONG, "max_tokens": 4, "response_format": {
    "type": "json_schema", "json_schema": {"name": "n", "schema": {
        "allOf": [{"type": "string"}, {"type": "integer"}]}}}}


@pytest.mark.parametrize(("name", "limits", "refusals", "then"), [
    # the tokens come back: ~400-token prompts at tpm 1000 are each a 400, never a 429, and a
    # served call follows; the requests still count against rpm (the 4th call is over it)
    ("quota-refund", ("--tpm", "1000", "--rpm", "4"), [400, 400], [200, 429]),
    # a tpm alone: the tokens are the only bound on how fast refused calls may come, and stay
    ("quota-tpm-only", ("--tpm", "1000"), [400, 429], []),
])
def test_calls_the_engine_refuses_as_invalid(mesh: Mesh, name: str, limits: tuple[str, ...],
                                             refusals: list[int], then: list[int]) -> None:
    key = _create(mesh, name, *limits)

    def refused() -> None:
        status = _post(mesh, key, IMPOSSIBLE)
        assert status != 401, "not reloaded yet"
        assert status == 400

    eventually(refused)
    assert [_post(mesh, key, IMPOSSIBLE) for _ in refusals] == refusals
    served = [{"messages": LONG, "max_tokens": 4}, {"messages": USER, "max_tokens": 4}]
    assert [_post(mesh, key, body) for body in served[:len(then)]] == then


def _chat(mesh: Mesh, key: str, messages: list[dict[str, str]]) -> dict:
    request = urllib.request.Request(
        f"http://{mesh.endpoints.gateway_http}/v1/chat/completions",
        data=json.dumps({"messages": messages, "max_tokens": 4}).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_a_conversation_continued_after_its_program_ended_is_charged_once(mesh: Mesh) -> None:
    """The gateway finds the conversation's program ended and runs the request in a new one:
    one request, one call of the tenant's rpm (it took two: the review's finding)."""
    key = _create(mesh, "quota-continued", "--rpm", "3")

    def first() -> dict:
        try:
            return _chat(mesh, key, USER)
        except urllib.error.HTTPError as exc:
            assert exc.code != 401, "not reloaded yet"
            raise

    answer = eventually(first)
    program = answer["ostinato"]["program_id"]
    ended = urllib.request.Request(
        f"http://{mesh.endpoints.gateway_http}/v1/programs/{program}/end", data=b"",
        headers={"Authorization": f"Bearer {key}"})
    urllib.request.urlopen(ended, timeout=30).read()
    again = _chat(mesh, key, [*USER, {"role": "assistant",
                                      "content": answer["choices"][0]["message"]["content"]},
                              {"role": "user", "content": "and then?"}])
    assert again["ostinato"]["program_id"] == program  # the conversation's, registered again
    assert _post(mesh, key, {"messages": USER, "max_tokens": 4}) == 200  # the third of 3
    assert _post(mesh, key, {"messages": USER, "max_tokens": 4}) == 429


def test_a_stalled_redis_serves_calls_unmetered_and_counts_them(mesh: Mesh) -> None:
    """Redis paused (its connections open, its commands timing out): a tenant with quotas is
    served unmetered, over gRPC and HTTP, and the gateway counts each such call."""
    key = _create(mesh, "quota-stall", "--rpm", "1000")
    metrics = f"http://{mesh.endpoints.metrics['gateway']}/metrics"

    def unmetered() -> float:
        with urllib.request.urlopen(metrics, timeout=10) as resp:
            return value(parse(resp.read().decode()), "ostinato_quota_unmetered_calls_total")

    with grpc.insecure_channel(mesh.endpoints.gateway) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        assert _known(stub, key).HasField("result")  # the gateway knows the tenant
        before = unmetered()
        with mesh.redis_paused():
            outs = [_call(stub, key) for _ in range(2)]
            with urllib.request.urlopen(urllib.request.Request(
                    f"http://{mesh.endpoints.gateway_http}/v1/chat/completions",
                    data=json.dumps({"messages": USER, "max_tokens": 4}).encode(),
                    headers={"Authorization": f"Bearer {key}",
                             "Content-Type": "application/json"}), timeout=30) as resp:
                answered = json.loads(resp.read())
            assert unmetered() - before == 3
        assert all(o.HasField("result") for o in outs) and answered["choices"][0]["message"]
