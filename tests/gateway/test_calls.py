"""Call validation and prompt rendering (pure)."""

from __future__ import annotations

import json

import pytest

from gateway.calls import (
    CallLimits,
    InvalidCall,
    check_program_options,
    nesting_depth,
    normalize_call,
)
from ostinato.sdk_types import call_spec, program_options
from ostinato.v1 import common_pb2

LIMITS = CallLimits(max_prompt_chars=1000, max_messages=4, default_max_new_tokens=64,
                    max_new_tokens_limit=512)
USER = [{"role": "user", "content": "hello"}]


def _asked(*ids: str) -> dict:
    """An assistant message calling tool f once per id."""
    return {"role": "assistant", "content": None, "tool_calls": [
        {"id": i, "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in ids]}


def _tool(name: str, prop: dict, defs: dict) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {"p": prop}, "$defs": defs}}}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs messages or a prompt"),
        ({"messages": USER, "prompt": "x"}, "either messages or a prompt"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "role must be one of"),
        ({"messages": USER * 5}, "too many messages"),
        ({"prompt": "x" * 1001}, "prompt too large"),
        # a tool call's arguments are rendered into the prompt: counted with the text
        ({"messages": [*USER, {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f",
                                                         "arguments": json.dumps({"x": "y" * 1000})}}]},
                   {"role": "tool", "tool_call_id": "c", "content": "ok"}]},
         "prompt too large"),
        # so are the declared tools' schemas
        ({"messages": USER, "tools": [{"type": "function", "function": {
            "name": "f", "description": "d" * 1000}}]}, "prompt too large"),
        ({"messages": USER, "tools": [_tool("f", {"type": "string", "enum": ["v" * 999]}, {})]},
         "prompt too large"),
        ({"prompt": "x", "call_id": "a", "parents": ["a"]}, "own parent"),
        ({"prompt": "x", "max_tokens": 513}, "max_new_tokens"),
        ({"prompt": "x", "temperature": 3.0}, "temperature"),
        ({"prompt": "x", "top_p": -0.5}, "top_p"),
        ({"prompt": "x", "top_k": 0}, "top_k must be -1"),
        ({"prompt": "x", "chat_template_kwargs": {"enable_thinking": False}},
         "chat_template_kwargs applies to messages"),
        ({"messages": USER, "chat_template_kwargs": {"tools": []}},
         "chat_template_kwargs cannot set tools"),
        ({"messages": USER, "chat_template_kwargs": {"x": "y" * 5000}}, "longer than 4096"),
        ({"prompt": "x", "reasoning_effort": "low"}, "reasoning_effort applies to messages"),
        ({"prompt": "x", "reasoning_in_text": True}, "reasoning_in_text applies to messages"),
        ({"messages": USER, "reasoning_effort": "extreme"},
         "reasoning_effort 'extreme' is not one of none, minimal, low, medium, high, xhigh, max"),
        ({"messages": USER, "reasoning_effort": "High"}, "is not one of"),  # as OpenAI's: exact
        ({"prompt": "x", "min_p": 1.5}, r"min_p must be in \[0, 1\]"),
        ({"prompt": "x", "repetition_penalty": 0.0}, r"repetition_penalty must be in \(0, 2\]"),
        ({"prompt": "x", "min_tokens": 65}, "min tokens 65 is more than max tokens 64"),  # default
        ({"prompt": "x", "min_tokens": 9, "max_tokens": 8}, "min tokens 9 is more than max tokens 8"),
        ({"prompt": "x", "logit_bias": {7: 100.5}}, r"logit_bias\[7\] is 100.5; a bias must be "
                                                   r"in \[-100, 100\]"),
        ({"prompt": "x", "logit_bias": {7: float("nan")}}, r"logit_bias\[7\] is nan"),
        ({"prompt": "x", "logit_bias": {7: -float("inf")}}, r"logit_bias\[7\] is -inf"),
        ({"prompt": "x", "logit_bias": dict.fromkeys(range(301), 1.0)},
         "biases 301 token ids, more than 300"),
        # a tool result answers a call the model made earlier in the conversation (as OpenAI)
        ({"messages": [*USER, {"role": "tool", "tool_call_id": "c9", "content": "42"}]},
         r"messages\[1\].tool_call_id 'c9' answers no tool call of an earlier assistant"),
        ({"messages": [*USER, _asked("c1"), {"role": "tool", "tool_call_id": "c2", "content": "1"}]},
         r"messages\[2\].tool_call_id 'c2' answers no tool call"),
        ({"messages": [{"role": "tool", "tool_call_id": "c1", "content": "1"}, _asked("c1")]},
         r"messages\[0\].tool_call_id 'c1' answers no tool call"),  # its call comes after it
        # each call answered before the conversation goes on (as OpenAI; a walkthrough)
        ({"messages": [*USER, _asked("c1", "c2"), {"role": "tool", "tool_call_id": "c1",
                                                   "content": "1"}, *USER]},
         r"messages\[1\]: an assistant message with 'tool_calls' must be followed by tool "
         r"messages responding to each 'tool_call_id'; none for c2"),
        ({"messages": [*USER, _asked("c1")]}, r"messages\[1\]: .* none for c1"),
        # forced tool calls: one schema holds every tool's definitions, alike or refused
        ({"messages": USER, "tool_choice": "required", "tools": [
            _tool("a", {"$ref": "#/$defs/X"}, {"X": {"type": "string"}}),
            _tool("b", {"$ref": "#/$defs/X"}, {"X": {"type": "integer"}})]},
         r"tools define \$defs/X differently"),
        # a name the grammars and parsers take whole: no trailing newline (a regex's $ took it)
        ({"messages": USER, "tools": [_tool("get\n", {"type": "string"}, {})]},
         r"tools\[0\].function.name must be 1 to 64"),
    ],
)
def test_invalid_calls_are_rejected_with_a_reason(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidCall, match=message):
        normalize_call(call_spec(**kwargs), LIMITS)


@pytest.mark.parametrize("results", [
    [{"role": "tool", "tool_call_id": "c2", "content": "2"},
     {"role": "tool", "tool_call_id": "c1", "content": "1"}],  # in any order
    [{"role": "tool", "content": "1"}, {"role": "tool", "content": "2"}],  # naming none
])
def test_answered_tool_calls_are_taken(results: list[dict]) -> None:
    normalize_call(call_spec(messages=[*USER, _asked("c1", "c2"), *results]), LIMITS)


def _sent_raw(**fields: str) -> common_pb2.CallSpec:
    """A call with ids the SDK would refuse before sending (as a raw gRPC client sends)."""
    spec = call_spec(messages=USER)
    for name, value in fields.items():
        setattr(spec, name, value)
    return spec


@pytest.mark.parametrize(("spec", "message"), [
    # tracing review 2026-12-05 F9: ids and labels are printed in logs and `ostinato trace`
    (_sent_raw(call_id="c1\x1b[5mBLINK"), "call_id must not contain control"),
    (_sent_raw(thread_id="t\n1"), "thread_id must not contain control"),
    (_sent_raw(call_id="a/b"), "call_id must be at most 128 characters and contain no '/'"),
    (_sent_raw(thread_id="t" * 129), "thread_id must be at most 128 characters"),
    (call_spec(messages=USER, parents=["p\x07"]), "parent_call_ids must not contain control"),
])
def test_ids_with_control_characters_are_refused(spec, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidCall, match=message):
        normalize_call(spec, LIMITS)
    normalize_call(call_spec(messages=USER, call_id="c1 ünï ✓", thread_id="t 1"), LIMITS)


@pytest.mark.parametrize(("options", "message"), [
    (common_pb2.ProgramOptions(program_class="re\x1b]0;pwned\x07act"), "program_class must not"),
    (common_pb2.ProgramOptions(program_id="p\x1b[2J"), "program_id must not contain control"),
])
def test_program_labels_with_control_characters_are_refused(
        options: common_pb2.ProgramOptions, message: str) -> None:
    with pytest.raises(InvalidCall, match=message):
        check_program_options(options)
    check_program_options(common_pb2.ProgramOptions(program_id="p-1", program_class="réact"))


@pytest.mark.parametrize(("field", "message"), [
    ("tool_choice", "tool_choice.mode 99 is not a ToolChoiceMode"),
    ("response_format", "response_format.type 99 is not a ResponseFormatType"),
])
def test_enum_numbers_no_value_has_are_refused(field: str, message: str) -> None:
    spec = call_spec(messages=USER)  # (protobuf keeps such numbers from the wire)
    if field == "tool_choice":
        spec.tool_choice.mode = 99  # type: ignore[assignment]
    else:
        spec.response_format.type = 99  # type: ignore[assignment]
    with pytest.raises(InvalidCall, match=message) as exc:
        normalize_call(spec, LIMITS)
    assert exc.value.param == field


@pytest.mark.parametrize("messages", [
    [*USER, _asked("c1", "c2"), {"role": "tool", "tool_call_id": "c2", "content": "2"},
     {"role": "tool", "tool_call_id": "c1", "content": "1"}],
    [*USER, _asked("c1"), {"role": "tool", "tool_call_id": "c1", "content": "1"}],
    # without an id, over gRPC (the demo's client-side tools; a template that needs none): taken
    # (the OpenAI-compatible API requires one: tests/gateway/test_openai_format.py)
    [*USER, _asked(""), {"role": "tool", "content": "1"}],
])
def test_tool_results_that_answer_earlier_calls_are_taken(messages: list) -> None:
    assert normalize_call(call_spec(messages=messages), LIMITS).messages[-1].role == "tool"


def _nested(depth: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"json_schema": _nested(40)}, r"response_format.json_schema.schema nests 81 levels deep, more "
                                   r"than the 64"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": _nested(400)}}]},
     r"tools\[0\].function.parameters nests 801 levels"),
])
def test_schemas_nested_past_the_bound_are_refused(kwargs: dict, message: str) -> None:
    # the validator recurses: a schema deep enough made it raise RecursionError (a 500)
    with pytest.raises(InvalidCall, match=message):
        normalize_call(call_spec(messages=USER, **kwargs), LIMITS)
    normalize_call(call_spec(messages=USER, json_schema=_nested(31)), LIMITS)  # 63 levels: taken


@pytest.mark.parametrize(("value", "expected"), [
    ({}, 1), ([], 1), ("x", 0), (None, 0), ({"a": 1}, 1), ({"a": [1, {"b": []}]}, 4),
    ([[[[]]], {}], 4), ({"a": {"b": {}}, "c": [[[[[]]]]]}, 6),
])
def test_nesting_depth(value: object, expected: int) -> None:
    assert nesting_depth(value) == expected


def test_nesting_depth_needs_no_recursion() -> None:
    deep: list = []
    for _ in range(100_000):
        deep = [deep]
    assert nesting_depth(deep) == 100_001


@pytest.mark.parametrize("kwargs", [{"max_tokens": -1}, {"max_tokens": 1 << 32},
                                    {"expected_output_tokens": -1}, {"max_tokens": 2.5},
                                    {"max_tokens": True}])
def test_sdk_refuses_what_the_proto_cannot_hold_naming_the_argument(kwargs: dict) -> None:
    (name, value), = kwargs.items()
    with pytest.raises(ValueError, match=f"{name} must be a whole number from [01] to .*, got {value!r}"):
        call_spec(messages=USER, **kwargs)


def test_max_tokens_set_to_0_is_refused() -> None:
    """Set to 0 over raw gRPC (the SDK refuses it itself): refused, as over HTTP."""
    call = common_pb2.CallSpec(prompt="x", sampling=common_pb2.SamplingParams(max_new_tokens=0))
    with pytest.raises(InvalidCall, match="at least 1"):
        normalize_call(call, LIMITS)


@pytest.mark.parametrize("deadline_s", [float("nan"), float("inf"), -float("inf"), "5", True])
def test_sdk_refuses_a_deadline_the_proto_cannot_hold_naming_it(deadline_s: object) -> None:
    with pytest.raises(ValueError, match="deadline_s must be a number of seconds above 0"):
        program_options(deadline_s=deadline_s)  # type: ignore[arg-type]


def test_sglang_extensions_within_their_ranges_are_taken() -> None:
    out = normalize_call(call_spec(prompt="x", top_k=-1, min_p=1.0, repetition_penalty=2.0,
                                   min_tokens=64, presence_penalty=-2.0), LIMITS)
    sp = out.sampling
    assert (sp.top_k, sp.min_p, sp.repetition_penalty, sp.min_new_tokens, sp.presence_penalty) == (
        -1, 1.0, 2.0, 64, -2.0)


@pytest.mark.parametrize(("raw", "message"), [
    ("[1]", "must be a JSON object"), ("{nope", "not valid JSON"), ("1", "must be a JSON object"),
    ('{"add_generation_prompt": false, "messages": []}',
     "cannot set add_generation_prompt, messages"),
])
def test_raw_grpc_chat_template_kwargs_are_checked(raw: str, message: str) -> None:
    call = common_pb2.CallSpec(messages=[common_pb2.Message(role="user", content="hi")],
                               chat_template_kwargs=raw)
    with pytest.raises(InvalidCall, match=message) as exc:
        normalize_call(call, LIMITS)
    assert exc.value.param == "chat_template_kwargs"


@pytest.mark.parametrize("top_k", [-5, -(1 << 31), 0])
def test_a_raw_grpc_top_k_below_one_is_refused(top_k: int) -> None:
    call = common_pb2.CallSpec(prompt="x", sampling=common_pb2.SamplingParams(top_k=top_k))
    with pytest.raises(InvalidCall, match="top_k must be -1"):
        normalize_call(call, LIMITS)


@pytest.mark.parametrize("top_k", [-2, 1 << 31, 2.0, True])
def test_sdk_refuses_a_top_k_the_proto_cannot_hold(top_k: object) -> None:
    with pytest.raises(ValueError, match="top_k must be -1 or a whole number from 1"):
        call_spec(prompt="x", top_k=top_k)  # type: ignore[arg-type]


@pytest.mark.parametrize(("bias", "message"), [
    ({-1: 1.0}, "a logit_bias token id must be a whole number from 0 to 18446744073709551615"),
    ({1 << 64: 1.0}, "a logit_bias token id must be a whole number"),
    ({"5": 1.0}, "a logit_bias token id must be a whole number"),  # ids are ints in the SDK
    ({5: "1"}, r"logit_bias\[5\] must be a number, got '1'"),
    ({5: True}, r"logit_bias\[5\] must be a number"),
])
def test_sdk_refuses_a_logit_bias_the_proto_cannot_hold_naming_it(bias: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call_spec(messages=USER, logit_bias=bias)


def test_sdk_logit_bias_is_taken_within_the_limits() -> None:
    bias = {0: -100, 50256: 100.0, (1 << 64) - 1: 0.25, **dict.fromkeys(range(1, 298), 1.0)}
    out = normalize_call(call_spec(messages=USER, logit_bias=bias), LIMITS)
    assert dict(out.sampling.logit_bias) == {k: float(v) for k, v in bias.items()}


@pytest.mark.parametrize(("seed", "sent"), [(5, 5), (-1, (1 << 64) - 1), ((1 << 64) - 1, (1 << 64) - 1)])
def test_sdk_seed_takes_int64_and_uint64(seed: int, sent: int) -> None:
    assert call_spec(messages=USER, seed=seed).sampling.seed == sent


@pytest.mark.parametrize("seed", [1 << 64, -(1 << 63) - 1, 2.5, True])
def test_sdk_refuses_a_seed_past_64_bits_naming_it(seed: object) -> None:
    with pytest.raises(ValueError, match=r"seed must be a whole number from -9223372036854775808 "
                                         r"to 18446744073709551615, got"):
        call_spec(messages=USER, seed=seed)  # type: ignore[arg-type]


def test_normalize_fills_defaults_without_touching_the_input() -> None:
    spec = call_spec(messages=USER)
    out = normalize_call(spec, LIMITS)
    assert out.call_id and out.thread_id == "main"
    # the max tokens are set once the prompt is tokenized (tests/gateway/test_context_window.py)
    assert not out.sampling.HasField("max_new_tokens")
    assert spec.call_id == "" and not spec.sampling.HasField("max_new_tokens")


def test_a_bad_reasoning_effort_names_its_field() -> None:
    call = common_pb2.CallSpec(messages=[common_pb2.Message(role="user", content="hi")],
                               reasoning_effort="lots")
    with pytest.raises(InvalidCall) as exc:
        normalize_call(call, LIMITS)
    assert exc.value.param == "reasoning_effort"


@pytest.mark.parametrize("where", ["response_format", "tool parameters"])
def test_nan_and_infinity_in_a_json_field_are_refused(where: str) -> None:
    """Python's json reads them and writes them back as bare tokens no JSON parser takes
    (API review: a request holding one was echoed in an answer nobody could read)."""
    call = common_pb2.CallSpec(messages=[common_pb2.Message(role="user", content="hi")])
    if where == "response_format":
        call.response_format.type = common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA
        call.response_format.schema_json = '{"type": "number", "maximum": NaN}'
    else:
        call.tools.add(name="f", parameters_json='{"type": "object", "minimum": -Infinity}')
    with pytest.raises(InvalidCall, match=r"is not valid JSON: (NaN|-Infinity|Infinity) is not JSON"):
        normalize_call(call, LIMITS)


@pytest.mark.parametrize("arguments", ['{"city": "Par', "[1]", "1", '{"x": Infinity}', "",
                                       "{'city': 'Paris'}"])
def test_a_malformed_tool_call_in_the_history_is_served(arguments: str) -> None:
    """OpenAI serves it: a model that once wrote a malformed call (or a client that cut a
    streamed one short) must not leave its conversation refused on every later turn (it
    was: session 70). Kept as it came; the template gets the text (gateway/prompts.py)."""
    call = common_pb2.CallSpec(messages=[common_pb2.Message(role="user", content="hi")])
    call.messages.add(role="assistant").tool_calls.add(id="c1", name="f", arguments=arguments)
    call.messages.add(role="tool", content="bad arguments", tool_call_id="c1")
    assert normalize_call(call, LIMITS).messages[1].tool_calls[0].arguments == arguments
