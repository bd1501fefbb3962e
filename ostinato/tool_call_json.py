"""What the tool-call formats (ostinato/tool_formats.py) share: a model's JSON read strictly,
a call made from a decoded object, arguments written back canonically, calls read one after
another to the end of the output."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from ostinato.strict_json import DECODER
from ostinato.tool_call_types import ParsedOutput, ParsedToolCall, ToolSchemas, skip_ws


def decode_json(text: str, pos: int) -> tuple[object, int] | None:
    """The JSON value that starts at text[pos] and the index just after it; None if there is none."""
    try:
        return DECODER.raw_decode(text, pos)
    except (ValueError, RecursionError):
        return None


def load_json(text: str) -> object:
    """The JSON value that is all of ``text`` (whitespace aside); None if there is none."""
    found = decode_json(text, skip_ws(text, 0))
    if found is None or skip_ws(text, found[1]) != len(text):
        return None
    return found[0]


def to_call(obj: object, tools: ToolSchemas) -> ParsedToolCall | None:
    """The call a decoded ``{"name": ..., "arguments"|"parameters": {...}}`` is; None if it is not one."""
    if not isinstance(obj, dict):
        return None
    name = obj.get("name")
    if not isinstance(name, str) or not name or (tools and name not in tools):
        return None
    keys = [key for key in ("arguments", "parameters") if key in obj]
    if len(keys) != 1:
        return None
    arguments = obj[keys[0]]
    if isinstance(arguments, str):  # double-encoded
        arguments = load_json(arguments)
    if not isinstance(arguments, dict):
        return None
    try:  # a number beyond a double's range (1e999) decodes as infinity: not JSON
        return ParsedToolCall(name, json.dumps(arguments, ensure_ascii=False, allow_nan=False))
    except ValueError:
        return None


def calls_in_list(value: object, tools: ToolSchemas) -> tuple[ParsedToolCall, ...] | None:
    if not isinstance(value, list) or not value:
        return None
    calls: list[ParsedToolCall] = []
    for item in value:
        call = to_call(item, tools)
        if call is None:
            return None
        calls.append(call)
    return tuple(calls)


def outcome(text: str, content: str, calls: tuple[ParsedToolCall, ...] | None) -> ParsedOutput:
    return ParsedOutput(text, ()) if calls is None else ParsedOutput(content, calls)


ReadCall = Callable[[str, int, ToolSchemas], "tuple[ParsedToolCall, int] | None"]


def calls_after(text: str, opening: str, tools: ToolSchemas, read: ReadCall) -> ParsedOutput:
    """The content before the first ``opening`` and the calls from it to the end, each
    opening with it (whitespace between them): `read` takes one at its opening and gives it
    and the index after it, or None when it is not well formed."""
    start = text.find(opening)
    if start == -1:
        return ParsedOutput(text, ())
    calls: list[ParsedToolCall] = []
    pos = start
    while pos < len(text):
        found = read(text, pos, tools) if text.startswith(opening, pos) else None
        if found is None:
            return ParsedOutput(text, ())
        calls.append(found[0])
        pos = skip_ws(text, found[1])
    return ParsedOutput(text[:start].rstrip(), tuple(calls))


def arguments_object(call: ParsedToolCall) -> dict[str, Any]:
    """A call's arguments, to render; raises ValueError when they are not a JSON object."""
    arguments = load_json(call.arguments)
    if not isinstance(arguments, dict):
        raise ValueError(f"tool call {call.name!r}: arguments are not a JSON object: {call.arguments!r}")
    return arguments


def call_object(call: ParsedToolCall, arguments_key: str) -> dict[str, object]:
    return {"name": call.name, arguments_key: arguments_object(call)}


def dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)
