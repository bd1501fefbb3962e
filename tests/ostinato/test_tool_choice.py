"""OpenAI's tool_choice read once for the gateway and the SDK (table-driven)."""

from __future__ import annotations

import re

import pytest

from gateway.openai_fields import BadRequest
from gateway.openai_tools import tool_choice_of
from ostinato.sdk_types import call_spec
from ostinato.tool_choice import ALLOWED_EXPECTED, EXPECTED, tool_choice
from ostinato.v1 import common_pb2

AUTO, NONE = common_pb2.TOOL_CHOICE_MODE_AUTO, common_pb2.TOOL_CHOICE_MODE_NONE
REQUIRED, FUNCTION = common_pb2.TOOL_CHOICE_MODE_REQUIRED, common_pb2.TOOL_CHOICE_MODE_FUNCTION


def fn(name: object) -> dict[str, object]:
    return {"type": "function", "function": {"name": name}}


def allowed(mode: object, *tools: object) -> dict[str, object]:
    return {"type": "allowed_tools", "allowed_tools": {"mode": mode, "tools": list(tools)}}


@pytest.mark.parametrize(("raw", "mode", "name", "names"), [
    (None, common_pb2.TOOL_CHOICE_MODE_UNSPECIFIED, "", []),
    ("auto", AUTO, "", []),
    ("none", NONE, "", []),
    ("required", REQUIRED, "", []),
    (fn("add"), FUNCTION, "add", []),
    (allowed("auto", fn("add")), AUTO, "", ["add"]),
    (allowed("required", fn("add"), fn("mul"), fn("add")), REQUIRED, "", ["add", "mul", "add"]),
])
def test_every_form_reads_the_same_in_the_gateway_and_the_sdk(
        raw: object, mode: int, name: str, names: list[str]) -> None:
    want = common_pb2.ToolChoice(mode=mode, function_name=name, allowed_tools=names)  # type: ignore[arg-type]
    assert tool_choice(raw) == want
    assert tool_choice_of({"tool_choice": raw}) == want
    assert call_spec(prompt="x", tool_choice=raw).tool_choice == want  # type: ignore[arg-type]


@pytest.mark.parametrize(("raw", "words"), [
    ("add", EXPECTED),  # a bare name: the SDK's shorthand only
    ("", EXPECTED),
    (3, EXPECTED),
    ({"type": "function"}, EXPECTED),
    (fn(""), EXPECTED),
    (fn(7), EXPECTED),
    ({"type": "function", "function": "add"}, EXPECTED),
    ({"type": "web_search"}, EXPECTED),
    (allowed("none", fn("add")), ALLOWED_EXPECTED),
    (allowed(None, fn("add")), ALLOWED_EXPECTED),
    (allowed("auto"), ALLOWED_EXPECTED),  # at least one
    (allowed("auto", fn("add"), {"type": "web_search"}), ALLOWED_EXPECTED),
    (allowed("auto", fn("add"), fn("")), ALLOWED_EXPECTED),
    (allowed("auto", "add"), ALLOWED_EXPECTED),
    ({"type": "allowed_tools", "allowed_tools": {"mode": "auto", "tools": "add"}},
     ALLOWED_EXPECTED),
    ({"type": "allowed_tools"}, ALLOWED_EXPECTED),
])
def test_what_is_no_form_is_refused_alike(raw: object, words: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(words)}$"):
        tool_choice(raw)
    with pytest.raises(BadRequest) as refused:
        tool_choice_of({"tool_choice": raw})
    assert str(refused.value) == words
    if raw != "add":
        with pytest.raises(ValueError, match="tool_choice"):
            call_spec(prompt="x", tool_choice=raw)  # type: ignore[arg-type]


def test_the_sdk_takes_a_tools_bare_name() -> None:
    assert tool_choice("add", bare_names=True) == common_pb2.ToolChoice(
        mode=FUNCTION, function_name="add")
    assert call_spec(prompt="x", tool_choice="add").tool_choice.function_name == "add"
