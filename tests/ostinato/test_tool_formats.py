"""Tool calls parsed out of model output in each family's format, rendered back, held back in streaming."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from ostinato.tool_formats import (
    PARSERS,
    ParsedOutput,
    ParsedToolCall,
    ToolSchemas,
    get_parser,
    render_tool_calls,
)

TOOLS: ToolSchemas = {
    "get_weather": {"type": "object", "properties": {"city": {"type": "string"}}},
    "search": {"type": "object", "properties": {
        "query": {"type": "string"}, "top_k": {"type": "integer"}, "note": {"type": "string"},
        "filters": {"type": "object"}, "exact": {"type": "boolean"},
        "limit": {"type": ["integer", "null"]}}},
}
# formats whose values are JSON: their calls need no schema to come back as they were
JSON_VALUED = sorted(set(PARSERS) - {"qwen3_coder", "glm45"})


def call(name: str, **arguments: object) -> ParsedToolCall:
    return ParsedToolCall(name, json.dumps(arguments, ensure_ascii=False))


WEATHER = call("get_weather", city="Paris")
SEARCH = call("search", query="sglang", top_k=3)
UNICODE = call("search", query="Zürich 東京 ☀", note="naïve — “quoted”")
ROCKETS = call("launch_rockets", count=3)

W = '{"name": "get_weather", "arguments": {"city": "Paris"}}'
W_PARAMS = '{"name": "get_weather", "parameters": {"city": "Paris"}}'
S = '{"name": "search", "arguments": {"query": "sglang", "top_k": 3}}'
S_PARAMS = '{"name": "search", "parameters": {"query": "sglang", "top_k": 3}}'
U = '{"name": "search", "arguments": {"query": "Zürich 東京 ☀", "note": "naïve — “quoted”"}}'
U_ESCAPED = json.dumps(json.loads(U))  # \u escapes, as json.dumps writes by default
DOUBLE = '{"name": "get_weather", "arguments": "{\\"city\\": \\"Paris\\"}"}'
UNKNOWN = '{"name": "launch_rockets", "arguments": {"count": 3}}'
BAD_JSON = '{"name": "get_weather", "arguments": {"city": }}'
TRUNCATED = '{"name": "get_weather", "arguments": {"ci'
NO_NAME = '{"arguments": {"city": "Paris"}}'
LIST_ARGS = '{"name": "get_weather", "arguments": ["Paris"]}'
STRING_ARGS = '{"name": "get_weather", "arguments": "Paris"}'
BOTH_KEYS = '{"name": "get_weather", "arguments": {"city": "Paris"}, "parameters": {"city": "Rome"}}'
NAN_ARGS = '{"name": "get_weather", "arguments": {"temperature": NaN}}'


def block(obj: str) -> str:
    return f"<tool_call>\n{obj}\n</tool_call>"


# (text, tools, calls): calls None means "no calls, the whole text is the content".
HERMES_CASES = {
    "one call": (block(W), TOOLS, ("", [WEATHER])),
    "several calls": (block(W) + "\n" + block(S), TOOLS, ("", [WEATHER, SEARCH])),
    "content before calls": ("Let me check.\n\n" + block(W), TOOLS, ("Let me check.", [WEATHER])),
    "no newlines inside tags": (
        f"<tool_call>{S}</tool_call><tool_call>{W}</tool_call>",
        TOOLS,
        ("", [SEARCH, WEATHER]),
    ),
    "trailing whitespace": (block(W) + "\n", TOOLS, ("", [WEATHER])),
    "parameters key": (block(W_PARAMS), TOOLS, ("", [WEATHER])),
    "plain text": ("The weather in Paris is sunny.", TOOLS, None),
    "a < b is no tag": ("if a < b then <tool call> is prose", TOOLS, None),
    "malformed json": ("Checking.\n" + block(BAD_JSON), TOOLS, None),
    "one bad block spoils all": (block(W) + "\n" + block(BAD_JSON), TOOLS, None),
    "truncated mid-json": ("Checking.\n<tool_call>\n" + TRUNCATED, TOOLS, None),
    "truncated before close tag": (f"<tool_call>\n{W}\n", TOOLS, None),
    "truncated mid close tag": (f"<tool_call>\n{W}\n</tool_", TOOLS, None),
    "text after the calls": (block(W) + "\nDone.", TOOLS, None),
    "unknown tool": (block(UNKNOWN), TOOLS, None),
    "any name when no tools given": (block(UNKNOWN), {}, ("", [ROCKETS])),
    "double-encoded arguments": (block(DOUBLE), TOOLS, ("", [WEATHER])),
    "unicode arguments": (block(U), TOOLS, ("", [UNICODE])),
    "escaped unicode arguments": (block(U_ESCAPED), TOOLS, ("", [UNICODE])),
    "missing name": (block(NO_NAME), TOOLS, None),
    "arguments a list": (block(LIST_ARGS), TOOLS, None),
    "arguments a non-object string": (block(STRING_ARGS), TOOLS, None),
    "both arguments and parameters": (block(BOTH_KEYS), TOOLS, None),
    "NaN is not JSON": (block(NAN_ARGS), TOOLS, None),
    "not an object": (block('["get_weather"]'), TOOLS, None),
    "a list of calls in one block": (f"<tool_call>\n[{W}, {S}]\n</tool_call>", TOOLS,
                                     ("", [WEATHER, SEARCH])),
    "infinite number (1e999)": (block('{"name": "get_weather", "arguments": {"t": 1e999}}'),
                                TOOLS, None),
}

LLAMA3_CASES = {
    "one call": ("<|python_tag|>" + W_PARAMS, TOOLS, ("", [WEATHER])),
    "one call without the tag": (W_PARAMS, TOOLS, ("", [WEATHER])),
    "leading whitespace": ("\n  " + W_PARAMS, TOOLS, ("", [WEATHER])),
    "several calls": ("<|python_tag|>" + W_PARAMS + ";" + S_PARAMS, TOOLS, ("", [WEATHER, SEARCH])),
    "several calls, spaced separator": (W_PARAMS + " ; " + S_PARAMS, TOOLS, ("", [WEATHER, SEARCH])),
    "content before calls": ("Let me check.\n<|python_tag|>" + W_PARAMS, TOOLS, ("Let me check.", [WEATHER])),
    "arguments key": ("<|python_tag|>" + W, TOOLS, ("", [WEATHER])),
    "plain text": ("The weather in Paris is sunny.", TOOLS, None),
    "a JSON answer is content": ('{"answer": 42}', TOOLS, None),
    "JSON later in the text is content": ("Here: " + W_PARAMS, TOOLS, None),
    "malformed json": ("<|python_tag|>" + BAD_JSON, TOOLS, None),
    "one bad call spoils all": (W_PARAMS + ";" + BAD_JSON, TOOLS, None),
    "truncated mid-json": ("<|python_tag|>" + W_PARAMS + ";" + TRUNCATED, TOOLS, None),
    "truncated after the tag": ("Checking.\n<|python_tag|>", TOOLS, None),
    "trailing separator (as SGLang reads it)": (W_PARAMS + ";", TOOLS, ("", [WEATHER])),
    "calls on their own lines": (W_PARAMS + "\n" + S_PARAMS, TOOLS, ("", [WEATHER, SEARCH])),
    "a number past a double's range": ('{"name": "get_weather", "parameters": {"t": 1e999}}',
                                       TOOLS, None),
    "text after the calls": (W_PARAMS + "\nDone.", TOOLS, None),
    "unknown tool": ("<|python_tag|>" + UNKNOWN, TOOLS, None),
    "any name when no tools given": (UNKNOWN, {}, ("", [ROCKETS])),
    "double-encoded arguments": (DOUBLE, TOOLS, ("", [WEATHER])),
    "unicode arguments": ("<|python_tag|>" + U, TOOLS, ("", [UNICODE])),
    "missing name": (NO_NAME, TOOLS, None),
    "arguments a list": (LIST_ARGS, TOOLS, None),
    "both arguments and parameters": (BOTH_KEYS, TOOLS, None),
}

MISTRAL_CASES = {
    "one call": (f"[TOOL_CALLS] [{W}]", TOOLS, ("", [WEATHER])),
    "several calls": (f"[TOOL_CALLS] [{W}, {S}]", TOOLS, ("", [WEATHER, SEARCH])),
    "no space after the tag": (f"[TOOL_CALLS][{W}]", TOOLS, ("", [WEATHER])),
    "a single object": (f"[TOOL_CALLS] {W}", TOOLS, ("", [WEATHER])),
    "content before calls": (f"Let me check.\n[TOOL_CALLS] [{W}]", TOOLS, ("Let me check.", [WEATHER])),
    "parameters key": (f"[TOOL_CALLS] [{W_PARAMS}]", TOOLS, ("", [WEATHER])),
    "plain text": ("The weather in Paris is [sunny].", TOOLS, None),
    "malformed json": (f"[TOOL_CALLS] [{BAD_JSON}]", TOOLS, None),
    "one bad call spoils all": (f"[TOOL_CALLS] [{W}, {NO_NAME}]", TOOLS, None),
    "truncated mid-json": (f"Checking.\n[TOOL_CALLS] [{W}, {TRUNCATED}", TOOLS, None),
    "truncated after the tag": ("[TOOL_CALLS]", TOOLS, None),
    "empty list": ("[TOOL_CALLS] []", TOOLS, None),
    "text after the calls": (f"[TOOL_CALLS] [{W}] Done.", TOOLS, None),
    "unknown tool": (f"[TOOL_CALLS] [{UNKNOWN}]", TOOLS, None),
    "any name when no tools given": (f"[TOOL_CALLS] [{UNKNOWN}]", {}, ("", [ROCKETS])),
    "double-encoded arguments": (f"[TOOL_CALLS] [{DOUBLE}]", TOOLS, ("", [WEATHER])),
    "unicode arguments": (f"[TOOL_CALLS] [{U}]", TOOLS, ("", [UNICODE])),
    "arguments a list": (f"[TOOL_CALLS] [{LIST_ARGS}]", TOOLS, None),
    "compact (Small 3.2, Magistral)": ('[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}', TOOLS,
                                       ("", [WEATHER])),
    "compact, two calls, content": ('Sure.\n[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"}'
                                    '[TOOL_CALLS]search[ARGS]{"query": "sglang", "top_k": 3}',
                                    TOOLS, ("Sure.", [WEATHER, SEARCH])),
    "compact, bad arguments": ("[TOOL_CALLS]get_weather[ARGS]{city}", TOOLS, None),
    "compact, no [ARGS]": ('[TOOL_CALLS]get_weather{"city": "Paris"}', TOOLS, None),
    "compact, text after": ('[TOOL_CALLS]get_weather[ARGS]{"city": "Paris"} ok', TOOLS, None),
}

JSON_ARRAY_CASES = {
    "one call": (f"[{W_PARAMS}]", TOOLS, ("", [WEATHER])),
    "several calls": (f"[{W_PARAMS}, {S_PARAMS}]", TOOLS, ("", [WEATHER, SEARCH])),
    "surrounding whitespace": (f"\n [{W_PARAMS}]\n", TOOLS, ("", [WEATHER])),
    "arguments key": (f"[{W}]", TOOLS, ("", [WEATHER])),
    "text before the array is content": (f"Calling: [{W_PARAMS}]", TOOLS, None),
    "plain text": ("The weather in Paris is sunny.", TOOLS, None),
    "an object, not an array": (W_PARAMS, TOOLS, None),
    "malformed json": (f"[{BAD_JSON}]", TOOLS, None),
    "one bad call spoils all": (f"[{W_PARAMS}, {STRING_ARGS}]", TOOLS, None),
    "truncated mid-json": (f"[{W_PARAMS}, {TRUNCATED}", TOOLS, None),  # (cut: tool_output.py)
    "empty list": ("[]", TOOLS, None),
    "text after the calls": (f"[{W_PARAMS}] done", TOOLS, None),
    "unknown tool": (f"[{UNKNOWN}]", TOOLS, None),
    "any name when no tools given": (f"[{UNKNOWN}]", {}, ("", [ROCKETS])),
    "double-encoded arguments": (f"[{DOUBLE}]", TOOLS, ("", [WEATHER])),
    "unicode arguments": (f"[{U}]", TOOLS, ("", [UNICODE])),
    "missing name": (f"[{NO_NAME}]", TOOLS, None),
}

PARSE_CASES = [
    pytest.param(family, *case, id=f"{family}: {label}")
    for families, cases in (
        (("hermes", "qwen25"), HERMES_CASES),
        (("llama3",), LLAMA3_CASES),
        (("mistral",), MISTRAL_CASES),
        (("json_array",), JSON_ARRAY_CASES),
    )
    for family in families
    for label, case in cases.items()
]


@pytest.mark.parametrize(("family", "text", "tools", "expected"), PARSE_CASES)
def test_parse(
    family: str,
    text: str,
    tools: ToolSchemas,
    expected: tuple[str, list[ParsedToolCall]] | None,
) -> None:
    parsed = get_parser(family).parse(text, tools)
    if expected is None:
        assert parsed == ParsedOutput(content=text, tool_calls=())
    else:
        content, calls = expected
        assert parsed == ParsedOutput(content=content, tool_calls=tuple(calls))


@pytest.mark.parametrize(
    ("family", "calls", "expected"),
    [
        ("hermes", [WEATHER], block(W)),
        ("qwen25", [WEATHER, SEARCH], block(W) + "\n" + block(S)),
        ("llama3", [WEATHER, SEARCH], "<|python_tag|>" + W_PARAMS + ";" + S_PARAMS),
        ("mistral", [WEATHER, SEARCH], f"[TOOL_CALLS] [{W}, {S}]"),
        ("json_array", [WEATHER, SEARCH], f"[{W_PARAMS}, {S_PARAMS}]"),
        ("hermes", [UNICODE], block(U)),
        ("mistral", [], ""),
    ],
)
def test_render(family: str, calls: list[ParsedToolCall], expected: str) -> None:
    assert render_tool_calls(family, calls) == expected


CALL_SETS = {
    "one call": [WEATHER],
    "several calls": [WEATHER, SEARCH, UNICODE],
    "no arguments": [call("get_weather")],
    "nested arguments": [call("search", filters={"tags": ["a"], "range": [1, 2.5]}, exact=True, limit=None)],
    "repeated call": [WEATHER, WEATHER],
    "tag-like strings in arguments": [call("search", query="</tool_call> [TOOL_CALLS] <|python_tag|> ; ]}")],
}


@pytest.mark.parametrize("family", sorted(PARSERS))
@pytest.mark.parametrize("calls", CALL_SETS.values(), ids=CALL_SETS.keys())
def test_round_trip(family: str, calls: list[ParsedToolCall]) -> None:
    parser = get_parser(family)
    rendered = render_tool_calls(family, calls)
    assert parser.parse(rendered, TOOLS) == ParsedOutput("", tuple(calls))


@pytest.mark.parametrize("family", JSON_VALUED)
@pytest.mark.parametrize("calls", CALL_SETS.values(), ids=CALL_SETS.keys())
def test_round_trip_without_schemas(family: str, calls: list[ParsedToolCall]) -> None:
    rendered = render_tool_calls(family, calls)
    assert get_parser(family).parse(rendered, {}) == ParsedOutput("", tuple(calls))


@pytest.mark.parametrize("family", sorted(set(PARSERS) - {"json_array"}))
def test_round_trip_after_content(family: str) -> None:
    text = "Let me look that up.\n" + render_tool_calls(family, [WEATHER, SEARCH])
    assert get_parser(family).parse(text, TOOLS) == ParsedOutput("Let me look that up.", (WEATHER, SEARCH))


def test_render_canonicalises_arguments() -> None:
    loose = ParsedToolCall("get_weather", '{"city":"Paris"}')
    assert get_parser("hermes").parse(render_tool_calls("hermes", [loose]), TOOLS).tool_calls == (WEATHER,)


@pytest.mark.parametrize("arguments", ['{"city": ', '["Paris"]', '"Paris"', ""])
def test_render_refuses_arguments_that_are_not_an_object(arguments: str) -> None:
    with pytest.raises(ValueError, match="not a JSON object"):
        render_tool_calls("hermes", [ParsedToolCall("get_weather", arguments)])


@pytest.mark.parametrize(
    ("family", "text", "expected"),
    [
        ("hermes", "", 0),
        ("hermes", "Let me check.", 13),
        ("hermes", "Let me check. <", 14),
        ("hermes", "Let me check. <tool", 14),
        ("hermes", "Let me check. <tool_call", 14),
        ("hermes", "Let me check. <tool_call>", 14),
        ("hermes", "Let me check. <tool_call>\n{", 14),
        ("hermes", "<tool_call>\n{}\n</tool_call>\n<tool", 0),
        ("hermes", "if a < b", 8),
        ("hermes", "<tool>", 6),
        ("qwen25", "Hi <tool_", 3),
        ("llama3", "", 0),
        ("llama3", "\n ", 0),
        ("llama3", "{", 0),
        ("llama3", '  {"name": "get_weather", "param', 0),
        ("llama3", "<|python_tag|>", 0),
        ("llama3", "<|pyth", 0),
        ("llama3", "Let me check. <|python_tag|>{", 14),
        ("llama3", "Let me check. <|pyth", 14),
        ("llama3", "Let me check. <", 14),
        ("llama3", "Sets like {1, 2} are fine", 25),
        ("llama3", "Let me check.", 13),
        ("mistral", "", 0),
        ("mistral", "Let me check.", 13),
        ("mistral", "Let me check. [", 14),
        ("mistral", "Let me check. [TOOL_CA", 14),
        ("mistral", "Let me check. [TOOL_CALLS]", 14),
        ("mistral", "Let me check. [TOOL_CALLS] [{", 14),
        ("mistral", "see [1] and [2]", 15),
        ("json_array", "", 0),
        ("json_array", "[", 0),
        ("json_array", '\n[{"name": "get_weather"', 0),
        ("json_array", "Let me check.", 13),
        ("json_array", "Let me check [", 14),
    ],
)
def test_may_start(family: str, text: str, expected: int) -> None:
    assert get_parser(family).may_start(text) == expected


@pytest.mark.parametrize(("family", "text", "expected"), [
    # after streamed content, a format whose calls are the whole output holds nothing back
    ("llama3", '{"name": "get_weather"', 22),
    ("llama3", "  and <|python_tag|>", 6),
    ("llama3", "  and <|pyth", 6),
    ("json_array", '[{"name": "get_weather"', 23),
    ("json_array", "", 0),
    ("hermes", "more <tool_", 5),
    ("gpt-oss", "more <|start|>", 5),
])
def test_may_start_after_streamed_content(family: str, text: str, expected: int) -> None:
    assert get_parser(family).may_start(text, continued=True) == expected


@pytest.mark.parametrize(
    ("family", "content"),
    [(family, "") for family in sorted(PARSERS)]
    + [(family, "Let me look that up.") for family in sorted(set(PARSERS) - {"json_array"})],
)
def test_streaming_never_shows_part_of_a_call(family: str, content: str) -> None:
    separator = "\n" if content else ""
    text = content + separator + render_tool_calls(family, [WEATHER, UNICODE])
    parser = get_parser(family)
    for end in range(len(text) + 1):
        prefix = text[:end]
        shown = prefix[: parser.may_start(prefix)]
        assert shown == text[: len(shown)]
        assert len(shown) <= len(content + separator)
        parsed = parser.parse(prefix, TOOLS)  # a truncated output is never an exception
        assert parsed.tool_calls or parsed.content == prefix
    assert parser.parse(text, TOOLS) == ParsedOutput(content, (WEATHER, UNICODE))


@pytest.mark.parametrize("family", sorted(PARSERS))
def test_plain_text_streams_through(family: str) -> None:
    text = "The weather in Paris is sunny, about 21 degrees."
    parser = get_parser(family)
    assert parser.may_start(text) == len(text)
    assert parser.parse(text, TOOLS) == ParsedOutput(text, ())


def test_parsers() -> None:
    assert set(PARSERS) == {"hermes", "qwen25", "llama3", "mistral", "qwen3_coder", "glm45",
                            "deepseekv3", "deepseekv31", "kimi_k2", "gpt-oss", "json_array"}
    for name, parser in PARSERS.items():
        assert parser.name == name
        assert get_parser(name) is parser


@pytest.mark.parametrize("function", [get_parser, lambda name: render_tool_calls(name, [WEATHER])])
def test_unknown_parser(function: Callable[[str], object]) -> None:
    with pytest.raises(ValueError, match=r"'pythonic'.*hermes.*json_array.*llama3.*mistral.*qwen25"):
        function("pythonic")
