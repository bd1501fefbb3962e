"""The gateway's span attributes: GenAI names, and prompts / outputs only when enabled."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from types import SimpleNamespace

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway import spans as spans_module
from gateway.call_items import CallItem, Granted, NewProgram
from gateway.core import GatewayCore, GatewayError, Placement
from gateway.metrics import GatewayMetrics
from gateway.spans import TracedGatewayCore, call_attributes, result_attributes
from ostinato.v1 import common_pb2
from tracing import genai
from tracing.program_spans import ConversationTurns, ProgramSpans


def _call(**sampling: object) -> common_pb2.CallSpec:
    return common_pb2.CallSpec(
        call_id="c1", thread_id="main", parent_call_ids=["c0"],
        messages=[common_pb2.Message(role="user", content="secret plan")],
        sampling=common_pb2.SamplingParams(**sampling))


@pytest.mark.parametrize(("sampling", "expected"), [
    ({}, {}),
    ({"max_new_tokens": 64, "temperature": 0.0},
     {genai.REQUEST_MAX_TOKENS: 64, genai.REQUEST_TEMPERATURE: 0.0}),
    ({"top_p": 0.5, "seed": 7, "stop": ["\n"]},
     {genai.REQUEST_TOP_P: 0.5, genai.REQUEST_SEED: 7, genai.REQUEST_STOP: ["\n"]}),
])
def test_request_attributes(sampling: dict, expected: dict) -> None:
    attrs = call_attributes(_call(**sampling), "m", "acme", "p1", record_content=False)
    assert attrs[genai.OPERATION] == "chat" and attrs[genai.CONVERSATION_ID] == "p1"
    assert attrs[genai.CALL_PARENTS] == ["c0"] and attrs[genai.TENANT] == "acme"
    assert {k: v for k, v in attrs.items() if k.startswith("gen_ai.request.")
            and k != genai.REQUEST_MODEL} == expected
    assert genai.INPUT_MESSAGES not in attrs


def test_content_only_when_enabled() -> None:
    result = common_pb2.CallResult(text="the answer", finish_reason="stop",
                                   usage=common_pb2.Usage(prompt_tokens=5, completion_tokens=2,
                                                          cached_tokens=3),
                                   cache_hit=common_pb2.CACHE_HIT_EXACT)
    off = result_attributes(result, record_content=False)
    assert off[genai.USAGE_CACHE_READ] == 3 and off[genai.CACHE_HIT] == "exact"
    assert off[genai.RESPONSE_FINISH_REASONS] == ["stop"] and genai.OUTPUT_MESSAGES not in off
    on = result_attributes(result, record_content=True)
    assert json.loads(on[genai.OUTPUT_MESSAGES])[0]["parts"][0]["content"] == "the answer"
    result.reasoning_content = "first, think"  # GenAI's reasoning part, before the text
    parts = json.loads(result_attributes(result, record_content=True)[genai.OUTPUT_MESSAGES])[0]
    assert parts["parts"] == [{"type": "reasoning", "content": "first, think"},
                              {"type": "text", "content": "the answer"}]
    assert "first, think" not in str(result_attributes(result, record_content=False))
    inputs = call_attributes(_call(), "m", "t", "p", record_content=True)[genai.INPUT_MESSAGES]
    assert json.loads(inputs) == [{"role": "user", "parts": [{"type": "text", "content": "secret plan"}]}]


def test_tool_calls_and_results_are_recorded_as_genai_parts() -> None:
    """An answer's tool calls are `tool_call` parts, a tool's result a `tool_call_response`
    (a walkthrough found both recorded as empty text: which tools ran could not be read)."""
    asked = common_pb2.ToolCall(id="call_1", name="calculator", arguments='{"x": 2}')
    call = common_pb2.CallSpec(messages=[
        common_pb2.Message(role="user", content="2 * 63?"),
        common_pb2.Message(role="assistant", tool_calls=[asked]),
        common_pb2.Message(role="tool", tool_call_id="call_1", content="126")])
    inputs = json.loads(call_attributes(call, "m", "t", "p", record_content=True)[
        genai.INPUT_MESSAGES])
    assert [m["parts"] for m in inputs[1:]] == [
        [{"type": "tool_call", "id": "call_1", "name": "calculator", "arguments": {"x": 2}}],
        [{"type": "tool_call_response", "id": "call_1", "response": "126"}]]
    result = common_pb2.CallResult(finish_reason="tool_calls", tool_calls=[asked])
    [out] = json.loads(result_attributes(result, record_content=True)[genai.OUTPUT_MESSAGES])
    assert out["parts"] == [{"type": "tool_call", "id": "call_1", "name": "calculator",
                             "arguments": {"x": 2}}]


class _Answering(GatewayCore):
    """The call path, answering a call, or refusing or failing it after `granted` (or
    before any grant) when `code` is set."""

    def __init__(self, code: grpc.StatusCode | None = None, granted: bool = True,
                 hang: bool = False) -> None:
        self._code, self._granted, self._hang = code, granted, hang  # (no mesh behind it)

    async def run(self, tenant: str, placed: Placement,
                  timeout_s: float) -> AsyncIterator[CallItem]:
        if self._granted:
            yield Granted("w0")
        if self._hang:  # until cancelled
            await asyncio.Event().wait()
        if self._code is not None:
            raise GatewayError(self._code, "no")
        yield common_pb2.CallResult(call_id=placed.call.call_id, text="ok", finish_reason="stop")

    async def place(self, tenant: str, call: common_pb2.CallSpec, program_id: str = "",
                    **kwargs: object) -> Placement:
        """Refuses every call (as an invalid one, or a model not served, is)."""
        raise GatewayError(grpc.StatusCode.INVALID_ARGUMENT, "refused")

    async def register_program(self, tenant: str, options: common_pb2.ProgramOptions, *,
                               declared: bool = False) -> tuple[str, bool]:
        """The planner's answer: open already when `options.program_class` says "open"."""
        return options.program_id, options.program_class == "open"


class _Traced(TracedGatewayCore, _Answering):
    """TracedGatewayCore's spans around the call path above."""


def _traced(monkeypatch: pytest.MonkeyPatch, exporter: InMemorySpanExporter,
            code: grpc.StatusCode | None = None, granted: bool = True,
            hang: bool = False) -> _Traced:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr(spans_module, "_tracer", provider.get_tracer("gateway"))
    core = _Traced.__new__(_Traced)
    _Answering.__init__(core, code, granted, hang)
    core.programs = ProgramSpans(provider.get_tracer("t"), lambda: 0.0)
    core.turns = ConversationTurns()
    core.metrics = GatewayMetrics("m")
    core._record_content = False
    core.config = SimpleNamespace(model="m")  # type: ignore[assignment]
    core._auth = SimpleNamespace(generation_of=lambda tenant: "")  # type: ignore[assignment]
    return core


def _conversation_turn(one_call: bool = False) -> Placement:
    return Placement("acme/p1", _call(), attributed=True, new_program=NewProgram(
        common_pb2.ProgramOptions(program_id="acme/p1"), one_call=one_call))


async def test_a_conversations_calls_are_each_requests_children_linked_turn_to_turn(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracing review 2026-12-05 F2: an OpenAI-API conversation's program span stayed open
    until the conversation expired (30 minutes), each request's trace without its root."""
    exporter = InMemorySpanExporter()
    core = _traced(monkeypatch, exporter)
    requests = TracerProvider().get_tracer("client")
    for turn in ("first", "second"):
        with requests.start_as_current_span(turn):
            async for _ in core.run("acme", _conversation_turn(), 5.0):
                pass
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["chat m", "chat m"]  # no invoke_workflow span
    assert len(core.programs) == 0
    first, second = spans
    assert first.parent is not None and second.parent is not None
    assert first.parent.trace_id != second.parent.trace_id  # each in its request's trace
    assert first.context.trace_id == first.parent.trace_id
    assert second.context.trace_id == second.parent.trace_id
    assert {s.attributes[genai.CONVERSATION_ID] for s in spans} == {"acme/p1"}
    assert not first.links
    (link,) = second.links
    assert link.context.span_id == first.context.span_id
    assert link.attributes == {genai.LINK_KIND: genai.PREVIOUS_TURN}


@pytest.mark.parametrize(("code", "granted"), [
    (grpc.StatusCode.RESOURCE_EXHAUSTED, False),  # refused before the planner took it
    (grpc.StatusCode.INVALID_ARGUMENT, False),
    (grpc.StatusCode.UNAVAILABLE, True),  # failed once running
])
async def test_a_conversations_failed_call_ends_its_span_and_leaves_nothing_open(
        code: grpc.StatusCode, granted: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    exporter = InMemorySpanExporter()
    core = _traced(monkeypatch, exporter, code, granted)
    with pytest.raises(GatewayError):
        async for _ in core.run("acme", _conversation_turn(), 5.0):
            pass
    (call,) = exporter.get_finished_spans()
    assert call.status.status_code.name == "ERROR"
    assert call.attributes[genai.ERROR_TYPE] == code.name
    assert len(core.programs) == 0


@pytest.mark.parametrize(("timeout_s", "outcome"), [
    (0.0, "DEADLINE_EXCEEDED"),  # cut when its time ran out: the RPC's deadline
    (600.0, "cancelled"),  # cut long before: its caller went away
])
async def test_a_call_cut_at_its_deadline_is_deadline_exceeded_not_cancelled(
        timeout_s: float, outcome: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracing review 2026-12-05 F5: a call whose deadline passed was counted cancelled."""
    exporter = InMemorySpanExporter()
    core = _traced(monkeypatch, exporter, hang=True)
    granted = asyncio.Event()

    async def consume() -> None:
        async for _ in core.run("acme", _conversation_turn(), timeout_s):
            granted.set()

    task = asyncio.create_task(consume())
    await granted.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (call,) = exporter.get_finished_spans()
    assert call.status.status_code.name == "ERROR"
    assert call.attributes[genai.ERROR_TYPE] == outcome
    assert core.metrics.calls.labels("acme", outcome)._value.get() == 1


async def test_a_program_opened_again_through_another_replica_gets_no_second_span(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Replicas review F3: StartProgram of a program open already (another gateway replica
    started it) opened a second root span for it here."""
    exporter = InMemorySpanExporter()
    core = _traced(monkeypatch, exporter)
    await core.start_program("acme", common_pb2.ProgramOptions(program_id="mine"))
    assert len(core.programs) == 1  # positive control: a program started here has its span
    # a retry: open already, its span held here: the same one
    await core.start_program("acme", common_pb2.ProgramOptions(program_id="mine",
                                                                program_class="open"))
    assert len(core.programs) == 1 and core.programs.get("acme/mine") is not None
    await core.start_program("acme", common_pb2.ProgramOptions(program_id="theirs",
                                                                program_class="open"))
    assert len(core.programs) == 1 and core.programs.get("acme/theirs") is None


async def test_a_call_refused_in_a_program_is_in_its_trace_under_the_model_it_asked_for(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A walkthrough found a refused call of a program the root of a trace of its own, and
    a call for a model not served recorded under the served model's name."""
    exporter = InMemorySpanExporter()
    core = _traced(monkeypatch, exporter)
    await core.start_program("acme", common_pb2.ProgramOptions(program_id="mine"))
    asked = _call()
    asked.model = "nope"
    with pytest.raises(GatewayError):
        await core.place("acme", asked, "mine")
    with pytest.raises(GatewayError):
        await core.place("acme", _call())  # no program: its caller's context, as before
    refused, alone = exporter.get_finished_spans()
    program = core.programs.get(inner := core.program("acme", "mine"))
    assert program is not None and refused.parent is not None
    assert refused.parent.span_id == program.get_span_context().span_id
    assert (refused.name, refused.attributes[genai.REQUEST_MODEL]) == ("chat nope", "nope")
    assert refused.attributes[genai.CONVERSATION_ID] == inner
    assert alone.parent is None and genai.CONVERSATION_ID not in alone.attributes
    assert alone.name == "chat m"
