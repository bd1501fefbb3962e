"""A call as the model sees it: constraints, tools offered, parser chosen (table-driven)."""

from __future__ import annotations

import json

import pytest
from jsonschema import Draft202012Validator

from gateway.calls import CallLimits, normalize_call
from gateway.prompts import (
    ConflictingDefinitions,
    constraint,
    prepare,
    template_kwargs,
    template_messages,
    template_tools,
)
from ostinato.sdk_types import call_spec
from ostinato.tokenizers import load_renderer, load_tokenizer
from ostinato.v1 import common_pb2

M = common_pb2.ToolChoiceMode
PARAMS = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}


def call(choice: int = 0, name: str = "", parallel: bool | None = None,
         fmt: common_pb2.ResponseFormat | None = None, tools: tuple[str, ...] = ("search", "add")
         ) -> common_pb2.CallSpec:
    c = call_spec(messages=[{"role": "user", "content": "hi"}])
    for t in tools:
        c.tools.append(common_pb2.Tool(name=t, parameters_json=json.dumps(PARAMS)))
    c.tool_choice.mode = choice
    c.tool_choice.function_name = name
    if parallel is not None:
        c.parallel_tool_calls = parallel
    if fmt is not None:
        c.response_format.CopyFrom(fmt)
    return c


@pytest.mark.parametrize(("spec", "names", "max_items", "forced"), [
    (call(M.TOOL_CHOICE_MODE_REQUIRED), ["search", "add"], None, True),
    (call(M.TOOL_CHOICE_MODE_REQUIRED, parallel=False), ["search", "add"], 1, True),
    (call(M.TOOL_CHOICE_MODE_FUNCTION, "add"), ["add"], 1, True),
])
def test_forced_tool_choice_is_sglangs_call_array(spec: common_pb2.CallSpec, names: list[str],
                                                  max_items: int | None, forced: bool) -> None:
    schema_text, is_calls = constraint(spec)
    schema = json.loads(schema_text)
    assert is_calls is forced and schema["type"] == "array" and schema["minItems"] == 1
    assert schema.get("maxItems") == max_items
    branches = schema["items"]["anyOf"]
    assert [b["properties"]["name"]["enum"][0] for b in branches] == names
    assert all(b["properties"]["parameters"] == PARAMS for b in branches)


@pytest.mark.parametrize("fmt", [
    common_pb2.ResponseFormat(type=common_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT),
    common_pb2.ResponseFormat(type=common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
                              schema_json='{"type": "integer"}'),
])
@pytest.mark.parametrize("choice", [M.TOOL_CHOICE_MODE_REQUIRED, M.TOOL_CHOICE_MODE_FUNCTION])
def test_a_forced_call_is_constrained_to_the_call_not_to_the_format(
        fmt: common_pb2.ResponseFormat, choice: int) -> None:
    """OpenAI takes a forced call with a response_format (the Agents SDK sends both for an
    agent with an output type): this answer is the call; the format is for a later text one."""
    spec = call(choice, "add", fmt=fmt)
    normalize_call(spec, CallLimits(10_000, 100, 256, 4096))  # taken
    schema, is_calls = constraint(spec)
    assert is_calls and json.loads(schema)["type"] == "array"


LOC = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}


def _nested(defs: dict, where: str = "$defs") -> str:
    """Parameters as pydantic writes them for a nested model: a "$ref" into their own defs."""
    return json.dumps({"type": "object", "properties": {"loc": {"$ref": f"#/{where}/Loc"}},
                       "required": ["loc"], where: defs})


@pytest.mark.parametrize("where", ["$defs", "definitions"])
@pytest.mark.parametrize("choice", [M.TOOL_CHOICE_MODE_REQUIRED, M.TOOL_CHOICE_MODE_FUNCTION])
def test_forced_tool_choice_moves_tool_definitions_to_the_root(where: str, choice: int) -> None:
    spec = call(choice, "weather", tools=())
    for name in ("weather", "forecast"):  # both define Loc, alike: one definition
        spec.tools.append(common_pb2.Tool(name=name, parameters_json=_nested({"Loc": LOC}, where)))
    schema = json.loads(constraint(spec)[0])
    assert schema[where] == {"Loc": LOC}
    assert all(where not in b["properties"]["parameters"] for b in schema["items"]["anyOf"])
    validator = Draft202012Validator(schema)  # every "$ref" resolves from the root
    assert validator.is_valid([{"name": "weather", "parameters": {"loc": {"city": "Paris"}}}])
    assert not validator.is_valid([{"name": "weather", "parameters": {"loc": {"town": "P"}}}])


def test_tools_that_define_one_name_differently_cannot_be_forced() -> None:
    spec = call(M.TOOL_CHOICE_MODE_REQUIRED, tools=())
    spec.tools.append(common_pb2.Tool(name="a", parameters_json=_nested({"Loc": LOC})))
    spec.tools.append(common_pb2.Tool(name="b", parameters_json=_nested({"Loc": {"type": "string"}})))
    with pytest.raises(ConflictingDefinitions, match=r"\$defs/Loc"):
        constraint(spec)
    spec.tool_choice.mode = M.TOOL_CHOICE_MODE_AUTO  # offered, not forced: no one schema
    assert constraint(spec) == ("", False)


@pytest.mark.parametrize(("fmt", "expected"), [
    (common_pb2.ResponseFormat(), ""),
    (common_pb2.ResponseFormat(type=common_pb2.RESPONSE_FORMAT_TYPE_TEXT), ""),
    (common_pb2.ResponseFormat(type=common_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT), '{"type": "object"}'),
    (common_pb2.ResponseFormat(type=common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
                               schema_json='{"type": "integer"}'), '{"type": "integer"}'),
])
def test_response_format_maps_onto_json_schema(fmt: common_pb2.ResponseFormat, expected: str) -> None:
    assert constraint(call(fmt=fmt, tools=())) == (expected, False)


@pytest.mark.parametrize(("spec", "offered", "parser"), [
    (call(), 2, "hermes"),  # auto: the model's own format
    (call(M.TOOL_CHOICE_MODE_AUTO), 2, "hermes"),
    (call(M.TOOL_CHOICE_MODE_NONE), 0, None),  # none: tools are not shown, output is text
    (call(M.TOOL_CHOICE_MODE_REQUIRED), 2, "json_array"),
    (call(tools=()), 0, None),
])
def test_tools_offered_and_parser(spec: common_pb2.CallSpec, offered: int, parser: str | None) -> None:
    prepared = prepare(spec, load_renderer("sim", "hermes"), load_tokenizer("sim"), "hermes")
    assert len(template_tools(spec)) == offered
    assert (prepared.parser.name if prepared.parser else None) == parser
    assert ("<tools>" in prepared.text) is (offered > 0)


SCHEMA_FORMAT = common_pb2.ResponseFormat(type=common_pb2.RESPONSE_FORMAT_TYPE_JSON_SCHEMA,
                                          schema_json='{"type": "object"}')


@pytest.mark.parametrize(("spec", "family", "schema", "tagged"), [
    # tools offered with a JSON format: the answer or calls (ostinato/tool_grammars.py)
    (call(M.TOOL_CHOICE_MODE_AUTO, fmt=SCHEMA_FORMAT), "hermes", "", True),
    (call(fmt=common_pb2.ResponseFormat(type=common_pb2.RESPONSE_FORMAT_TYPE_JSON_OBJECT)),
     "llama3", "", True),
    (call(fmt=SCHEMA_FORMAT), "qwen3_coder", "", True),
    (call(fmt=SCHEMA_FORMAT), "glm45", "", True),
    (call(fmt=SCHEMA_FORMAT), "kimi_k2", "", True),
    (call(fmt=SCHEMA_FORMAT), "gpt-oss", "", True),
    # no tools offered, or a forced call: one JSON schema
    (call(M.TOOL_CHOICE_MODE_NONE, fmt=SCHEMA_FORMAT), "hermes", '{"type": "object"}', False),
    (call(tools=(), fmt=SCHEMA_FORMAT), "hermes", '{"type": "object"}', False),
    (call(), "hermes", "", False),
])
def test_a_json_format_beside_offered_tools_leaves_the_model_its_tools(
        spec: common_pb2.CallSpec, family: str, schema: str, tagged: bool) -> None:
    prepared = prepare(spec, load_renderer("sim", family), load_tokenizer("sim"), family)
    assert prepared.json_schema == schema and bool(prepared.structural_tag) is tagged
    if tagged:
        answer, _ = json.loads(prepared.structural_tag)["format"]["elements"]
        # the JSON itself, or (gpt-oss) the JSON in its final message
        assert _json_schemas(answer) == [{"type": "object"}]


def _json_schemas(fmt: object) -> list[object]:
    if isinstance(fmt, dict):
        own = [fmt["json_schema"]] if fmt.get("type") == "json_schema" else []
        return own + [s for v in fmt.values() for s in _json_schemas(v)]
    return [s for v in fmt for s in _json_schemas(v)] if isinstance(fmt, list) else []


def test_history_tool_calls_reach_the_template_as_objects() -> None:
    c = call_spec(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""},
                            {"role": "tool", "content": "42"}])
    c.messages[1].tool_calls.append(common_pb2.ToolCall(id="c1", name="add", arguments='{"a": 1}'))
    c.messages[2].tool_call_id = "c1"
    out = template_messages(c)
    assert out[1]["tool_calls"] == [{"id": "c1", "type": "function",
                                     "function": {"name": "add", "arguments": {"a": 1}}}]
    assert out[2] == {"role": "tool", "content": "42", "tool_call_id": "c1"}


def test_mistrals_history_ids_are_made_nine_letters_and_digits() -> None:
    """Mistral's templates refuse any other id: one another client or model gave is mapped,
    the same each time (the prompt's prefix stays cached); one already of 9 is kept."""
    c = call_spec(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""},
                            {"role": "tool", "content": "1"}, {"role": "assistant", "content": ""},
                            {"role": "tool", "content": "2"}])
    for at, call_id in ((1, "call_f3eb2de78e6540c2bdedcff0"), (3, "Ab3dE6gH9")):
        c.messages[at].tool_calls.append(common_pb2.ToolCall(id=call_id, name="add"))
        c.messages[at + 1].tool_call_id = call_id
    out = template_messages(c, short_ids=True)
    (first,), (second,) = out[1]["tool_calls"], out[3]["tool_calls"]
    assert len(first["id"]) == 9 and first["id"].isalnum() and first["id"] == out[2]["tool_call_id"]
    assert second["id"] == out[4]["tool_call_id"] == "Ab3dE6gH9"
    assert template_messages(c, short_ids=True) == out
    assert template_messages(c)[1]["tool_calls"][0]["id"] == "call_f3eb2de78e6540c2bdedcff0"


@pytest.mark.parametrize("arguments", ['{"a": 1', "[1]", '{"a": NaN}'])
def test_a_malformed_history_call_reaches_the_template_as_its_text(arguments: str) -> None:
    """Templates print a string as it is (Qwen's `arguments is string`) or `tojson` it; the
    sim model's writes it as a call with no arguments."""
    c = call_spec(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": ""},
                            {"role": "tool", "content": "bad arguments"}])
    c.messages[1].tool_calls.append(common_pb2.ToolCall(id="c1", name="add", arguments=arguments))
    c.messages[2].tool_call_id = "c1"
    assert template_messages(c)[1]["tool_calls"][0]["function"]["arguments"] == arguments
    text = prepare(c, load_renderer("sim"), load_tokenizer("sim"), "hermes").text
    assert '{"name": "add", "arguments": {}}' in text and "bad arguments" in text


def test_a_raw_prompt_is_tokenized_as_it_is() -> None:
    prepared = prepare(call_spec(prompt="Once upon a time"), load_renderer("sim"),
                       load_tokenizer("sim"), "hermes")
    assert prepared.text == "Once upon a time" and prepared.ids == load_tokenizer("sim")(prepared.text)


@pytest.mark.parametrize(("effort", "kwargs", "expected"), [
    ("", "", {}),
    ("", '{"enable_thinking": false}', {"enable_thinking": False}),
    ("low", "", {"reasoning_effort": "low", "thinking": True, "enable_thinking": True}),
    ("none", "", {"reasoning_effort": "none", "thinking": False, "enable_thinking": False}),
    # the caller's own variables win, as SGLang's setdefault lets them
    ("none", '{"enable_thinking": true, "x": 1}',
     {"reasoning_effort": "none", "thinking": False, "enable_thinking": True, "x": 1}),
    ("high", '{"reasoning_effort": "low"}',
     {"reasoning_effort": "low", "thinking": True, "enable_thinking": True}),
])
def test_reasoning_effort_reaches_the_template_as_sglangs_server_sends_it(
        effort: str, kwargs: str, expected: dict) -> None:
    call = common_pb2.CallSpec(messages=[common_pb2.Message(role="user", content="hi")],
                               reasoning_effort=effort, chat_template_kwargs=kwargs)
    assert template_kwargs(call) == expected


@pytest.mark.parametrize(("effort", "in_text", "thinks", "split"), [
    ("", False, True, True), ("none", False, False, True), ("high", False, True, True),
    ("", True, True, False)])
def test_the_sim_template_and_the_reasoning_split(effort: str, in_text: bool, thinks: bool,
                                                  split: bool) -> None:
    """Effort none closes the thinking in the sim template (Qwen3's enable_thinking); a call
    that keeps its thinking in its text is not split."""
    call = call_spec(messages=[{"role": "user", "content": "hi"}], reasoning_effort=effort,
                     reasoning_in_text=in_text)
    prepared = prepare(call, load_renderer("sim"), load_tokenizer("sim"), "hermes", "qwen3")
    assert prepared.text.endswith("<think>\n\n</think>\n\n") is not thinks
    assert (prepared.reasoning is not None) is split


@pytest.mark.parametrize(("effort", "kwargs", "inside"), [
    ("", None, True), ("high", None, True), ("none", None, False),
    ("", {"thinking": False}, False), ("", {"enable_thinking": False}, False),
    ("none", {"thinking": True, "enable_thinking": True}, True)])
def test_a_template_opened_thinking_is_not_assumed_when_switched_off(
        effort: str, kwargs: dict | None, inside: bool) -> None:
    """deepseek-r1's format starts inside the thinking (the template opens it), unless the
    call switches thinking off: then the output is read as it comes, as SGLang reads a
    toggled template."""
    call = call_spec(messages=[{"role": "user", "content": "hi"}], reasoning_effort=effort,
                     **({"chat_template_kwargs": kwargs} if kwargs else {}))
    prepared = prepare(call, load_renderer("sim"), load_tokenizer("sim"), "hermes",
                       "deepseek-r1")
    assert prepared.reasoning is not None and prepared.reasoning.starts_inside is inside


@pytest.mark.parametrize(("tool_format", "history", "numbers_from"), [
    ("kimi_k2", 0, 0),
    ("kimi_k2", 3, 3),  # the conversation's calls so far (SGLang's server counts them)
    ("hermes", 3, None),
    ("deepseekv31", 0, None),
])
def test_kimi_call_ids_number_the_conversations_calls(tool_format: str, history: int,
                                                     numbers_from: int | None) -> None:
    c = call()
    for i in range(history):
        c.messages.add(role="assistant").tool_calls.add(id=f"functions.add:{i}", name="add",
                                                       arguments="{}")
        c.messages.add(role="tool", content="1", tool_call_id=f"functions.add:{i}")
    prepared = prepare(c, load_renderer("sim", tool_format), load_tokenizer("sim"), tool_format)
    assert prepared.call_ids.numbered_from == numbers_from and not prepared.call_ids.short
    assert prepared.tools == {"search": PARAMS, "add": PARAMS}  # schemas type xml-format values


@pytest.mark.parametrize(("spec", "reasoning", "keep"), [
    (call(), "", True),  # tools offered: their tags may be special tokens
    (call(tools=()), "", False),
    (call(M.TOOL_CHOICE_MODE_NONE), "qwen3", False),
    (call(tools=()), "gpt-oss", True),  # harmony's messages are special tokens
])
def test_special_tokens_are_kept_as_sglangs_server_keeps_them(
        spec: common_pb2.CallSpec, reasoning: str, keep: bool) -> None:
    fmt = "gpt-oss" if reasoning == "gpt-oss" else "hermes"
    prepared = prepare(spec, load_renderer("sim", fmt), load_tokenizer("sim"), fmt, reasoning)
    assert prepared.keep_special_tokens is keep
