"""deepseekv3, deepseekv31 and kimi_k2: calls framed by the model's special tokens."""

from __future__ import annotations

import json

import pytest

from ostinato.tool_formats import ParsedToolCall, ToolSchemas, get_parser
from tests.ostinato.tool_format_cases import Expected, assert_parsed, parse_params


def token(name: str) -> str:
    """DeepSeek's token, e.g. tool_sep (bars U+FF5C, spaces U+2581)."""
    return "<\uff5c" + name.replace("_", "\u2581") + "\uff5c>"


BEGIN, END = token("tool_calls_begin"), token("tool_calls_end")
CALL, CALL_END, SEP = token("tool_call_begin"), token("tool_call_end"), token("tool_sep")
K_BEGIN, K_END = "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>"
K_CALL, K_ARGS, K_CALL_END = "<|tool_call_begin|>", "<|tool_call_argument_begin|>", "<|tool_call_end|>"
TOOLS: ToolSchemas = {"get_weather": {}, "now": {}}
ONE_TOOL: ToolSchemas = {"get_weather": {}}
ARGS = '{"city": "Paris"}'
PARIS = ParsedToolCall("get_weather", json.dumps({"city": "Paris"}))
NOW = ParsedToolCall("now", "{}")


def v3(name: str, args: str) -> str:
    return f"{CALL}function{SEP}{name}\n```json\n{args}\n```{CALL_END}"


def v31(name: str, args: str) -> str:
    return f"{CALL}{name}{SEP}{args}{CALL_END}"


def kimi(call_id: str, args: str) -> str:
    return f"{K_CALL}{call_id}{K_ARGS}{args}{K_CALL_END}"


# (text, tools, (content, calls)); None: no calls, all of the text is the content
DEEPSEEKV3 = {
    "one call": (BEGIN + v3("get_weather", ARGS) + END, TOOLS, ("", [PARIS])),
    "two calls, content": ("Sure.\n" + BEGIN + v3("get_weather", ARGS) + "\n" + v3("now", "{}")
                           + END, TOOLS, ("Sure.", [PARIS, NOW])),
    "end token cut off": (BEGIN + v3("now", "{}"), TOOLS, ("", [NOW])),
    "double-encoded": (BEGIN + v3("get_weather", json.dumps(ARGS)) + END, TOOLS, ("", [PARIS])),
    "no fence": (BEGIN + f"{CALL}function{SEP}now\n{{}}{CALL_END}" + END, TOOLS, None),
    "V3.1 layout": (BEGIN + v31("now", "{}") + END, TOOLS, None),
    "bad JSON": (BEGIN + v3("now", "{") + END, TOOLS, None),
    "unknown tool": (BEGIN + v3("launch", "{}") + END, TOOLS, None),
    "no calls in section": (BEGIN + END, TOOLS, None),
    "text after": (BEGIN + v3("now", "{}") + END + " ok", TOOLS, None),
}

DEEPSEEKV31 = {
    "one call": (BEGIN + v31("get_weather", ARGS) + END, TOOLS, ("", [PARIS])),
    "two calls, content": ("Sure. " + BEGIN + v31("get_weather", ARGS) + v31("now", "{}") + END,
                           TOOLS, ("Sure.", [PARIS, NOW])),
    "end token cut off": (BEGIN + v31("now", "{}"), TOOLS, ("", [NOW])),
    "arguments not an object": (BEGIN + v31("now", "[]") + END, TOOLS, None),
    "V3 layout": (BEGIN + v3("now", "{}") + END, TOOLS, None),
    "cut in the arguments": (BEGIN + v31("get_weather", ARGS)[:-20], TOOLS, None),
    "any name without tools": (BEGIN + v31("launch", "{}") + END, {},
                               ("", [ParsedToolCall("launch", "{}")])),
}

KIMI_K2 = {
    "one call": (K_BEGIN + kimi("functions.get_weather:0", ARGS) + K_END, TOOLS, ("", [PARIS])),
    "two calls, content": ("Let me see." + K_BEGIN + kimi("functions.get_weather:3", ARGS)
                           + kimi("functions.now:4", "{}") + K_END, TOOLS,
                           ("Let me see.", [PARIS, NOW])),
    "no functions. prefix": (K_BEGIN + kimi("now:0", "{}") + K_END, TOOLS, ("", [NOW])),
    "spaces around the id": (K_BEGIN + kimi(" functions.now:1 ", " {} ") + K_END, TOOLS,
                             ("", [NOW])),
    "bare counter, one tool": (K_BEGIN + kimi("2", ARGS) + K_END, ONE_TOOL, ("", [PARIS])),
    "bare counter, two tools": (K_BEGIN + kimi("2", ARGS) + K_END, TOOLS, None),
    "id without a number": (K_BEGIN + kimi("functions.now", "{}") + K_END, TOOLS, None),
    "unknown tool": (K_BEGIN + kimi("functions.launch:0", "{}") + K_END, TOOLS, None),
    "missing call end": (K_BEGIN + f"{K_CALL}functions.now:0{K_ARGS}{{}}" + K_END, TOOLS, None),
}


@pytest.mark.parametrize(("family", "text", "tools", "expected"),
                         parse_params({"deepseekv3": DEEPSEEKV3, "deepseekv31": DEEPSEEKV31,
                                       "kimi_k2": KIMI_K2}))
def test_parse(family: str, text: str, tools: ToolSchemas, expected: Expected) -> None:
    assert_parsed(family, text, tools, expected)


def test_kimi_numbers_its_calls() -> None:
    assert get_parser("kimi_k2").numbered_ids
    assert not any(get_parser(name).numbered_ids for name in ("hermes", "deepseekv31", "glm45"))


@pytest.mark.parametrize(("family", "text", "expected"), [
    ("deepseekv3", "Sure. " + BEGIN[:3], 6),
    ("deepseekv31", "Sure. " + BEGIN + CALL, 6),
    ("kimi_k2", "Sure. <|tool_calls", 6),
    ("kimi_k2", "a <|im_end|>", 12),
])
def test_may_start(family: str, text: str, expected: int) -> None:
    assert get_parser(family).may_start(text) == expected
