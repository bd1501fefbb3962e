"""The gateway's span attributes: GenAI names, and prompts / outputs only when enabled."""

from __future__ import annotations

import json

import pytest

from gateway.spans import call_attributes, result_attributes
from ostinato.v1 import common_pb2
from tracing import genai


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
