"""Every service's /metrics on the real mesh: scraped before and after calls made through
the SDK, the counters and histogram counts move by what the calls did."""

from __future__ import annotations

import urllib.request
import uuid

import grpc
import pytest

import ostinato
from ostinato.mesh import Mesh
from tests.integration.test_tenancy import eventually
from tests.prometheus_text import Samples, parse, value

SERVICES = {"gateway", "planner", "worker-0", "worker-1", "engine-0", "engine-1"}


def scrape(address: str) -> Samples:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain")
        return parse(resp.read().decode())


def scrape_all(mesh: Mesh) -> dict[str, Samples]:
    return {name: scrape(address) for name, address in mesh.endpoints.metrics.items()}


def settled(mesh: Mesh) -> dict[str, Samples]:
    """Every service scraped once no call of an earlier test is running at the planner (an
    implicit program's completion report is batched, and may land after its test ended)."""
    def idle() -> dict[str, Samples]:
        samples = scrape_all(mesh)
        running = sum(v for (name, _), v in samples["planner"].items()
                      if name == "ostinato_planner_running_calls")
        assert running == 0, f"{running} calls still running"
        return samples
    return eventually(idle)


class Moved:
    """How far a sample moved between two scrapes of every service."""

    def __init__(self, before: dict[str, Samples], after: dict[str, Samples]) -> None:
        self.before, self.after = before, after

    def __call__(self, services: str, name: str, **labels: str) -> float:
        """Summed over the services whose name starts with `services`."""
        return sum(value(self.after[s], name, **labels) - value(self.before[s], name, **labels)
                   for s in self.after if s.startswith(services))


def test_every_service_is_scraped_and_its_counters_move_as_calls_are_made(mesh: Mesh) -> None:
    assert set(mesh.endpoints.metrics) == SERVICES
    before = settled(mesh)
    tag = uuid.uuid4().hex  # fresh prompts: no answer-cache hits
    with ostinato.Client(mesh.endpoints.gateway, api_key="key-globex") as client, \
            client.program() as program:
        outs = [program.call(messages=[{"role": "user", "content": f"{tag} step {i}"}],
                             max_tokens=6, temperature=0.0) for i in range(2)]
        # streamed (its engine request too): the others, short and taken whole, are
        # answered by the engine at once, which has no time to first token
        streamed = program.stream(messages=[{"role": "user", "content": f"{tag} step 2"}],
                                  max_tokens=6, temperature=0.0)
        assert "".join(streamed) == streamed.text and streamed.result is not None
        outs.append(streamed.result)
        with pytest.raises(ostinato.OstinatoError) as err:  # the planner refuses it
            program.call(messages=[{"role": "user", "content": tag}], parents=["no-such"])
        assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
        with pytest.raises(ostinato.OstinatoError) as err:  # the gateway refuses it
            program.call(messages=[])
        assert err.value.code is grpc.StatusCode.INVALID_ARGUMENT
    def counted() -> Moved:  # the program ended: every report is in at the planner; a
        # worker counts its call as it finishes its stream, which may be just after (failed
        # once in CI: 2 of 3)
        moved = Moved(before, scrape_all(mesh))
        assert moved("worker-", "ostinato_worker_calls_total", outcome="ok") == 3
        return moved

    moved = eventually(counted)
    prompt = sum(o.usage.prompt_tokens for o in outs)
    completion = sum(o.usage.completion_tokens for o in outs)
    cached = sum(o.usage.cached_tokens for o in outs)
    tenant = {"tenant": "globex"}

    # gateway: calls by outcome, their durations and tokens, the program
    assert moved("gateway", "ostinato_calls_total", outcome="ok", **tenant) == 3
    assert moved("gateway", "ostinato_calls_total", outcome="INVALID_ARGUMENT", **tenant) == 2
    assert moved("gateway", "ostinato_call_duration_seconds_count", cache="miss", **tenant) == 3
    assert moved("gateway", "gen_ai_client_operation_duration_seconds_count",
                 gen_ai_operation_name="chat", error_type="") == 3
    assert moved("gateway", "gen_ai_client_token_usage_sum", gen_ai_token_type="output") == completion
    assert moved("gateway", "ostinato_tenant_tokens_total", type="input", **tenant) == prompt
    assert moved("gateway", "ostinato_tenant_tokens_total", type="output", **tenant) == completion
    assert moved("gateway", "ostinato_tenant_tokens_total", type="cached", **tenant) == cached
    assert moved("gateway", "ostinato_program_duration_seconds_count", **tenant) == 1
    assert moved("gateway", "ostinato_cache_events_total", event="miss") >= 3

    # planner: admitted, granted, refused, reported; the queue wait of each grant
    assert moved("planner", "ostinato_planner_calls_admitted_total", **tenant) == 3
    assert moved("planner", "ostinato_planner_calls_rejected_total", code="INVALID_ARGUMENT",
                 **tenant) == 1
    assert moved("planner", "ostinato_planner_calls_granted_total") == 3
    assert moved("planner", "ostinato_planner_calls_completed_total", status="ok") == 3
    assert moved("planner", "ostinato_planner_queue_wait_seconds_count") == 3
    assert value(moved.after["planner"], "ostinato_planner_worker_budget") == 8  # 2 workers x 4
    for w in ("worker-0", "worker-1"):  # (calls of earlier tests may still be reported)
        assert ("ostinato_planner_running_calls", frozenset({("worker", w)})) in moved.after["planner"]

    # workers: outcomes, tokens, GenAI server timings
    assert moved("worker-", "ostinato_worker_calls_total", outcome="ok") == 3
    assert moved("worker-", "ostinato_worker_tokens_total", type="generated") == completion
    assert moved("worker-", "ostinato_worker_tokens_total", type="prompt") == prompt
    assert moved("worker-", "ostinato_worker_tokens_total", type="cached") == cached
    assert moved("worker-", "gen_ai_server_time_to_first_token_seconds_count") == 1
    assert moved("worker-", "gen_ai_server_request_duration_seconds_count", error_type="") == 3
    assert moved("worker-", "gen_ai_server_time_per_output_token_seconds_count") == (
        outs[-1].usage.completion_tokens > 1)
    for w in ("worker-0", "worker-1"):
        assert value(moved.after[w], "ostinato_worker_kv_capacity_blocks") > 0
        assert ("ostinato_worker_inflight_calls", frozenset({("worker", w)})) in moved.after[w]

    # engines (SGLang's names): requests and tokens
    assert moved("engine-", "sglang:num_requests_total") == 3
    assert moved("engine-", "sglang:generation_tokens_total") == completion
    assert moved("engine-", "sglang:prompt_tokens_total") == prompt


def test_a_program_ended_again_is_one_duration(mesh: Mesh) -> None:
    """Trace review 2026-12-06: each repeated EndProgram (idempotent; the SDK retries one
    whose answer was lost) recorded the program's duration again."""
    from ostinato.v1 import gateway_pb2, gateway_pb2_grpc

    before = settled(mesh)
    with ostinato.Client(mesh.endpoints.gateway, api_key="key-acme") as client, \
            client.program() as program:
        program.call(messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    with grpc.insecure_channel(mesh.endpoints.gateway) as channel:
        stub = gateway_pb2_grpc.GatewayStub(channel)
        for _ in range(2):  # ended again: the same summary, nothing recorded
            stub.EndProgram(gateway_pb2.EndProgramRequest(program_id=program.program_id),
                            metadata=(("authorization", "Bearer key-acme"),), timeout=10)
    moved = Moved(before, scrape_all(mesh))
    assert moved("gateway", "ostinato_program_duration_seconds_count", tenant="acme") == 1


@pytest.mark.parametrize("path", ["chat", "responses"])
def test_a_call_refused_over_http_is_counted_as_over_grpc(mesh: Mesh, path: str) -> None:
    """Trace review 2026-12-06: a request refused as it was read (temperature 5) was in
    ostinato_calls_total{outcome=INVALID_ARGUMENT} over gRPC, in no call metric over HTTP."""
    import openai

    before = settled(mesh)
    with openai.OpenAI(base_url=f"http://{mesh.endpoints.gateway_http}/v1", api_key="key-acme",
                       max_retries=0) as client, pytest.raises(openai.BadRequestError):
        if path == "chat":
            client.chat.completions.create(model="sim/llama-3.1-8b", temperature=5,
                                           messages=[{"role": "user", "content": "hi"}])
        else:
            client.responses.create(model="sim/llama-3.1-8b", temperature=5, input="hi")
    moved = Moved(before, scrape_all(mesh))
    assert moved("gateway", "ostinato_calls_total", outcome="INVALID_ARGUMENT", tenant="acme") == 1
    assert moved("gateway", "gen_ai_client_operation_duration_seconds_count",
                 error_type="INVALID_ARGUMENT") == 1
