"""OpenAI's tool_choice allowed_tools (chat, Responses and the SDK's form): the calls among
the allowed tools only; under "required" constrained to them with every tool in the prompt
(the prompt the same whichever are allowed), under "auto" only they offered. It was a 400
(framework review F5)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from gateway.calls import CallLimits, InvalidCall, normalize_call
from gateway.openai_format import BadRequest, call_from_openai
from gateway.prompts import prepare, template_tools
from gateway.responses_api import call_from_responses
from ostinato.sdk_types import call_spec
from ostinato.tokenizers import load_renderer, load_tokenizer
from ostinato.v1 import common_pb2

M = common_pb2.ToolChoiceMode
LIMITS = CallLimits(max_prompt_chars=10_000, max_messages=16, default_max_new_tokens=64,
                    max_new_tokens_limit=512)
USER = [{"role": "user", "content": "hi"}]
TOOLS = [{"type": "function", "function": {"name": n, "parameters": {
    "type": "object", "properties": {"q": {"type": "string"}}}}} for n in ("a", "b", "c")]


def chat_choice(mode: str, *names: str) -> dict[str, Any]:
    return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": [
        {"type": "function", "function": {"name": n}} for n in names]}}


@pytest.mark.parametrize("form", ["chat", "responses", "sdk"])
def test_each_form_is_read_alike(form: str) -> None:
    if form == "chat":
        spec = call_from_openai({"messages": USER, "tools": TOOLS,
                                 "tool_choice": chat_choice("required", "b", "c")}, None)
    elif form == "responses":
        spec, _ = call_from_responses({"input": "hi", "tools": [
            {"type": "function", "name": n} for n in ("a", "b", "c")], "tool_choice": {
            "type": "allowed_tools", "mode": "required", "tools": [
                {"type": "function", "name": "b"}, {"type": "function", "name": "c"}]}}, None)
    else:
        spec = call_spec(messages=USER, tools=TOOLS, tool_choice=chat_choice("required", "b", "c"))
    assert (spec.tool_choice.mode, list(spec.tool_choice.allowed_tools)) == (
        M.TOOL_CHOICE_MODE_REQUIRED, ["b", "c"])


@pytest.mark.parametrize("choice", [
    chat_choice("none", "a"),  # auto or required only
    chat_choice("required"),  # at least one
    {"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": [{"type": "mcp"}]}},
    {"type": "allowed_tools"},
])
def test_a_malformed_allowed_tools_is_a_400(choice: dict[str, Any]) -> None:
    with pytest.raises(BadRequest) as err:
        call_from_openai({"messages": USER, "tools": TOOLS, "tool_choice": choice}, None)
    assert err.value.param == "tool_choice"


@pytest.mark.parametrize(("mode", "names", "refusal"), [
    (M.TOOL_CHOICE_MODE_REQUIRED, ["a", "z"], "'z', which is not among the tools"),
    (M.TOOL_CHOICE_MODE_UNSPECIFIED, ["z"], "'z', which is not among the tools"),
    (M.TOOL_CHOICE_MODE_NONE, ["a"], "auto or required"),
])
def test_allowed_tools_name_the_calls_tools(mode: int, names: list[str],
                                                refusal: str) -> None:
    spec = call_spec(messages=USER, tools=TOOLS)
    spec.tool_choice.mode = mode  # type: ignore[assignment]
    spec.tool_choice.allowed_tools.extend(names)
    with pytest.raises(InvalidCall, match=refusal):
        normalize_call(spec, LIMITS)


def _prepared(mode: str) -> Any:
    spec = normalize_call(call_from_openai({"messages": USER, "tools": TOOLS, "tool_choice":
                                            chat_choice(mode, "b", "c")}, None), LIMITS)
    return spec, prepare(spec, load_renderer("sim"), load_tokenizer("sim"), "hermes")


def test_required_constrains_the_calls_to_them_with_every_tool_in_the_prompt() -> None:
    spec, prepared = _prepared("required")
    branches = json.loads(prepared.json_schema)["items"]["anyOf"]
    assert [b["properties"]["name"]["enum"] for b in branches] == [["b"], ["c"]]
    assert [t["function"]["name"] for t in template_tools(spec)] == ["a", "b", "c"]
    assert set(prepared.tools) == {"b", "c"}  # a call of "a" is not read as one


def test_a_tool_named_twice_is_one_and_an_unset_mode_is_auto() -> None:
    spec = call_spec(messages=USER, tools=TOOLS)
    spec.tool_choice.allowed_tools.extend(["b", "b"])
    out = normalize_call(spec, LIMITS)
    prepared = prepare(out, load_renderer("sim"), load_tokenizer("sim"), "hermes")
    assert set(prepared.tools) == {"b"} and not prepared.json_schema


def test_auto_offers_only_them() -> None:
    spec, prepared = _prepared("auto")
    assert not prepared.json_schema
    assert [t["function"]["name"] for t in template_tools(spec)] == ["b", "c"]
    assert set(prepared.tools) == {"b", "c"}
