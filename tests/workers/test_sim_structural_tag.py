"""The sim engine under a structural tag (workers/sim/structural_tag.py), table tests: the
calls it writes in the XML families (qwen3_coder, glm45: xgrammar's qwen_xml and glm_xml
styles), the special-token sections (deepseekv3, deepseekv31, kimi_k2) and gpt-oss's harmony
messages (after its thinking) are read back by our parsers as the arguments it meant, and
what it cannot write is refused. (That real xgrammar admits this text:
tests/engine/test_structural_tags.py.)"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from ostinato.harmony import START, HarmonyFormat
from ostinato.tool_formats import get_parser
from ostinato.tool_grammars import answer_or_calls
from workers.sim.json_instance import UnsupportedSchema, instance
from workers.sim.structural_tag import written, written_for

ANSWER = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {"type": "object", "properties": properties,
            "required": list(properties) if required is None else required}


# tool parameters: what each value's text must be read back as
PARAMETERS: dict[str, dict[str, Any]] = {
    "strings": _object({"city": {"type": "string"}, "unit": {"enum": ["c", "f"]},
                        "day": {"type": "string", "format": "date"},
                        "code": {"type": "string", "minLength": 3, "maxLength": 6}}),
    "numbers": _object({"days": {"type": "integer", "minimum": 1, "maximum": 9},
                        "ratio": {"type": "number"}, "metric": {"type": "boolean"}}),
    "optional and null": _object({"q": {"type": "string"},
                                  "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
                                  "n": {"type": ["integer", "null"]}}, required=["q"]),
    "nested JSON": _object({"filters": _object({"stars": {"type": "array", "items": {
        "type": "integer"}}}), "tags": {"type": "array", "items": {"type": "string"},
                                        "minItems": 2}}),
    "no parameters": {},
}


@pytest.mark.parametrize("family", ["qwen3_coder", "glm45"])
@pytest.mark.parametrize("case", PARAMETERS)
@pytest.mark.parametrize("choice", [0, 1, 7])
def test_the_xml_calls_it_writes_are_read_back_as_meant(family: str, case: str,
                                                        choice: int) -> None:
    params = PARAMETERS[case]
    tools = {"f": params}
    text = written_for(answer_or_calls(ANSWER, family, tools, single=False) or "", choice,
                       wants_call=True)
    meant = instance({**params, "type": "object"}, choice)
    [call] = get_parser(family).parse(text, tools).tool_calls
    assert call.name == "f" and json.loads(call.arguments) == meant, text
    jsonschema.validate(meant, {**params, "type": "object"})


@pytest.mark.parametrize("family", ["qwen3_coder", "glm45"])
def test_without_a_call_it_answers_the_json(family: str) -> None:
    tag = answer_or_calls(ANSWER, family, {"f": PARAMETERS["numbers"]}, single=True) or ""
    jsonschema.validate(json.loads(written_for(tag, 3, wants_call=False)), ANSWER)


SPECIAL_FAMILIES = ("deepseekv3", "deepseekv31", "kimi_k2", "gpt-oss")


def harmony_thinking(text: str) -> str:
    """The sim's gpt-oss output: its thinking (an analysis; no final header of its own when
    the text opens a message, as the grammar's answer and calls do), then `text`."""
    return HarmonyFormat().thinking("Hm.", before_call=text.startswith(START)) + text


def _read(family: str, text: str) -> tuple[str, str]:
    """(thinking, answer) of the sim's whole output, as the gateway splits it."""
    if family != "gpt-oss":
        return "", text
    splitter = HarmonyFormat().splitter()
    thinking, answer = splitter.feed(harmony_thinking(text))
    more_thinking, more_answer = splitter.finish()
    return thinking + more_thinking, answer + more_answer


@pytest.mark.parametrize("family", SPECIAL_FAMILIES)
@pytest.mark.parametrize("case", PARAMETERS)
@pytest.mark.parametrize("choice", [0, 1, 7])
def test_the_special_token_calls_it_writes_are_read_back_as_meant(family: str, case: str,
                                                                  choice: int) -> None:
    params = PARAMETERS[case]
    tools = {"f": params}
    text = written_for(answer_or_calls(ANSWER, family, tools, single=False) or "", choice,
                       wants_call=True)
    thinking, answer = _read(family, text)
    assert thinking == ("Hm." if family == "gpt-oss" else "")
    meant = instance({**params, "type": "object"}, choice)
    [call] = get_parser(family).parse(answer, tools).tool_calls
    assert call.name == "f" and json.loads(call.arguments) == meant, text


@pytest.mark.parametrize("family", SPECIAL_FAMILIES)
def test_without_a_call_it_answers_the_json_in_the_special_families(family: str) -> None:
    tag = answer_or_calls(ANSWER, family, {"f": PARAMETERS["numbers"]}, single=True) or ""
    text = written_for(tag, 3, wants_call=False)
    _, answer = _read(family, text)
    jsonschema.validate(json.loads(answer), ANSWER)
    assert (text.startswith(f"{START}assistant<|channel|>final<|message|>")
            is (family == "gpt-oss"))


@pytest.mark.parametrize(("fmt", "refused"), [
    ({"type": "json_schema", "json_schema": {"type": "object"}, "style": "minimax_xml"},
     "style 'minimax_xml'"),
    ({"type": "json_schema", "json_schema": {"type": "integer"}, "style": "qwen_xml"},
     "writes an object's properties"),
    ({"type": "regex", "pattern": "a+"}, "'regex'"),
    ({"type": "tag", "begin": "<think>", "content": {"type": "any_text"}, "end": "</think>"},
     "'any_text'"),
])
def test_what_it_cannot_write_is_refused(fmt: dict[str, Any], refused: str) -> None:
    with pytest.raises(UnsupportedSchema, match=refused):
        written(fmt, 0, wants_call=True)
