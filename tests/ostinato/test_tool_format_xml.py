"""qwen3_coder and glm45: calls with one tag per argument, values typed by the tools' schemas."""

from __future__ import annotations

import json

import pytest

from ostinato.tool_format_xml import glm45_arguments, qwen3_coder_parameters
from ostinato.tool_formats import ParsedToolCall, ToolSchemas, get_parser
from tests.ostinato.tool_format_cases import Expected, assert_parsed, parse_params

TOOLS: ToolSchemas = {
    "get_weather": {"type": "object", "properties": {
        "city": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"},
        "hours": {"type": "array"}}},
    "now": {},
}


def call(name: str, **arguments: object) -> ParsedToolCall:
    return ParsedToolCall(name, json.dumps(arguments, ensure_ascii=False))


def qwen(name: str, *params: tuple[str, str]) -> str:
    body = "".join(f"<parameter={k}>\n{v}\n</parameter>\n" for k, v in params)
    return f"<tool_call>\n<function={name}>\n{body}</function>\n</tool_call>"


def glm(name: str, *args: tuple[str, str]) -> str:
    body = "".join(f"<arg_key>{k}</arg_key>\n<arg_value>{v}</arg_value>\n" for k, v in args)
    return f"<tool_call>{name}\n{body}</tool_call>"


PARIS = call("get_weather", city="Paris", days=3)
NOW = call("now")

# (text, tools, (content, calls)); None: no calls, all of the text is the content
QWEN3_CODER = {
    "one call, typed": (qwen("get_weather", ("city", "Paris"), ("days", "3")), TOOLS,
                        ("", [PARIS])),
    "content before": ("Let me see.\n\n" + qwen("now"), TOOLS, ("Let me see.", [NOW])),
    "two blocks": (qwen("now") + "\n" + qwen("get_weather", ("city", "Paris"), ("days", "3")),
                   TOOLS, ("", [NOW, PARIS])),
    "two functions in one block": (
        "<tool_call>\n<function=now>\n</function>\n<function=now>\n</function>\n</tool_call>",
        TOOLS, ("", [NOW, NOW])),
    "multi-line value": (qwen("get_weather", ("city", "line 1\nline 2\n")), TOOLS,
                         ("", [call("get_weather", city="line 1\nline 2\n")])),
    "no newlines": ("<tool_call><function=get_weather><parameter=city>Rome</parameter>"
                    "</function></tool_call>", TOOLS, ("", [call("get_weather", city="Rome")])),
    # as a structural tag's qwen_xml style lets a model write them (ostinato/tool_grammars.py)
    "no arguments, an empty line": ("<tool_call>\n<function=now>\n\n</function>\n</tool_call>",
                                    TOOLS, ("", [NOW])),
    "blanks around a JSON value": (qwen("get_weather", ("days", " \t3  "), ("hours", " [1] ")),
                                   TOOLS, ("", [call("get_weather", days=3, hours=[1])])),
    "typed values": (qwen("get_weather", ("metric", "True"), ("hours", "[1, 2]"),
                          ("days", "null")), TOOLS,
                     ("", [call("get_weather", metric=True, hours=[1, 2], days=None)])),
    "undeclared argument stays text": (qwen("get_weather", ("extra", "5")), TOOLS,
                                       ("", [call("get_weather", extra="5")])),
    "no schemas: all text": (qwen("x", ("n", "5")), {}, ("", [call("x", n="5")])),
    "value with tags": (qwen("get_weather", ("city", "<b>Paris</b>")), TOOLS,
                        ("", [call("get_weather", city="<b>Paris</b>")])),
    "unknown tool": (qwen("launch", ("n", "1")), TOOLS, None),
    "unclosed parameter": ("<tool_call>\n<function=now>\n<parameter=a>\n1\n</function>\n"
                           "</tool_call>", TOOLS, None),
    "missing </tool_call>": ("<tool_call>\n<function=now>\n</function>\n", TOOLS, None),
    "cut mid-call": (qwen("get_weather", ("city", "Paris"))[:40], TOOLS, None),
    "text after": (qwen("now") + "\nDone.", TOOLS, None),
    "empty block": ("<tool_call>\n</tool_call>", TOOLS, None),
    "empty name": (qwen(""), {}, None),
    "name across lines": ("<tool_call>\n<function=now\n>\n</function>\n</tool_call>", TOOLS,
                          None),
    "no calls": ("Paris is sunny.", TOOLS, None),
}

GLM45 = {
    "one call, typed": (glm("get_weather", ("city", "Paris"), ("days", "3")), TOOLS,
                        ("", [PARIS])),
    "content before": ("Checking.\n" + glm("now"), TOOLS, ("Checking.", [NOW])),
    "two calls": (glm("now") + "\n" + glm("now"), TOOLS, ("", [NOW, NOW])),
    "name then </tool_call>": ("<tool_call>now</tool_call>", TOOLS, ("", [NOW])),
    # as a structural tag's glm_xml style lets a model write them (ostinato/tool_grammars.py)
    "no blanks between the tags": ("<tool_call>get_weather\n<arg_key>city</arg_key><arg_value>"
                                   "Oslo</arg_value><arg_key>days</arg_key><arg_value>2"
                                   "</arg_value></tool_call>", TOOLS,
                                   ("", [call("get_weather", city="Oslo", days=2)])),
    "blanks around a JSON value": (glm("get_weather", ("days", "\n 3 "), ("metric", " true")),
                                   TOOLS, ("", [call("get_weather", days=3, metric=True)])),
    "escaped newlines": ("<tool_call>get_weather\\n<arg_key>city</arg_key>\\n"
                         "<arg_value>Paris</arg_value>\\n</tool_call>", TOOLS,
                         ("", [call("get_weather", city="Paris")])),
    "string kept as written": (glm("get_weather", ("city", "3")), TOOLS,
                               ("", [call("get_weather", city="3")])),
    "quoted string": (glm("get_weather", ("city", '"Paris"')), TOOLS,
                      ("", [call("get_weather", city="Paris")])),
    "Python-quoted string": (glm("get_weather", ("city", "'Paris'")), TOOLS,
                             ("", [call("get_weather", city="Paris")])),
    "escaped JSON": (glm("get_weather", ("hours", '[\\"a\\"]')), TOOLS,
                     ("", [call("get_weather", hours=["a"])])),
    "JSON values": (glm("get_weather", ("hours", "[1, 2]"), ("metric", "false")), TOOLS,
                    ("", [call("get_weather", hours=[1, 2], metric=False)])),
    "undeclared: JSON if it is": (glm("get_weather", ("n", "5"), ("s", "five")), TOOLS,
                                  ("", [call("get_weather", n=5, s="five")])),
    "unknown tool": (glm("launch"), TOOLS, None),
    "key without value": ("<tool_call>now\n<arg_key>a</arg_key>\n</tool_call>", TOOLS, None),
    "unclosed value": ("<tool_call>now\n<arg_key>a</arg_key>\n<arg_value>1\n</tool_call>",
                       TOOLS, None),
    "cut mid-call": (glm("get_weather", ("city", "Paris"))[:30], TOOLS, None),
    "text after": (glm("now") + " ok", TOOLS, None),
    "no calls": ("Paris is sunny.", TOOLS, None),
}


@pytest.mark.parametrize(("family", "text", "tools", "expected"),
                         parse_params({"qwen3_coder": QWEN3_CODER, "glm45": GLM45}))
def test_parse(family: str, text: str, tools: ToolSchemas, expected: Expected) -> None:
    assert_parsed(family, text, tools, expected)


@pytest.mark.parametrize(("family", "text", "expected"), [
    ("qwen3_coder", "Let me check. <tool_ca", 14),
    ("qwen3_coder", "a <function=now>", 16),
    ("glm45", "Checking.\n<tool_call>now", 10),
    ("glm45", "x < y", 5),
])
def test_may_start(family: str, text: str, expected: int) -> None:
    assert get_parser(family).may_start(text) == expected


@pytest.mark.parametrize(("arguments", "qwen3_coder", "glm45"), [
    ({}, "", ""),
    ({"city": "Paris"}, "<parameter=city>\nParis\n</parameter>",
     "<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n"),
    ({"days": 3, "hours": [1, "ü"], "x": None},
     "<parameter=days>\n3\n</parameter>\n<parameter=hours>\n[1, \"ü\"]\n</parameter>\n"
     "<parameter=x>\nnull\n</parameter>",
     "<arg_key>days</arg_key>\n<arg_value>3</arg_value>\n<arg_key>hours</arg_key>\n"
     "<arg_value>[1, \"ü\"]</arg_value>\n<arg_key>x</arg_key>\n<arg_value>null</arg_value>\n"),
])
def test_arguments_as_the_models_write_them(arguments: dict, qwen3_coder: str,
                                            glm45: str) -> None:
    """What a call's tags hold (a structural tag's qwen_xml / glm_xml content; render too)."""
    assert qwen3_coder_parameters(arguments) == qwen3_coder
    assert glm45_arguments(arguments) == glm45
