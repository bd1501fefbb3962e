"""The gateway's span attributes: GenAI names, and prompts / outputs only when enabled."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace

import grpc
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway.call_items import CallItem, Granted, NewProgram
from gateway.core import GatewayCore, GatewayError, Placement
from gateway.metrics import GatewayMetrics
from gateway.spans import TracedGatewayCore, call_attributes, result_attributes
from ostinato.v1 import common_pb2
from tracing import genai
from tracing.program_spans import ProgramSpans


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


class _Refusing(GatewayCore):
    """The call path, refusing or failing a call after `granted` (or before any grant)."""

    def __init__(self, code: grpc.StatusCode, granted: bool) -> None:  # (no mesh behind it)
        self._code, self._granted = code, granted

    async def run(self, tenant: str, placed: Placement,
                  timeout_s: float) -> AsyncIterator[CallItem]:
        if self._granted:
            yield Granted("w0")
        raise GatewayError(self._code, "no")


class _Traced(TracedGatewayCore, _Refusing):
    """TracedGatewayCore's spans around the refusing call path."""


@pytest.mark.parametrize(("code", "granted", "one_call", "ended"), [
    # refused before the planner took it: the implicit program never began
    (grpc.StatusCode.RESOURCE_EXHAUSTED, False, False, "refused"),
    (grpc.StatusCode.INVALID_ARGUMENT, False, False, "refused"),
    # failed once running: the program stands (a conversation goes on)
    (grpc.StatusCode.UNAVAILABLE, True, False, None),
    # a one-call program's span is not held here
    (grpc.StatusCode.RESOURCE_EXHAUSTED, False, True, None),
])
async def test_an_implicit_program_refused_at_its_first_call_is_not_left_open(
        code: grpc.StatusCode, granted: bool, one_call: bool, ended: str | None) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    core = _Traced.__new__(_Traced)
    _Refusing.__init__(core, code, granted)
    core.programs = ProgramSpans(provider.get_tracer("t"), lambda: 0.0)
    core.metrics = GatewayMetrics("m")
    core._record_content = False
    core.config = SimpleNamespace(model="m")  # type: ignore[assignment]
    placed = Placement("acme/p1", _call(), attributed=True, new_program=NewProgram(
        common_pb2.ProgramOptions(program_id="acme/p1"), one_call=one_call))
    if not one_call:
        core.programs.start("acme/p1", "acme")
    with pytest.raises(GatewayError):
        async for _ in core.run("acme", placed, 5.0):
            pass
    finished = [s.attributes.get(genai.PROGRAM_END) for s in exporter.get_finished_spans()]
    assert finished == ([ended] if ended else [])
    assert len(core.programs) == (0 if ended or one_call else 1)
