"""Our tool-call parsers against SGLang's own (`make test-engine`): every model format's
output, as our renderer and the sim model write it and as the families' models write it
by hand, parsed by SGLang 0.5's FunctionCallParser (in SGLang's environment, built by
`make sglang-cpu`) and by ours: the same calls, the same arguments (typed alike), the same
content (whitespace at its ends aside); gpt-oss's harmony also through both reasoning
parsers first (where ours differs on purpose, tests/ostinato/test_harmony.py says)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ostinato.harmony import ANALYSIS_OPEN, END, FINAL_OPEN, HarmonySplitter
from ostinato.tool_formats import MODEL_FORMATS, ParsedToolCall, get_parser, render_tool_calls

pytestmark = pytest.mark.engine

SCRIPT = Path(__file__).with_name("sglang_tool_parse.py")
PARAMETERS: dict[str, dict[str, Any]] = {
    "get_weather": {"type": "object", "properties": {
        "city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]},
    "search": {"type": "object", "properties": {
        "query": {"type": "string"}, "top_k": {"type": "integer"}, "exact": {"type": "boolean"},
        "filters": {"type": "object"}, "ratio": {"type": "number"}}},
}
TOOLS = [{"type": "function", "function": {"name": name, "parameters": params}}
         for name, params in PARAMETERS.items()]
WEATHER = ParsedToolCall("get_weather", '{"city": "Paris", "days": 3}')
SEARCH = ParsedToolCall("search", json.dumps({
    "query": "Zürich “hotels”", "top_k": 5, "exact": True, "filters": {"stars": [4, 5]},
    "ratio": 0.5}, ensure_ascii=False))

# outputs as the families' models write them (beyond what our renderer writes)
BY_HAND = {
    "qwen3_coder": [
        "<tool_call>\n<function=search>\n<parameter=query>\nlong\ntext\n</parameter>\n"
        "<parameter=exact>\nTrue\n</parameter>\n<parameter=top_k>\n7\n</parameter>\n"
        "<parameter=ratio>\n2\n</parameter>\n</function>\n</tool_call>",
        # as a structural tag lets the model write them (ostinato/tool_grammars.py)
        "<tool_call>\n<function=get_weather>\n<parameter=city>Oslo</parameter>\n"
        "<parameter=days>  3\t</parameter>\n</function>\n</tool_call>",
        "<tool_call>\n<function=search>\n\n</function>\n</tool_call>",
    ],
    "glm45": [
        "Sure.\n<tool_call>search\n<arg_key>query</arg_key>\n<arg_value>\"quoted\"</arg_value>\n"
        "<arg_key>top_k</arg_key>\n<arg_value>2</arg_value>\n</tool_call>",
        "<tool_call>get_weather\\n<arg_key>city</arg_key>\\n<arg_value>Oslo</arg_value>\\n"
        "</tool_call>",
        "<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>'Oslo'</arg_value>\n"
        "</tool_call>",
        # as a structural tag lets the model write them (ostinato/tool_grammars.py)
        "<tool_call>get_weather\n<arg_key>city</arg_key><arg_value>Oslo</arg_value>"
        "<arg_key>days</arg_key> <arg_value> 3\n</arg_value></tool_call>",
    ],
    "kimi_k2": [
        "ok<|tool_calls_section_begin|><|tool_call_begin|> functions.get_weather:3 "
        '<|tool_call_argument_begin|>{"city": "Rome"}<|tool_call_end|>'
        "<|tool_calls_section_end|>",
    ],
    "llama3": ['{"name": "get_weather", "parameters": {"city": "Oslo"}}',
               '{"name": "get_weather", "parameters": {"city": "Oslo"}}\n'
               '{"name": "search", "parameters": {"query": "x"}}',
               '<|python_tag|>{"name": "get_weather", "parameters": {"city": "Oslo"}};'],
    "mistral": ['[TOOL_CALLS]get_weather[ARGS]{"city": "Oslo"}',
                'Sure. [TOOL_CALLS]get_weather[ARGS]{"city": "Oslo"}'
                '[TOOL_CALLS]search[ARGS]{"query": "x", "top_k": 2}'],
    "hermes": ['<tool_call>\n[{"name": "get_weather", "arguments": {"city": "Oslo"}}, '
               '{"name": "search", "arguments": {"query": "x"}}]\n</tool_call>'],
    "gpt-oss": [
        ANALYSIS_OPEN + "  Plan:\nlook it up.  " + END + FINAL_OPEN + "It is sunny.",
        ANALYSIS_OPEN + "Plan." + END + "<|start|>assistant<|channel|>commentary<|message|>"
        "Let me check." + END + render_tool_calls("gpt-oss", [WEATHER]),
        ANALYSIS_OPEN + "Cut off by max_tok",
        ANALYSIS_OPEN + "T." + END + FINAL_OPEN + "Partial ans",
        '<|channel|>analysis<|message|>x<|end|><|start|>assistant<|channel|>commentary '
        'to=functions.get_weather <|constrain|>json<|message|>{"city":"Oslo"}<|call|>',
    ],
}
# gpt-oss's output always opens a message: the renderer's calls come after its thinking
PREFIX = {"gpt-oss": ANALYSIS_OPEN + "Thinking." + END}


def cases() -> list[tuple[str, str]]:
    out = []
    for family in MODEL_FORMATS:
        before = PREFIX.get(family, "")
        out += [(family, before + render_tool_calls(family, [WEATHER])),
                (family, before + render_tool_calls(family, [WEATHER, SEARCH])),
                (family, before + ("" if before else "Let me look.\n")
                 + render_tool_calls(family, [WEATHER, SEARCH])),
                (family, before + (FINAL_OPEN if before else "") + "No tool: it is sunny.")]
        out += [(family, text) for text in BY_HAND.get(family, ())]
    return out


def test_our_parsers_read_what_sglangs_read(engine_build: Path, tmp_path: Path) -> None:
    table = cases()
    (tmp_path / "cases.json").write_text(json.dumps(
        [{"parser": family, "text": text, "tools": TOOLS} for family, text in table]))
    subprocess.run([str(engine_build / "python"), str(SCRIPT), str(tmp_path / "cases.json"),
                    str(tmp_path / "out.json")], check=True, timeout=300)
    theirs = json.loads((tmp_path / "out.json").read_text())
    mismatches = []
    for (family, text), sglang in zip(table, theirs, strict=True):
        thinking, answer = _harmony(text) if family == "gpt-oss" else ("", text)
        ours = get_parser(family).parse(answer, PARAMETERS)
        got = (thinking, ours.content.strip(),
               [(c.name, json.loads(c.arguments)) for c in ours.tool_calls])
        want = (sglang["reasoning"], sglang["content"].strip(),
                [(n, json.loads(a)) for n, a in sglang["calls"]])
        if got != want:
            mismatches.append((family, text, got, want))
    assert not mismatches, "\n".join(map(repr, mismatches))


def _harmony(text: str) -> tuple[str, str]:
    splitter = HarmonySplitter()
    thinking, answer = splitter.feed(text)
    rest = splitter.finish()
    return thinking + rest[0], answer + rest[1]
