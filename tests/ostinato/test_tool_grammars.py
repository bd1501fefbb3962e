"""The grammar of a JSON answer or tool calls (table tests): which families have one, its
two branches, and each call's begin and end as the family's own render writes them; for
gpt-oss, its harmony messages as our splitter and parser read them. (Whether xgrammar
admits these texts, and refuses calls that break their parameters: xgrammar is installed in
SGLang's environment only, tests/engine/test_structural_tags.py.)"""

from __future__ import annotations

import json

import pytest

from ostinato.harmony import CALL as CALL_END
from ostinato.harmony import HarmonyFormat
from ostinato.tool_formats import PARSERS, ParsedToolCall, get_parser, render_tool_calls
from ostinato.tool_grammars import KIMI_COUNTER, answer_or_calls

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
    "deepseekv3": ("json", CALL.arguments, "\n"),
    "deepseekv31": ("json", CALL.arguments, ""),
    "kimi_k2": ("json", CALL.arguments, ""),
}


def _tags(fmt: dict) -> dict:
    """The tags_with_separator inside a family's calls branch."""
    if fmt["type"] == "tags_with_separator":
        return fmt
    if fmt["type"] == "tag":  # a section's tokens around the calls
        return _tags(fmt["content"])
    return next(e for e in fmt["elements"] if e["type"] == "tags_with_separator")


def _arguments_format(tag: dict) -> dict:
    """The json_schema of a call's arguments (Kimi's after its counter and token)."""
    content = tag["content"]
    return content if content["type"] == "json_schema" else content["elements"][-1]


def _content(fmt: dict, arguments: str) -> str:
    """A tag's content as the grammar spells it: the arguments, Kimi's counter 0."""
    if fmt["type"] == "sequence":
        return "".join(_content(e, arguments) for e in fmt["elements"])
    if fmt["type"] == "regex":
        assert fmt["pattern"] == KIMI_COUNTER
        return "0"
    return fmt["value"] if fmt["type"] == "const_string" else arguments


def _spelled(calls: dict, tag: dict, arguments: str) -> str:
    """One call as the grammar spells it, with what wraps the calls (mistral's list, the
    special-token families' section)."""
    spelled = tag["begin"] + _content(tag["content"], arguments) + tag["end"]
    if calls["type"] == "sequence":
        spelled = calls["elements"][0]["value"] + spelled + calls["elements"][2]["value"]
    if calls["type"] == "tag":
        spelled = calls["begin"] + spelled + calls["end"]
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
    assert _arguments_format(by_name["ping"]) == {**content, "json_schema": {"type": "object"}}
    assert _arguments_format(by_name["search"]) == {**content, "json_schema": PARAMS}
    # one call as the grammar spells it is read by the family's parser as that call (as
    # its render writes it, but for llama3's <|python_tag|>, which a JSON call goes without)
    spelled = _spelled(calls, by_name["search"], arguments)
    assert get_parser(family).parse(spelled, TOOLS).tool_calls == (CALL,)
    assert spelled == render_tool_calls(family, [CALL]).removeprefix("<|python_tag|>")


@pytest.mark.parametrize(("family", "arguments"), [
    ("hermes", "{}"), ("llama3", "{}"), ("mistral", "{}"), ("deepseekv3", "{}"),
    ("deepseekv31", "{}"), ("kimi_k2", "{}"),
    ("qwen3_coder", ""),  # an empty line: the newlines of the tag's begin and end
    ("glm45", "")])
def test_a_call_without_arguments_as_the_grammar_spells_it_is_read(family: str,
                                                                   arguments: str) -> None:
    calls = json.loads(answer_or_calls(ANSWER, family, TOOLS, False) or "")["format"][
        "elements"][1]
    spelled = _spelled(calls, _tags(calls)["tags"][1], arguments)
    assert get_parser(family).parse(spelled, TOOLS).tool_calls == (PING,)


def test_every_model_family_has_a_grammar_but_forced_calls_json_array() -> None:
    assert set(PARSERS) - set(FAMILIES) == {"gpt-oss", "json_array"}
    assert answer_or_calls(ANSWER, "json_array", TOOLS, False) is None


def test_no_tools_no_grammar() -> None:
    assert answer_or_calls(ANSWER, "hermes", {}, False) is None


# gpt-oss: harmony messages, the role's header <|start|>assistant ending the prompt
HEADER = "<|start|>assistant"


def _gpt_oss(single: bool) -> tuple[dict, dict]:
    """(the answer's branch, the calls' branch) of gpt-oss's grammar."""
    tag = json.loads(answer_or_calls(ANSWER, "gpt-oss", TOOLS, single) or "")
    assert tag["type"] == "structural_tag" and tag["format"]["type"] == "or"
    answer, calls = tag["format"]["elements"]
    return answer, calls


def _opening(branch: dict) -> list[str]:
    """How a branch's message may be preceded: the role's header again, or the analysis
    (its text `Hm.` here) then the header."""
    opening, _ = branch["elements"]
    header, (analysis, header_again) = opening["elements"][0], opening["elements"][1]["elements"]
    assert header == header_again == {"type": "const_string", "value": HEADER}
    assert analysis["content"] == {"type": "any_text"}
    return [HEADER, analysis["begin"] + "Hm." + analysis["end"] + HEADER]


def _read(text: str) -> tuple[str, str]:
    """(thinking, answer) as the gateway's harmony splitter reads the output."""
    splitter = HarmonyFormat().splitter()
    thinking, answer = splitter.feed(text)
    more_thinking, more_answer = splitter.finish()
    return thinking + more_thinking, answer + more_answer


@pytest.mark.parametrize("single", [False, True])
def test_gpt_oss_calls_are_commentary_messages_to_the_function(single: bool) -> None:
    """Each call a message in commentary to=functions.NAME, <|constrain|>json with the blank
    before it (OpenAI's encoder, our renderer) or without (xgrammar's harmony tag); one
    call, which ends the turn (<|call|> is a stop token: the grammar ends where it comes)."""
    _, calls = _gpt_oss(single)
    tags = _tags(calls)
    assert tags["at_least_one"] and tags["stop_after_first"]
    assert [t["begin"] for t in tags["tags"]] == [
        f"<|channel|>commentary to=functions.{name}{blank}<|constrain|>json<|message|>"
        for name in TOOLS for blank in (" ", "")]
    assert {t["end"] for t in tags["tags"]} == {""}
    search, bare_search = tags["tags"][:2]
    assert _arguments_format(search)["json_schema"] == PARAMS
    assert _arguments_format(tags["tags"][2])["json_schema"] == {"type": "object"}
    # our render's call, but for its <|call|> (the engine cuts the stop token) is the grammar's
    rendered = render_tool_calls("gpt-oss", [CALL])
    assert rendered == HEADER + search["begin"] + CALL.arguments + CALL_END
    for opening in _opening(calls):
        for tag in (search, bare_search):
            text = opening + tag["begin"] + CALL.arguments
            thinking, answer = _read(text)
            assert thinking == ("Hm." if "analysis" in opening else "")
            # read through the splitter, and by the tool parser alone (thinking in the text)
            assert get_parser("gpt-oss").parse(answer, TOOLS).tool_calls == (CALL,)
            assert get_parser("gpt-oss").parse(text, TOOLS).tool_calls == (CALL,)


def test_gpt_oss_answers_in_the_final_channel() -> None:
    answer, _ = _gpt_oss(False)
    _, (final, schema) = answer["elements"][0], answer["elements"][1]["elements"]
    assert final == {"type": "const_string", "value": "<|channel|>final<|message|>"}
    assert schema == {"type": "json_schema", "json_schema": ANSWER, "max_whitespace_cnt": 16}
    for opening in _opening(answer):
        text = opening + final["value"] + '{"city": "Oslo"}'
        thinking, read = _read(text)
        assert json.loads(read) == {"city": "Oslo"}
        assert thinking == ("Hm." if "analysis" in opening else "")
        assert get_parser("gpt-oss").parse(read, TOOLS).tool_calls == ()

