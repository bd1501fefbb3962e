"""One trace per program across every hop, checked on the live mesh (real processes): the
file exporter and a real OTLP receiver get the same spans, with correct parents, the GenAI
attributes, the client's trace continued and the engine request carrying traceparent."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider

import ostinato
from ostinato.config import load_mesh_config
from ostinato.mesh import Mesh
from ostinato.program_ids import inner_id
from ostinato.sdk_types import call_spec
from ostinato.v1 import gateway_pb2, gateway_pb2_grpc
from tests.tracing.otlp_receiver import Received, grpc_receiver
from tracing import genai
from tracing.span_file import SpanRecord, read_spans

MODEL = "sim/llama-3.1-8b"
USER = [{"role": "user", "content": "Compare three cities for a conference."}]


@dataclass
class Traced:
    program_id: str
    call_ids: list[str]
    client_trace_id: str
    client_span_id: str
    spans: list[SpanRecord]  # from the file
    received: Received  # by the OTLP receiver
    log_dir: Path
    http_traceparent: str  # sent with an OpenAI-API request
    cancelled_trace_id: str  # a streamed call left after a few deltas


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Traced]:
    """A fan-out program run inside a client's own span, on a mesh exporting to a file and
    to an OTLP receiver; the mesh is stopped (spans flushed) before the checks."""
    trace_file = tmp_path_factory.mktemp("traces") / "spans.jsonl"
    with grpc_receiver() as (address, received):
        cfg = load_mesh_config(None, environ={}, overrides={
            "workers": 2, "gateway": {"semantic_cache": False, "allow_anonymous": True},
            "telemetry": {"traces": "file,otlp-grpc", "trace_file": str(trace_file),
                          "otlp_endpoint": f"http://{address}"},
            "sim_engine": {"time_scale": 0.1}})
        mesh = Mesh(cfg, ephemeral_ports=True)
        mesh.start()
        client_tracer = TracerProvider().get_tracer("test-agent")  # the client's own SDK
        try:
            with client_tracer.start_as_current_span("my agent") as mine, \
                    ostinato.Client(mesh.endpoints.gateway) as client, \
                    client.program() as program:
                root = program.call(messages=USER, max_tokens=8)
                with ThreadPoolExecutor(3) as pool:
                    fan = list(pool.map(lambda i: program.call(
                        messages=[*USER, {"role": "user", "content": f"city {i}"}],
                        thread_id=f"t{i}", parents=[root.call_id], max_tokens=8), range(3)))
                join = program.call(messages=USER, parents=[o.call_id for o in fan], max_tokens=8)
            with client_tracer.start_as_current_span("leaving agent") as leaving, \
                    ostinato.Client(mesh.endpoints.gateway) as client, \
                    client.program() as left:
                stream = left.stream(messages=USER, max_tokens=3000, ignore_eos=True)
                for i, _ in enumerate(stream):
                    if i == 3:
                        break  # leaving the iteration cancels the call
            http_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
            answer = _chat(mesh, USER, http_parent)
            # the conversation's next turn, in a trace of its own
            _chat(mesh, [*USER, {"role": "assistant", "content": answer},
                         {"role": "user", "content": "And the cheapest?"}], NEXT_TURN)
            _refused_requests(mesh)
            _responses(mesh, RESPONSES)
            log_dir = Path(mesh.endpoints.log_dir)
            mesh.stop()  # graceful: every service flushes its spans
            ctx = mine.get_span_context()
            yield Traced(program.program_id, [o.call_id for o in [root, *fan, join]],
                         format(ctx.trace_id, "032x"), format(ctx.span_id, "016x"),
                         read_spans(trace_file), received, log_dir, http_parent,
                         format(leaving.get_span_context().trace_id, "032x"))
        finally:
            mesh.close()


NEXT_TURN = "00-5cf92f3577b34da6a3ce929d0e0e4737-11f067aa0ba902b8-01"


def _chat(mesh: Mesh, messages: list[dict[str, str]], traceparent: str) -> str:
    request = urllib.request.Request(
        f"http://{mesh.endpoints.gateway_http}/v1/chat/completions",
        data=json.dumps({"model": MODEL, "messages": messages, "max_tokens": 4}).encode(),
        headers={"traceparent": traceparent, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 200
        return str(json.loads(reply.read())["choices"][0]["message"]["content"])


RESPONSES = "00-8af92f3577b34da6a3ce929d0e0e473a-44f067aa0ba902bb-01"


def _responses(mesh: Mesh, traceparent: str) -> str:
    """A Responses API request, streamed; its response's id."""
    request = urllib.request.Request(
        f"http://{mesh.endpoints.gateway_http}/v1/responses",
        data=json.dumps({"model": MODEL, "input": "Hello", "max_output_tokens": 4,
                         "stream": True}).encode(),
        headers={"traceparent": traceparent, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 200
        events = [json.loads(line[6:]) for line in reply.read().decode().splitlines()
                  if line.startswith("data: ") and line != "data: [DONE]"]
    return str(events[-1]["response"]["id"])


REFUSED_HTTP = "00-6df92f3577b34da6a3ce929d0e0e4738-22f067aa0ba902b9-01"
REFUSED_GRPC = "00-7ef92f3577b34da6a3ce929d0e0e4739-33f067aa0ba902ba-01"


def _refused_requests(mesh: Mesh) -> None:
    """A chat completion with max_tokens -5 (400), and a gRPC call naming a parent call
    without a program (INVALID_ARGUMENT), each with a traceparent."""
    request = urllib.request.Request(
        f"http://{mesh.endpoints.gateway_http}/v1/chat/completions",
        data=json.dumps({"model": MODEL, "messages": USER, "max_tokens": -5}).encode(),
        headers={"traceparent": REFUSED_HTTP, "Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 400
    with grpc.insecure_channel(mesh.endpoints.gateway) as channel, \
            pytest.raises(grpc.RpcError) as invalid:
        list(gateway_pb2_grpc.GatewayStub(channel).Call(gateway_pb2.CallRequest(
            call=call_spec(messages=USER, parents=["nope"])), timeout=30,
            metadata=[("traceparent", REFUSED_GRPC)]))
    assert invalid.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def _by_name(spans: list[SpanRecord], prefix: str, trace_id: str = "") -> list[SpanRecord]:
    return [s for s in spans if s.name.startswith(prefix) and (not trace_id or s.trace_id == trace_id)]


def _http_trace(traced: Traced) -> str:
    return traced.http_traceparent.split("-")[1]


def test_http_api_continues_the_callers_traceparent(traced: Traced) -> None:
    """An OpenAI-API request starts a conversation's program (found from no earlier
    conversation); its call span is the child of the caller's span, and runs through planner,
    worker and engine in that trace. The conversation has no program span (tracing review
    2026-12-05 F2: it stayed open until the conversation expired, the trace without its
    root); the next turn is in its own request's trace, linked to the turn before."""
    trace_id, parent = traced.http_traceparent.split("-")[1:3]
    next_trace, next_parent = NEXT_TURN.split("-")[1:3]
    assert not _by_name(traced.spans, "invoke_workflow", trace_id)
    assert not _by_name(traced.spans, "invoke_workflow", next_trace)
    (call,) = _by_name(traced.spans, "chat", trace_id)
    (turn,) = _by_name(traced.spans, "chat", next_trace)
    (http,) = _by_name(traced.spans, "POST /v1/chat/completions", trace_id)
    (next_http,) = _by_name(traced.spans, "POST /v1/chat/completions", next_trace)
    assert (http.parent_id, next_http.parent_id) == (parent, next_parent)
    assert (call.parent_id, turn.parent_id) == (http.span_id, next_http.span_id)
    # one SERVER span a hop: the route's; the call span beneath it is INTERNAL
    assert (http.kind, call.kind, turn.kind) == ("SERVER", "INTERNAL", "INTERNAL")
    assert http.attributes["http.response.status_code"] == 200
    assert call.attributes[genai.CONVERSATION_ID] == turn.attributes[genai.CONVERSATION_ID]
    assert turn.links == ((trace_id, call.span_id),) and not call.links
    for trace in (trace_id, next_trace):
        assert {s.service for s in traced.spans if s.trace_id == trace} == {
            "ostinato-gateway", "ostinato-planner", "ostinato-worker", "ostinato-sim-engine"}


def test_a_refused_request_leaves_a_span_in_its_callers_trace(traced: Traced) -> None:
    """Tracing review 2026-12-05 F4: a request refused before it ran (HTTP 400/404, gRPC
    INVALID_ARGUMENT) left no span, though its caller sent a traceparent."""
    trace_id, parent = REFUSED_HTTP.split("-")[1:3]
    (http,) = [s for s in traced.spans if s.trace_id == trace_id]
    assert (http.name, http.parent_id) == ("POST /v1/chat/completions", parent)
    assert http.attributes["http.response.status_code"] == 400
    assert http.attributes["http.route"] == "/v1/chat/completions"
    trace_id, parent = REFUSED_GRPC.split("-")[1:3]
    (call,) = [s for s in traced.spans if s.trace_id == trace_id]
    assert (call.name, call.parent_id, call.status) == (f"chat {MODEL}", parent, "ERROR")
    assert call.kind == "SERVER"  # the gateway's entry for its remote caller
    assert call.attributes[genai.ERROR_TYPE] == "INVALID_ARGUMENT"
    assert genai.CONVERSATION_ID not in call.attributes


def test_genai_convention_attributes(traced: Traced) -> None:
    """Tracing review 2026-12-05 F6: the engine's host and port (not its URL), a streamed
    request marked as one with its time to the first chunk, and the id the OpenAI-API
    client got on its request's span."""
    engine = _by_name(traced.spans, "text_completion", traced.client_trace_id)
    assert engine and all(s.attributes[genai.SERVER_ADDRESS] == "127.0.0.1"
                          and isinstance(s.attributes[genai.SERVER_PORT], int) for s in engine)
    (streamed,) = [s for s in _by_name(traced.spans, "chat", traced.cancelled_trace_id)]
    assert streamed.attributes[genai.REQUEST_STREAM] is True
    assert streamed.attributes[genai.RESPONSE_TIME_TO_FIRST_CHUNK] > 0
    whole = _by_name(traced.spans, "chat", traced.client_trace_id)  # SDK calls: one message
    assert whole and all(genai.REQUEST_STREAM not in s.attributes for s in whole)
    (http,) = _by_name(traced.spans, "POST /v1/chat/completions", _http_trace(traced))
    assert str(http.attributes[genai.RESPONSE_ID]).startswith("chatcmpl-")
    (http,) = _by_name(traced.spans, "POST /v1/responses", RESPONSES.split("-")[1])
    assert str(http.attributes[genai.RESPONSE_ID]).startswith("resp_")


def test_a_cancelled_calls_spans_end_in_error_on_every_hop(traced: Traced) -> None:
    """Tracing review 2026-12-05 F1: only the gateway's call span said a cancelled call was
    cancelled; the worker's generation and its engine request ended as successes."""
    spans = [s for s in traced.spans if s.trace_id == traced.cancelled_trace_id]
    cut = {(s.service, s.name.split(" ")[0]): s for s in spans
           if s.name.startswith(("chat", genai.SPAN_WORKER_GENERATE, "text_completion"))}
    assert set(cut) == {("ostinato-gateway", "chat"),
                        ("ostinato-worker", genai.SPAN_WORKER_GENERATE),
                        ("ostinato-worker", "text_completion")}, [s.name for s in spans]
    for span in cut.values():
        assert span.status == "ERROR" and span.attributes[genai.ERROR_TYPE] == "cancelled", span


def test_one_trace_continuing_the_clients(traced: Traced) -> None:
    spans = [s for s in traced.spans if s.trace_id not in (
        _http_trace(traced),
        *(t.split("-")[1] for t in (NEXT_TURN, RESPONSES, REFUSED_HTTP, REFUSED_GRPC)),
        traced.cancelled_trace_id)]
    assert spans and {s.trace_id for s in spans} == {traced.client_trace_id}
    (program,) = _by_name(spans, "invoke_workflow")
    assert program.parent_id == traced.client_span_id  # the client's span is the parent
    assert program.attributes[genai.CONVERSATION_ID] == inner_id("default", traced.program_id)
    assert program.attributes[genai.PROGRAM_END] == "ended"
    assert program.attributes[genai.PROGRAM_CALLS_COMPLETED] == 5
    assert {s.service for s in spans} == {"ostinato-gateway", "ostinato-planner",
                                          "ostinato-worker", "ostinato-sim-engine"}


def test_parent_links_across_processes(traced: Traced) -> None:
    spans = {s.span_id: s for s in traced.spans}
    (program,) = _by_name(traced.spans, "invoke_workflow", traced.client_trace_id)
    calls = _by_name(traced.spans, f"chat {MODEL}", traced.client_trace_id)
    assert sorted(c.attributes[genai.CALL_ID] for c in calls) == sorted(traced.call_ids)
    for call in calls:
        assert call.parent_id == program.span_id and call.service == "ostinato-gateway"
        # its RPC's SERVER span, under its program's (INTERNAL) span of this process
        assert call.kind == "SERVER" and program.kind == "INTERNAL"
        children = [s for s in traced.spans if s.parent_id == call.span_id]
        (admit,) = [s for s in children if s.name == genai.SPAN_PLANNER_ADMIT]
        (generate,) = [s for s in children if s.name == genai.SPAN_WORKER_GENERATE]
        assert admit.service == "ostinato-planner" and generate.service == "ostinato-worker"
        assert admit.attributes[genai.WORKER_ID] == call.attributes[genai.WORKER_ID] \
            == generate.attributes[genai.WORKER_ID]
        assert admit.attributes[genai.ROUTE_POLICY] == "default"
        assert {genai.PRIORITY, genai.ROUTE_MATCHED_BLOCKS, genai.PARKED, genai.QUEUE_S} \
            <= admit.attributes.keys()
        (engine_call,) = [s for s in traced.spans if s.parent_id == generate.span_id]
        assert engine_call.name == f"text_completion {MODEL}" and engine_call.kind == "CLIENT"
        # the engine continued the traceparent header the worker sent with the request
        (engine,) = [s for s in traced.spans if s.parent_id == engine_call.span_id]
        assert engine.service == "ostinato-sim-engine" and engine.name == "POST /generate"
        assert all(spans[s.parent_id] for s in (admit, generate, engine_call, engine))


def test_genai_attributes(traced: Traced) -> None:
    for call in _by_name(traced.spans, f"chat {MODEL}", traced.client_trace_id):
        a = call.attributes
        assert a[genai.OPERATION] == "chat" and a[genai.REQUEST_MODEL] == MODEL
        assert a[genai.PROVIDER] == "ostinato"
        assert a[genai.CONVERSATION_ID] == inner_id("default", traced.program_id)
        assert a[genai.USAGE_INPUT] > 0 and a[genai.USAGE_OUTPUT] > 0
        assert genai.USAGE_CACHE_READ in a and a[genai.RESPONSE_FINISH_REASONS] in (["stop"], ["length"])
        assert a[genai.REQUEST_MAX_TOKENS] == 8 and a[genai.CACHE_HIT] == "miss"
        assert genai.INPUT_MESSAGES not in a and genai.OUTPUT_MESSAGES not in a  # content off
    # a call started early on a worker and granted another: that early run was cut
    missed = sum(1 for s in traced.spans if s.attributes.get(genai.EARLY_START) == "missed")
    cut = 0
    for engine_call in _by_name(traced.spans, "text_completion"):
        if engine_call.trace_id == traced.cancelled_trace_id:
            continue  # cut before its end: no usage
        a = engine_call.attributes
        if genai.cancelled(a.get(genai.ERROR_TYPE)):
            cut += 1
            continue
        assert a[genai.PROVIDER] == "sglang" and a[genai.USAGE_OUTPUT] > 0
        assert a[genai.TTFT_S] > 0 and a[genai.SIMULATED] is True
        assert [e.name for e in engine_call.events] == [genai.FIRST_TOKEN_EVENT]
    assert cut <= missed  # no other engine request ended cut
    calls = _by_name(traced.spans, "chat", traced.client_trace_id)
    joined = [c for c in calls if len(c.attributes[genai.CALL_PARENTS]) == 3]
    assert len(joined) == 1


def test_otlp_receiver_got_the_same_spans(traced: Traced) -> None:
    received = traced.received.spans()
    assert {(s.trace_id, s.span_id, s.parent_id, s.name) for s in received} == \
        {(s.trace_id, s.span_id, s.parent_id, s.name) for s in traced.spans}


def test_log_lines_carry_trace_and_program(traced: Traced) -> None:
    lines = [json.loads(line) for line in (traced.log_dir / "gateway.log").read_text().splitlines()
             if line.startswith("{")]
    started = [ln for ln in lines if ln.get("event") == "program started"]
    assert started and started[0]["trace_id"] == traced.client_trace_id
    assert started[0]["program_id"] == inner_id("default", traced.program_id) and "span_id" in started[0]


def test_a_clients_span_per_step_is_linked(traced: Traced) -> None:
    """The client's span is the program's parent: its calls are the program's children,
    not linked back to it."""
    assert all(not c.links for c in _by_name(traced.spans, "chat", traced.client_trace_id))
