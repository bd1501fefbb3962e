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


def _tags(fmt: dict) -> dict:
    """The tags_with_separator inside a family's calls branch."""
    return fmt if fmt["type"] == "tags_with_separator" else next(
        e for e in fmt["elements"] if e["type"] == "tags_with_separator")


@pytest.mark.parametrize("family", ["hermes", "qwen25", "llama3", "mistral"])
@pytest.mark.parametrize("single", [False, True])
def test_the_answer_or_the_calls_of_the_offered_tools(family: str, single: bool) -> None:
    tag = json.loads(answer_or_calls(ANSWER, family, TOOLS, single) or "")
    assert tag["type"] == "structural_tag" and tag["format"]["type"] == "or"
    answer, calls = tag["format"]["elements"]
    assert answer == {"type": "json_schema", "json_schema": ANSWER, "max_whitespace_cnt": 16}
    tags = _tags(calls)
    assert tags["at_least_one"] and tags["stop_after_first"] is single
    by_name = {json.loads(t["begin"][t["begin"].index("{"):] + '""}')["name"]: t
               for t in tags["tags"]}
    assert set(by_name) == set(TOOLS)
    # arguments are an object, whatever the parameters leave unsaid
    assert by_name["ping"]["content"]["json_schema"] == {"type": "object"}
    assert by_name["search"]["content"]["json_schema"] == PARAMS
    # one call as the grammar spells it is read by the family's parser as that call (as
    # its render writes it, but for llama3's <|python_tag|>, which a JSON call goes without)
    t = by_name["search"]
    spelled = t["begin"] + CALL.arguments + t["end"]
    if calls["type"] == "sequence":
        spelled = calls["elements"][0]["value"] + spelled + calls["elements"][2]["value"]
    assert get_parser(family).parse(spelled, TOOLS).tool_calls == (CALL,)
    assert spelled == render_tool_calls(family, [CALL]).removeprefix("<|python_tag|>")


@pytest.mark.parametrize("family", sorted(set(PARSERS) - {"hermes", "qwen25", "llama3",
                                                            "mistral"}))
def test_families_without_a_json_call_grammar_have_none(family: str) -> None:
    assert answer_or_calls(ANSWER, family, TOOLS, False) is None


def test_no_tools_no_grammar() -> None:
    assert answer_or_calls(ANSWER, "hermes", {}, False) is None
