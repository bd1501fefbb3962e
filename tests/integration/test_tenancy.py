"""Tenancy data in Redis drives the running gateway: keys added or revoked with
`ostinato tenants` take effect without a restart."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

import grpc
import pytest

import ostinato
from ostinato.mesh import Mesh


@pytest.fixture
def mesh(auth_mesh: Mesh) -> Mesh:
    """Keys and quotas are checked with auth on, as the mesh ships (tests/conftest.py)."""
    return auth_mesh


def tenants(mesh: Mesh, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ostinato.cli", "tenants", "--redis-url",
                           mesh.endpoints.redis_url, *args],
                          capture_output=True, text=True, timeout=30)


def call_as(mesh: Mesh, key: str) -> ostinato.CallOutput:
    with ostinato.Client(mesh.endpoints.gateway, api_key=key) as client, client.program() as p:
        return p.call(messages=[{"role": "user", "content": "hello"}], max_tokens=4)


def created_key(mesh: Mesh, *args: str) -> str:
    """`ostinato tenants create ARGS`: the key it prints (its last line)."""
    created = tenants(mesh, "create", *args)
    assert created.returncode == 0, created.stderr
    return created.stdout.strip().splitlines()[-1]


def recreated_key(mesh: Mesh, tenant: str) -> str:
    """Revokes `tenant` and creates it again under the same name: the new one's key, once
    the gateway takes it."""
    assert tenants(mesh, "revoke", tenant).returncode == 0
    key = created_key(mesh, tenant)
    eventually(lambda: call_as(mesh, key))
    return key


def eventually(check, timeout_s: float = 8.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return check()
        except (ostinato.OstinatoError, AssertionError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_keys_added_and_revoked_in_redis_take_effect(mesh: Mesh) -> None:
    key = "sk-initech-0123456789"
    with pytest.raises(ostinato.OstinatoError) as refused:
        call_as(mesh, key)
    assert refused.value.code == grpc.StatusCode.UNAUTHENTICATED
    ghost = tenants(mesh, "add-key", "initech", key)  # no such tenant yet: refused, not made
    assert ghost.returncode == 2 and "no tenant 'initech'" in ghost.stderr
    assert tenants(mesh, "create", "initech").returncode == 0
    added = tenants(mesh, "add-key", "initech", key)
    assert added.returncode == 0, added.stderr
    out = eventually(lambda: call_as(mesh, key))
    assert out.text
    listing = tenants(mesh, "list")
    assert "tenant initech: 2 key(s)" in listing.stdout and key not in listing.stdout
    assert "tenant acme" in listing.stdout  # configured keys were written to Redis at start
    assert tenants(mesh, "revoke-key", key).stdout.strip() == "revoked"
    again = tenants(mesh, "revoke-key", key)
    assert again.returncode == 2 and "no such key" in again.stderr

    def refused_again() -> None:
        try:
            call_as(mesh, key)
        except ostinato.OstinatoError as exc:
            assert exc.code == grpc.StatusCode.UNAUTHENTICATED
            return
        raise AssertionError("a revoked key still works")

    eventually(refused_again)


def test_bad_tenancy_input_is_refused_by_the_cli(mesh: Mesh) -> None:
    bad = tenants(mesh, "add-key", "no spaces allowed", "sk-whatever-123")
    assert bad.returncode == 2 and "tenant names" in bad.stderr
    short = tenants(mesh, "add-key", "ok", "short")
    assert short.returncode == 2 and "at least 8" in short.stderr
    url = subprocess.run([sys.executable, "-m", "ostinato.cli", "tenants", "--redis-url",
                          "http://x", "list"], capture_output=True, text=True, timeout=30)
    assert url.returncode == 2 and "--redis-url 'http://x'" in url.stderr
    assert "Traceback" not in url.stderr


def test_created_tenant_key_works_and_revoking_the_tenant_locks_it_out(mesh: Mesh) -> None:
    key = created_key(mesh, "hooli", "--weight", "2", "--rpm", "600")
    assert key.startswith("ost-")
    assert eventually(lambda: call_as(mesh, key)).text
    listing = tenants(mesh, "list").stdout
    assert "tenant hooli: 1 key(s), weight 2, rpm 600, tpm unlimited" in listing and key not in listing
    again = tenants(mesh, "create", "hooli")
    assert again.returncode == 2 and "exists" in again.stderr
    updated = tenants(mesh, "update", "hooli", "--tpm", "5000")
    assert updated.returncode == 0 and "tpm 5000" in updated.stdout
    assert tenants(mesh, "update", "hooli").returncode == 2  # nothing to update
    assert tenants(mesh, "revoke", "hooli").stdout.strip() == "tenant hooli revoked (1 key(s) removed)"

    def refused() -> None:
        try:
            call_as(mesh, key)
        except ostinato.OstinatoError as exc:
            assert exc.code == grpc.StatusCode.UNAUTHENTICATED
            return
        raise AssertionError("a revoked tenant's key still works")

    eventually(refused)


def test_another_tenants_program_is_indistinguishable_from_a_missing_one(mesh: Mesh) -> None:
    """Calling into, ending or attaching (HTTP X-Ostinato-Program) to another tenant's
    program: NOT_FOUND with the message a missing program gets."""
    import json
    import urllib.error
    import urllib.request

    from ostinato.sdk_types import call_spec
    from ostinato.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

    acme, globex = (("authorization", "Bearer key-acme"),), (("authorization", "Bearer key-globex"),)
    with grpc.insecure_channel(mesh.endpoints.gateway) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        pid = stub.StartProgram(gateway_pb2.StartProgramRequest(
            options=common_pb2.ProgramOptions()), metadata=acme, timeout=10).program_id
        missing = "0" * len(pid)

        def refusal(program_id: str, end: bool) -> tuple[grpc.StatusCode, str]:
            with pytest.raises(grpc.RpcError) as err:
                if end:
                    stub.EndProgram(gateway_pb2.EndProgramRequest(program_id=program_id),
                                    metadata=globex, timeout=10)
                else:
                    list(stub.Call(gateway_pb2.CallRequest(program_id=program_id, call=call_spec(
                        messages=[{"role": "user", "content": "hi"}], max_tokens=2)),
                        metadata=globex, timeout=10))
            return err.value.code(), (err.value.details() or "").replace(program_id, "ID")

        for end in (False, True):
            assert refusal(pid, end) == refusal(missing, end)
            assert refusal(pid, end)[0] == grpc.StatusCode.NOT_FOUND

        def attach(program_id: str) -> tuple[int, str]:
            request = urllib.request.Request(
                f"http://{mesh.endpoints.gateway_http}/v1/chat/completions",
                data=json.dumps({"messages": [{"role": "user", "content": "hi"}],
                                 "max_tokens": 2}).encode(),
                headers={"Authorization": "Bearer key-globex", "X-Ostinato-Program": program_id,
                         "Content-Type": "application/json"})
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(request, timeout=10)
            return err.value.code, err.value.read().decode().replace(program_id, "ID")

        assert attach(pid) == attach(missing) and attach(pid)[0] == 404
        # naming it as the mesh does (TENANT/ID) is refused as a malformed id: no way in
        assert attach(f"acme/{pid}")[0] == 400
        for end in (False, True):
            assert refusal(f"acme/{pid}", end)[0] == grpc.StatusCode.INVALID_ARGUMENT
        # acme's program is untouched: it still runs and ends for its owner
        stub.EndProgram(gateway_pb2.EndProgramRequest(program_id=pid), metadata=acme, timeout=10)


def test_two_tenants_may_name_a_program_alike_and_each_sees_only_its_own(mesh: Mesh) -> None:
    """A program id is the client's to choose: another tenant's program of the same id is
    neither refused (that would tell the caller it exists) nor shared. Each tenant calls
    into its own, and each summary counts its own calls only."""
    from ostinato.sdk_types import call_spec
    from ostinato.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

    acme, globex = (("authorization", "Bearer key-acme"),), (("authorization", "Bearer key-globex"),)
    with grpc.insecure_channel(mesh.endpoints.gateway) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        for who in (acme, globex):
            started = stub.StartProgram(gateway_pb2.StartProgramRequest(
                options=common_pb2.ProgramOptions(program_id="shared-name")),
                metadata=who, timeout=10)
            assert started.program_id == "shared-name"
        for who, calls in ((acme, 2), (globex, 1)):
            for _ in range(calls):
                chunks = list(stub.Call(gateway_pb2.CallRequest(program_id="shared-name", call=call_spec(
                    messages=[{"role": "user", "content": "hi"}], max_tokens=2)),
                    metadata=who, timeout=10))
                assert chunks[-1].result.finish_reason
        summaries = {who[0][1]: stub.EndProgram(gateway_pb2.EndProgramRequest(
            program_id="shared-name"), metadata=who, timeout=10).summary
            for who in (acme, globex)}
    assert [(s.program_id, s.tenant, s.calls_completed) for s in summaries.values()] == [
        ("shared-name", "acme", 2), ("shared-name", "globex", 1)]


def test_a_tenant_created_again_starts_with_none_of_the_old_ones_open_programs(mesh: Mesh) -> None:
    """Security review 2026-12-05 F3 (leftover): the planner counted the revoked tenant's
    open programs against the new one's max_programs until they expired."""
    old_key = created_key(mesh, "vandelay", "--max-programs", "1")

    def start(key: str, program_id: str = "p-open") -> str:  # left open
        with ostinato.Client(mesh.endpoints.gateway, api_key=key) as client:
            return client.program(program_id=program_id).program_id

    assert eventually(lambda: start(old_key)) == "p-open"  # open, never ended: its only one
    with pytest.raises(ostinato.RateLimited, match="limit"):
        start(old_key, "p-second")
    assert tenants(mesh, "revoke", "vandelay").returncode == 0
    new_key = created_key(mesh, "vandelay", "--max-programs", "1")
    assert eventually(lambda: start(new_key)) == "p-open"  # its own program of that id
    with pytest.raises(ostinato.RateLimited, match="limit"):
        start(new_key, "p-second")  # a second one: its own limit still holds
    tenants(mesh, "revoke", "vandelay")


def test_an_answer_stored_after_its_tenant_was_revoked_is_not_served_to_a_new_one(mesh: Mesh) -> None:
    """Cache review 2026-12-05 F3: a call still running when its tenant was revoked stored
    its answer after the revoke's sweep, under the tenant's name; a tenant created again
    under that name (another customer) was served it from the exact cache, and shown the
    old one's cache statistics (F6). The caches are keyed by the tenant's namespace now,
    its generation with it."""
    from ostinato.sdk_types import call_spec
    from ostinato.v1 import common_pb2, gateway_pb2, gateway_pb2_grpc

    long_call = gateway_pb2.CallRequest(call=call_spec(
        messages=[{"role": "user", "content": "Tell me the whole story of the company."}],
        max_tokens=400, temperature=0.0, ignore_eos=True))
    old_key = created_key(mesh, "kramerica")
    eventually(lambda: call_as(mesh, old_key))
    with grpc.insecure_channel(mesh.endpoints.gateway) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        running = stub.Call(long_call, metadata=(("authorization", f"Bearer {old_key}"),),
                            timeout=60)
        next(running)  # admitted and running
        new_key = recreated_key(mesh, "kramerica")
        with contextlib.suppress(grpc.RpcError):  # its end is not the point here
            for _ in running:
                pass
        def ask_new() -> gateway_pb2.CallChunk:
            return list(stub.Call(long_call, timeout=60,
                                  metadata=(("authorization", f"Bearer {new_key}"),)))[-1]

        # (review F6) nor is it shown the old tenant's cache statistics
        fresh = stub.CacheStats(gateway_pb2.CacheStatsRequest(), timeout=10,
                                metadata=(("authorization", f"Bearer {new_key}"),))
        # (redis_error is the gateway's, no tenant's: an earlier test may have caused one)
        own = {k: v for k, v in fresh.counts.items() if k != "redis_error"}
        assert own == {} and fresh.index_entries == 0
        first, second = ask_new(), ask_new()
    assert first.result.finish_reason == "length"
    assert first.result.cache_hit == common_pb2.CACHE_HIT_MISS
    assert second.result.cache_hit == common_pb2.CACHE_HIT_EXACT  # positive control
    tenants(mesh, "revoke", "kramerica")


def test_a_response_stored_after_its_tenant_was_revoked_is_not_shown_to_a_new_one(
        mesh: Mesh) -> None:
    """Security review 2026-12-06: stored responses and conversations were keyed by the
    tenant's name; a response still running when its tenant was revoked was stored after
    the revoke's sweep, and a tenant created again under the name read it (its input, the
    old customer's text). They are keyed by the tenant's namespace now, as the caches."""
    import openai

    def client(key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"http://{mesh.endpoints.gateway_http}/v1", api_key=key,
                             max_retries=0)

    old_key = created_key(mesh, "pendant")
    eventually(lambda: call_as(mesh, old_key))
    with client(old_key) as old:
        events = old.responses.create(model="sim/llama-3.1-8b", input="OLD TENANT SECRET",
                                      max_output_tokens=400, stream=True,
                                      extra_body={"ignore_eos": True})
        response_id = next(iter(events)).response.id  # type: ignore[union-attr]
        new_key = recreated_key(mesh, "pendant")
        with contextlib.suppress(openai.OpenAIError):  # its end is not the point here
            for _ in events:
                pass
    with client(new_key) as new:
        with pytest.raises(openai.NotFoundError):
            new.responses.retrieve(response_id)
        with pytest.raises(openai.NotFoundError):
            new.responses.input_items.list(response_id)
        own = new.responses.create(model="sim/llama-3.1-8b", input="hello", max_output_tokens=4)
        assert new.responses.retrieve(own.id).id == own.id  # positive control
    tenants(mesh, "revoke", "pendant")
