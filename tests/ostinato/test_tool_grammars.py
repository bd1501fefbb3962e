"""The grammar of a JSON answer or tool calls (table tests): which families have one, its
two branches, and each call's begin and end as the family's own render writes them."""

from __future__ import annotations

import json

import pytest

from ostinato.tool_formats import PARSERS, ParsedToolCall, get_parser, render_tool_calls
from ostinato.tool_grammars import answer_or_calls

ANSWER = {"type": "object", "properties": {"city": {"type": "string"}}}
PARAMS = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
TOOLS = {"search": PARAMS, "ping": {}}
CALL = ParsedToolCall("search", '{"q": "x"}')
PING = ParsedToolCall("ping", "{}")

# family: (the style of a call's arguments, CALL's arguments in it, the tags' separator)
FAMILIES = {
    "hermes": ("json", CALL.arguments, "\n"),
    "qwen25": ("json", CALL.arguments, "\n"),
    "llama3": ("json", CALL.arguments, ";"),
    "mistral": ("json", CALL.arguments, ", "),
    "qwen3_coder": ("qwen_xml", "<parameter=q>\nx\n</parameter>", "\n"),
    "glm45": ("glm_xml", "<arg_key>q</arg_key>\n<arg_value>x</arg_value>\n", "\n"),
}


def _tags(fmt: dict) -> dict:
    """The tags_with_separator inside a family's calls branch."""
    return fmt if fmt["type"] == "tags_with_separator" else next(
        e for e in fmt["elements"] if e["type"] == "tags_with_separator")


def _spelled(calls: dict, tag: dict, arguments: str) -> str:
    """One call as the grammar spells it, with what wraps the calls (mistral's list)."""
    spelled = tag["begin"] + arguments + tag["end"]
    if calls["type"] == "sequence":
        spelled = calls["elements"][0]["value"] + spelled + calls["elements"][2]["value"]
    return spelled


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("single", [False, True])
def test_the_answer_or_the_calls_of_the_offered_tools(family: str, single: bool) -> None:
    style, arguments, separator = FAMILIES[family]
    tag = json.loads(answer_or_calls(ANSWER, family, TOOLS, single) or "")
    assert tag["type"] == "structural_tag" and tag["format"]["type"] == "or"
    answer, calls = tag["format"]["elements"]
    assert answer == {"type": "json_schema", "json_schema": ANSWER, "max_whitespace_cnt": 16}
    tags = _tags(calls)
    assert tags["at_least_one"] and tags["stop_after_first"] is single
    assert tags["separator"] == separator
    by_name = dict(zip(TOOLS, tags["tags"], strict=True))
    content = {"type": "json_schema", "max_whitespace_cnt": 16,
               **({} if style == "json" else {"style": style})}
    # arguments are an object, whatever the parameters leave unsaid
    assert by_name["ping"]["content"] == {**content, "json_schema": {"type": "object"}}
    assert by_name["search"]["content"] == {**content, "json_schema": PARAMS}
    # one call as the grammar spells it is read by the family's parser as that call (as
    # its render writes it, but for llama3's <|python_tag|>, which a JSON call goes without)
    spelled = _spelled(calls, by_name["search"], arguments)
    assert get_parser(family).parse(spelled, TOOLS).tool_calls == (CALL,)
    assert spelled == render_tool_calls(family, [CALL]).removeprefix("<|python_tag|>")


@pytest.mark.parametrize(("family", "arguments"), [
    ("hermes", "{}"), ("llama3", "{}"), ("mistral", "{}"),
    ("qwen3_coder", ""),  # an empty line: the newlines of the tag's begin and end
    ("glm45", "")])
def test_a_call_without_arguments_as_the_grammar_spells_it_is_read(family: str,
                                                                   arguments: str) -> None:
    calls = json.loads(answer_or_calls(ANSWER, family, TOOLS, False) or "")["format"][
        "elements"][1]
    spelled = _spelled(calls, _tags(calls)["tags"][1], arguments)
    assert get_parser(family).parse(spelled, TOOLS).tool_calls == (PING,)


@pytest.mark.parametrize("family", sorted(set(PARSERS) - set(FAMILIES)))
def test_families_without_a_call_grammar_have_none(family: str) -> None:
    assert answer_or_calls(ANSWER, family, TOOLS, False) is None


def test_no_tools_no_grammar() -> None:
    assert answer_or_calls(ANSWER, "hermes", {}, False) is None
