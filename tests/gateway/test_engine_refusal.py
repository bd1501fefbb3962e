"""gateway/call_items.py `engine_refusal`: a worker's INVALID_ARGUMENT as the client reads it
(the engine's words, no worker named; the field at fault)."""

from __future__ import annotations

import grpc
import pytest

from gateway.call_items import engine_refusal
from ostinato.v1 import common_pb2 as c

TOOL = c.Tool(name="f")
SCHEMA = c.ResponseFormat(type=c.RESPONSE_FORMAT_TYPE_JSON_SCHEMA, schema_json="{}")


@pytest.mark.parametrize(("call", "param"), [
    (c.CallSpec(), None),
    (c.CallSpec(response_format=SCHEMA), "response_format"),
    (c.CallSpec(tools=[TOOL]), "tools"),
    (c.CallSpec(tools=[TOOL], response_format=SCHEMA), "response_format"),  # tools: auto
    (c.CallSpec(tools=[TOOL], response_format=SCHEMA,
                tool_choice=c.ToolChoice(mode=c.TOOL_CHOICE_MODE_REQUIRED)), "tools"),
    (c.CallSpec(tools=[TOOL], tool_choice=c.ToolChoice(mode=c.TOOL_CHOICE_MODE_FUNCTION,
                                                       function_name="f")), "tools"),
])
def test_the_field_at_fault(call: c.CallSpec, param: str | None) -> None:
    failed = engine_refusal("worker w-0: engine answered 400: json_schema: bad", call)
    assert failed.code == grpc.StatusCode.INVALID_ARGUMENT and failed.param == param


@pytest.mark.parametrize("message", [
    "worker w-0: engine answered 400: The input (9000 tokens) is longer than the model's "
    "context length (8192 tokens).",
    "worker w-0: prompt and input_ids are empty",
])
def test_a_refusal_of_no_constraint_names_no_field(message: str) -> None:
    """(review: a context-length refusal of a call with a response format was blamed on it)"""
    call = c.CallSpec(tools=[TOOL], response_format=SCHEMA,
                      tool_choice=c.ToolChoice(mode=c.TOOL_CHOICE_MODE_REQUIRED))
    assert engine_refusal(message, call).param is None


@pytest.mark.parametrize(("message", "text"), [
    ("worker w-0: engine answered 400: sampling_params.json_schema: schema at /a: bad",
     "sampling_params.json_schema: schema at /a: bad"),
    ("worker w-0: prompt and input_ids are empty", "prompt and input_ids are empty"),
    ("odd", "odd"),
])
def test_the_engines_words_without_the_worker(message: str, text: str) -> None:
    failed = engine_refusal(message, c.CallSpec())
    assert failed.message == f"the model server refused the request: {text}"
