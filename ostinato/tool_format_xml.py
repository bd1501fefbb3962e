"""The formats that write each argument in its own tags: qwen3_coder and glm45 (documented
in ostinato/tool_formats.py). A value is text; its type comes from the tool's schema
(ostinato/tool_arg_types.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ostinato.tool_arg_types import glm_value, qwen3_coder_value, schema_properties, schema_type
from ostinato.tool_call_json import arguments_object, calls_after, outcome
from ostinato.tool_call_types import OpenedByTag, ParsedOutput, ParsedToolCall, ToolSchemas, skip_ws

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_FUNCTION, _FUNCTION_END = "<function=", "</function>"
_PARAMETER, _PARAMETER_END = "<parameter=", "</parameter>"
_KEY, _KEY_END = "<arg_key>", "</arg_key>"
_VALUE, _VALUE_END = "<arg_value>", "</arg_value>"

Convert = Callable[[str, str | None], Any]


def _text_of(value: object) -> str:
    """An argument as the family's templates write it: a string as it is, else JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _parameter(key: str, value: object) -> str:
    return f"{_PARAMETER}{key}>\n{_text_of(value)}\n{_PARAMETER_END}"


def qwen3_coder_parameters(args: Mapping[str, object]) -> str:
    """Arguments as Qwen3-Coder writes them inside its function tag: one ``<parameter=KEY>``
    block per argument, a newline around each value and between the blocks (as xgrammar's
    structural tag style `qwen_xml` admits them, between the tag's newlines)."""
    return "\n".join(_parameter(key, value) for key, value in args.items())


def glm45_arguments(args: Mapping[str, object]) -> str:
    """Arguments as GLM-4.5 writes them between the name's line and ``</tool_call>``: the key
    tag, a newline, the value tag and a newline per argument (as xgrammar's structural tag
    style `glm_xml` admits them)."""
    return "".join(f"{_KEY}{key}{_KEY_END}\n{_VALUE}{_text_of(value)}{_VALUE_END}\n"
                   for key, value in args.items())


def _between(text: str, pos: int, end_tag: str) -> tuple[str, int] | None:
    """The text from pos up to ``end_tag`` and the index after the tag; None without one."""
    end = text.find(end_tag, pos)
    return None if end == -1 else (text[pos:end], end + len(end_tag))


def _typed(tools: ToolSchemas, name: str, raw: dict[str, str],
           convert: Convert) -> ParsedToolCall | None:
    if not name or (tools and name not in tools):
        return None
    properties = schema_properties(tools.get(name, {}))
    args = {key: convert(value, schema_type(properties[key]) if key in properties else None)
            for key, value in raw.items()}
    return ParsedToolCall(name, json.dumps(args, ensure_ascii=False))


class Qwen3Coder(OpenedByTag):
    """<tool_call> <function=NAME> (<parameter=KEY> VALUE </parameter>)* </function> </tool_call>,
    newlines between the tags (one around each value is not part of it)."""

    name = "qwen3_coder"
    numbered_ids = False
    opening = _OPEN

    def parse(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        start = text.find(_OPEN)
        if start == -1:
            return ParsedOutput(text, ())
        return outcome(text, text[:start].rstrip(), self._blocks(text, start, tools))

    def _blocks(self, text: str, pos: int, tools: ToolSchemas) -> tuple[ParsedToolCall, ...] | None:
        calls: list[ParsedToolCall] = []
        while pos < len(text):
            if not text.startswith(_OPEN, pos):
                return None
            pos = skip_ws(text, pos + len(_OPEN))
            while text.startswith(_FUNCTION, pos):  # one or more functions per block
                found = self._function(text, pos + len(_FUNCTION), tools)
                if found is None:
                    return None
                calls.append(found[0])
                pos = skip_ws(text, found[1])
            if not calls or not text.startswith(_CLOSE, pos):
                return None
            pos = skip_ws(text, pos + len(_CLOSE))
        return tuple(calls)

    @staticmethod
    def _function(text: str, pos: int, tools: ToolSchemas) -> tuple[ParsedToolCall, int] | None:
        head = _between(text, pos, ">")
        if head is None or "\n" in head[0]:
            return None
        name, pos = head[0].strip(), skip_ws(text, head[1])
        raw: dict[str, str] = {}
        while text.startswith(_PARAMETER, pos):
            key = _between(text, pos + len(_PARAMETER), ">")
            value = None if key is None else _between(text, key[1], _PARAMETER_END)
            if key is None or value is None or "\n" in key[0]:
                return None
            raw[key[0].strip()] = value[0].removeprefix("\n").removesuffix("\n")
            pos = skip_ws(text, value[1])
        if not text.startswith(_FUNCTION_END, pos):
            return None
        call = _typed(tools, name, raw, qwen3_coder_value)
        return None if call is None else (call, pos + len(_FUNCTION_END))

    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        return "\n".join(
            f"{_OPEN}\n{_FUNCTION}{call.name}>\n"
            + "".join(_parameter(key, value) + "\n"
                      for key, value in arguments_object(call).items())
            + f"{_FUNCTION_END}\n{_CLOSE}"
            for call in calls)


class Glm45(OpenedByTag):
    """<tool_call>NAME (<arg_key>KEY</arg_key> <arg_value>VALUE</arg_value>)* </tool_call>,
    the name ended by a newline (or the two characters backslash n)."""

    name = "glm45"
    numbered_ids = False
    opening = _OPEN

    def parse(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        return calls_after(text, _OPEN, tools, self._call)

    @staticmethod
    def _call(text: str, pos: int, tools: ToolSchemas) -> tuple[ParsedToolCall, int] | None:
        pos += len(_OPEN)
        ends = [at for at in (text.find(mark, pos) for mark in ("\n", "\\n", _KEY, _CLOSE))
                if at != -1]
        if not ends:
            return None
        name_end = min(ends)
        name = text[pos:name_end].strip()
        pos = name_end + (2 if text.startswith("\\n", name_end) else 0)
        raw: dict[str, str] = {}
        while True:
            pos = _skip_ws_or_escaped_newlines(text, pos)
            if not text.startswith(_KEY, pos):
                break
            key = _between(text, pos + len(_KEY), _KEY_END)
            if key is None:
                return None
            pos = _skip_ws_or_escaped_newlines(text, key[1])
            value = _between(text, pos + len(_VALUE), _VALUE_END) \
                if text.startswith(_VALUE, pos) else None
            if value is None:
                return None
            raw[key[0].strip()] = value[0]
            pos = value[1]
        if not text.startswith(_CLOSE, pos):
            return None
        call = _typed(tools, name, raw, glm_value)
        return None if call is None else (call, pos + len(_CLOSE))

    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        return "\n".join(
            f"{_OPEN}{call.name}\n{glm45_arguments(arguments_object(call))}{_CLOSE}"
            for call in calls)


def _skip_ws_or_escaped_newlines(text: str, pos: int) -> int:
    while True:
        pos = skip_ws(text, pos)
        if not text.startswith("\\n", pos):
            return pos
        pos += 2
