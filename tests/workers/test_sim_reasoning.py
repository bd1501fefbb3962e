"""A thinking sim model under constrained decoding, as SGLang launched with --reasoning-parser
serves it (workers/sim/reasoning_gate.py; sglang/srt/constrained/reasoner_grammar_backend.py):
with the request's require_reasoning it thinks free, the grammar applies from the thinking's
end tag on; without, from the first token (no thinking, unless the grammar admits it:
gpt-oss's analysis); with the thinking closed by its template the end tag never comes and the
grammar never applies; without a reasoning format there is no gate."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest

from gateway.prompts import thinks_first
from ostinato.harmony import END, HarmonyFormat
from ostinato.reasoning_formats import REASONING_FORMATS
from ostinato.tool_formats import get_parser
from ostinato.tool_grammars import answer_or_calls
from workers.sim.chat_template import render
from workers.sim.generate_request import BadRequest, parse_generate
from workers.sim.reasoning_gate import require_reasoning

ANSWER = {"type": "object", "properties": {"city": {"type": "string"},
                                           "days": {"type": "integer", "minimum": 1}},
          "required": ["city", "days"]}
FORECAST = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [{"type": "function", "function": {"name": "forecast", "parameters": FORECAST}}]
USER = [{"role": "user", "content": "Plan a trip."}]
CALLS = {"type": "array", "minItems": 1, "items": {"type": "object", "properties": {
    "name": {"enum": ["forecast"]}, "parameters": FORECAST}, "required": ["name", "parameters"]}}


def _sample(fmt: str, prompt: str, required: Any, family: str = "hermes",
            **sp: str) -> tuple[str, str | None]:
    body: dict[str, Any] = {"text": prompt, "sampling_params": sp}
    if required is not None:
        body["require_reasoning"] = required
    (req,) = parse_generate(body, family, fmt)
    return req.preamble, req.script


def _tag(family: str) -> str:
    tag = answer_or_calls(ANSWER, family, {"forecast": FORECAST}, False)
    assert tag is not None
    return tag


THINKING_ON, THINKING_OFF = render(USER), render(USER, enable_thinking=False)
WITH_TOOLS = render(USER, TOOLS)
WITH_TOOLS_OFF = render(USER, TOOLS, enable_thinking=False)
HARMONY_TOOLS = render(USER, TOOLS, tool_format="gpt-oss")
# (reasoning format, prompt, require_reasoning, constraint, thinking: "whole" / "to_end"
# (up to and with its end tag) / "none", answer: "schema" / "calls" / "tagged" / "free")
CASES = [
    ("qwen3", THINKING_ON, True, {"json_schema": json.dumps(ANSWER)}, "to_end", "schema"),
    ("qwen3", THINKING_ON, False, {"json_schema": json.dumps(ANSWER)}, "none", "schema"),
    ("qwen3", THINKING_ON, None, {"json_schema": json.dumps(ANSWER)}, "none", "schema"),
    ("qwen3", THINKING_ON, True, {}, "whole", "free"),
    ("qwen3", THINKING_ON, False, {}, "whole", "free"),
    ("qwen3", THINKING_OFF, False, {"json_schema": json.dumps(ANSWER)}, "none", "schema"),
    ("qwen3", THINKING_OFF, True, {"json_schema": json.dumps(ANSWER)}, "none", "free"),
    ("qwen3", WITH_TOOLS, True, {"json_schema": json.dumps(CALLS)}, "to_end", "schema-calls"),
    ("qwen3", WITH_TOOLS, True, {"structural_tag": _tag("hermes")}, "to_end", "tagged"),
    ("qwen3", WITH_TOOLS, False, {"structural_tag": _tag("hermes")}, "none", "tagged"),
    ("qwen3", WITH_TOOLS_OFF, True, {"structural_tag": _tag("hermes")}, "none", "free-call"),
    ("deepseek-r1", THINKING_ON, True, {"json_schema": json.dumps(ANSWER)}, "to_end", "schema"),
    ("deepseek-r1", THINKING_ON, False, {"json_schema": json.dumps(ANSWER)}, "none", "schema"),
    ("kimi", THINKING_ON, True, {"json_schema": json.dumps(ANSWER)}, "to_end", "schema"),
    ("gpt-oss", THINKING_ON, True, {"json_schema": json.dumps(ANSWER)}, "to_end", "schema"),
    ("gpt-oss", THINKING_ON, False, {"json_schema": json.dumps(ANSWER)}, "none", "schema"),
    # gpt-oss's structural tag takes its analysis: thinking either way
    ("gpt-oss", HARMONY_TOOLS, False, {"structural_tag": _tag("gpt-oss")}, "whole", "tagged"),
    ("gpt-oss", HARMONY_TOOLS, True, {"structural_tag": _tag("gpt-oss")}, "to_end", "tagged"),
    # a model that does not think: no gate, require_reasoning or not
    ("", THINKING_ON, True, {"json_schema": json.dumps(ANSWER)}, "none", "schema"),
]


def _calls(family: str, fmt: str, preamble: str, script: str | None) -> int:
    """How many calls the gateway reads from the output's answer."""
    splitter = REASONING_FORMATS[fmt].splitter()
    answer = splitter.feed(preamble + (script or ""))[1] + splitter.finish()[1]
    return len(get_parser(family).parse(answer, {"forecast": FORECAST}).tool_calls)


def _end(fmt: str) -> str:
    reasoning = REASONING_FORMATS[fmt]
    return END if isinstance(reasoning, HarmonyFormat) else reasoning.end


@pytest.mark.parametrize(("fmt", "prompt", "required", "sp", "thinks", "answer"), CASES)
def test_the_grammar_starts_where_sglangs_gate_lets_it(
        fmt: str, prompt: str, required: bool | None, sp: dict[str, str], thinks: str,
        answer: str) -> None:
    family = "gpt-oss" if fmt == "gpt-oss" else "hermes"
    preamble, script = _sample(fmt, prompt, required, family, **sp)
    if thinks == "none":
        assert preamble == ""
    elif thinks == "to_end":  # the grammar's output follows the end tag at once
        assert preamble.endswith(_end(fmt)) and preamble.count(_end(fmt)) == 1
    else:
        unconstrained, _ = _sample(fmt, prompt, required, family)
        assert preamble == unconstrained and preamble
    if answer.startswith("schema"):
        assert script is not None
        jsonschema.validate(json.loads(script), CALLS if answer == "schema-calls" else ANSWER)
    elif answer == "tagged":
        assert script == _sample(fmt, prompt, False, family, **sp)[1]
        assert _calls(family, fmt, preamble, script) == 1  # the tools' turn: a call
    elif answer == "free-call":  # never constrained: what it writes free, a call
        assert script is not None and script == _sample(fmt, prompt, True, family)[1]
        assert _calls(family, fmt, preamble, script) == 1
    else:
        assert script is None  # free text (the decoder's words)


def test_the_thinking_comes_first_then_the_constrained_answer_in_the_output() -> None:
    """The whole output, as the gateway's splitter reads it: the thinking, then the JSON."""
    preamble, script = _sample("qwen3", THINKING_ON, True, json_schema=json.dumps(ANSWER))
    splitter = REASONING_FORMATS["qwen3"].splitter()
    thinking, answer = splitter.feed(preamble + (script or ""))
    more_thinking, more_answer = splitter.finish()
    assert thinking + more_thinking and "think>" not in thinking + more_thinking
    jsonschema.validate(json.loads(answer + more_answer), ANSWER)


@pytest.mark.parametrize(("value", "message"), [
    (1, "invalid type: integer `1`, expected a boolean"),
    ("yes", 'invalid type: string "yes", expected a boolean'),
    ([], "invalid type: sequence, expected a boolean"),
])
def test_require_reasoning_must_be_a_boolean_as_sglang_says(value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        require_reasoning({"require_reasoning": value})
    with pytest.raises(BadRequest, match=message):
        parse_generate({"text": "x", "require_reasoning": value})


@pytest.mark.parametrize(("fmt", "raw", "kwargs", "expected"), [
    ("qwen3", False, {}, True),
    ("qwen3", False, {"enable_thinking": False}, False),
    ("qwen3", False, {"enable_thinking": True}, True),
    ("deepseek-r1", False, {"thinking": False}, False),
    ("kimi", False, {"reasoning_effort": "none", "thinking": False, "enable_thinking": False},
     False),
    ("gpt-oss", False, {"enable_thinking": False}, True),  # always thinks
    ("qwen3", True, {}, False),  # a raw prompt: /generate's default
    ("", False, {}, False),
])
def test_the_gateway_asks_for_the_gate_where_sglangs_server_would(
        fmt: str, raw: bool, kwargs: dict[str, object], expected: bool) -> None:
    assert thinks_first(fmt, raw, kwargs) is expected
