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
llama3, mistral; so do qwen3_coder and glm45, which write each argument in its own tags,
through xgrammar's XML styles of a JSON schema (`qwen_xml`, `glm_xml`; what these cannot
say is noted above _qwen3_coder). For the others (special-token sections, harmony) the JSON
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


def _json(schema: Any, style: str = "json") -> Format:
    fmt = {"type": "json_schema", "json_schema": schema, "max_whitespace_cnt": MAX_WHITESPACE}
    return fmt if style == "json" else {**fmt, "style": style}


def _tag(begin: str, parameters: Any, end: str, style: str = "json") -> Format:
    """A call: its fixed start, its arguments (a JSON object, whatever the parameters leave
    unsaid: a parser takes no other; written in `style`), its fixed end."""
    kind = parameters.get("type", "object") if isinstance(parameters, dict) else None
    arguments = {**parameters, "type": "object"} if kind == "object" or (
        isinstance(kind, list) and "object" in kind) else {"type": "object"}
    return {"type": "tag", "begin": begin, "end": end, "content": _json(arguments, style)}


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
                   for name, params in tools.items()], ";", single)


def _mistral(tools: ToolSchemas, single: bool) -> Format:
    return {"type": "sequence", "elements": [
        {"type": "const_string", "value": "[TOOL_CALLS] ["},
        _calls([_tag(_named(name, "arguments"), params, "}") for name, params in tools.items()],
               ", ", single),
        {"type": "const_string", "value": "]"}]}


# The XML families. xgrammar's `qwen_xml` and `glm_xml` styles read the arguments' schema as
# its JSON style does (the declared properties in their order, the required ones present,
# no other unless additionalProperties allows it or none is declared), each value in its
# own tags: a string is any text up to the closing tag (which no value can hold); a string
# with an enum, const, pattern, format or length is that text, unquoted; any other value is
# JSON (numbers, booleans, null; objects and arrays valid against their schemas). What they
# cannot say: around such an unquoted string or a JSON value they admit up to
# MAX_WHITESPACE blanks, which the parsers keep in a string beyond the one newline
# qwen3_coder takes off each side (` c` is not the enum's `c`); a key that the schema does
# not declare must be an identifier; and a value is typed by the parsers' reading of its
# text (a qwen3_coder string written `null` is null, as in SGLang's parser).


def _qwen3_coder(tools: ToolSchemas, single: bool) -> Format:
    """As SGLang's Qwen3CoderDetector asks xgrammar for it (`qwen_3_coder`): the newline
    before `</function>` belongs to the call, so a call without arguments has an empty line
    where the template writes none (the parser reads either)."""
    return _calls([_tag(f"<tool_call>\n<function={name}>\n", params,
                        "\n</function>\n</tool_call>", "qwen_xml")
                   for name, params in tools.items()], "\n", single)


def _glm45(tools: ToolSchemas, single: bool) -> Format:
    """GLM-4.5's calls, the name ended by a newline as its template writes it and SGLang's
    Glm4MoeDetector reads it (which asks for no structural tag; GLM-4.7's, xgrammar's
    `glm_4_7`, has no newline there)."""
    return _calls([_tag(f"<tool_call>{name}\n", params, "</tool_call>", "glm_xml")
                   for name, params in tools.items()], "\n", single)


_CALLS: dict[str, Callable[[ToolSchemas, bool], Format]] = {
    "hermes": _hermes, "qwen25": _hermes, "llama3": _llama3, "mistral": _mistral,
    "qwen3_coder": _qwen3_coder, "glm45": _glm45}


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
