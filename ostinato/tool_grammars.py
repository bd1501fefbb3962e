"""Constrained decoding that leaves the model its tools: a JSON answer, or tool calls.

OpenAI takes `tools` with tool_choice auto together with a JSON `response_format`: the model
either calls tools, or answers with JSON of that format (an OpenAI Agents SDK agent with
tools and an output type sends both on every turn). A plain `json_schema` constraint, as
SGLang's server applies it for such a request, lets the model write only the JSON: it can
never call a tool. Here the engine gets a structural tag instead (xgrammar's, which SGLang
0.5 takes as `sampling_params.structural_tag`): one of two branches from the first token,
the JSON answer, or one or more calls in the model's own format, each call's arguments
constrained by its tool's parameters (SGLang's detectors' `structure_info` write the same
begin and end strings).

Families whose calls are JSON between fixed strings have such a grammar: hermes / qwen25,
llama3, mistral. For the others (XML arguments, special-token sections, harmony) the JSON
constraint alone applies, as before: the model answers, and calls no tool (docs/usage.md).
Pure: builds JSON only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ostinato.tool_call_types import ToolSchemas

Format = dict[str, Any]
# Whitespace the JSON may hold in one run: room for a pretty-printed answer's newline and
# indent, but no runaway of blanks (a model stuck on them until max_tokens, the failure
# SGLang's --constrained-json-max-whitespace-cnt bounds for json_schema; a structural tag
# carries its own bound).
MAX_WHITESPACE = 16


def _json(schema: Any) -> Format:
    return {"type": "json_schema", "json_schema": schema, "max_whitespace_cnt": MAX_WHITESPACE}


def _tag(begin: str, parameters: Any, end: str) -> Format:
    """A call: its fixed start, its arguments (a JSON object, whatever the parameters leave
    unsaid: a parser takes no other), its fixed end."""
    kind = parameters.get("type", "object") if isinstance(parameters, dict) else None
    arguments = {**parameters, "type": "object"} if kind == "object" or (
        isinstance(kind, list) and "object" in kind) else {"type": "object"}
    return {"type": "tag", "begin": begin, "end": end, "content": _json(arguments)}


def _calls(tags: list[Format], separator: str, single: bool) -> Format:
    return {"type": "tags_with_separator", "tags": tags, "separator": separator,
            "at_least_one": True, "stop_after_first": single}


def _named(name: str, key: str) -> str:
    """How the family's JSON call object begins, up to its arguments (as its render writes
    it: ostinato/tool_format_json.py)."""
    return '{"name": ' + json.dumps(name) + ', "' + key + '": '


def _hermes(tools: ToolSchemas, single: bool) -> Format:
    return _calls([_tag("<tool_call>\n" + _named(name, "arguments"), params, "}\n</tool_call>")
                   for name, params in tools.items()], "\n", single)


def _llama3(tools: ToolSchemas, single: bool) -> Format:
    return _calls([_tag(_named(name, "parameters"), params, "}")
                   for name, params in tools.items()], "; ", single)


def _mistral(tools: ToolSchemas, single: bool) -> Format:
    return {"type": "sequence", "elements": [
        {"type": "const_string", "value": "[TOOL_CALLS] ["},
        _calls([_tag(_named(name, "arguments"), params, "}") for name, params in tools.items()],
               ", ", single),
        {"type": "const_string", "value": "]"}]}


_CALLS: dict[str, Callable[[ToolSchemas, bool], Format]] = {
    "hermes": _hermes, "qwen25": _hermes, "llama3": _llama3, "mistral": _mistral}


def answer_or_calls(answer_schema: Any, tool_format: str, tools: ToolSchemas,
                    single: bool) -> str | None:
    """The structural tag (JSON text) admitting a JSON answer valid against `answer_schema`,
    or calls of `tools` in `tool_format` (only the first, `single`: parallel_tool_calls
    false); None when the family has no such grammar."""
    calls = _CALLS.get(tool_format)
    if calls is None or not tools:
        return None
    return json.dumps({"type": "structural_tag", "format": {"type": "or", "elements": [
        _json(answer_schema), calls(tools, single)]}})
