"""The formats whose calls are JSON objects: hermes / qwen25, llama3, mistral, json_array
(documented in ostinato/tool_formats.py)."""

from __future__ import annotations

from collections.abc import Sequence

from ostinato.tool_call_json import (
    call_object,
    calls_in_list,
    decode_json,
    dumps,
    load_json,
    outcome,
    to_call,
)
from ostinato.tool_call_types import ParsedOutput, ParsedToolCall, ToolSchemas, skip_ws, tag_may_start

_TOOL_CALL_OPEN = "<tool_call>"
_TOOL_CALL_CLOSE = "</tool_call>"
_PYTHON_TAG = "<|python_tag|>"
_MISTRAL_TAG = "[TOOL_CALLS]"


class Hermes:
    numbered_ids = False

    def __init__(self, name: str) -> None:
        self.name = name

    def parse(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        start = text.find(_TOOL_CALL_OPEN)
        if start == -1:
            return ParsedOutput(text, ())
        return outcome(text, text[:start].rstrip(), self._blocks(text, start, tools))

    @staticmethod
    def _blocks(text: str, pos: int, tools: ToolSchemas) -> tuple[ParsedToolCall, ...] | None:
        calls: list[ParsedToolCall] = []
        while pos < len(text):
            if not text.startswith(_TOOL_CALL_OPEN, pos):
                return None
            found = decode_json(text, skip_ws(text, pos + len(_TOOL_CALL_OPEN)))
            if found is None:
                return None
            call = to_call(found[0], tools)
            pos = skip_ws(text, found[1])
            if call is None or not text.startswith(_TOOL_CALL_CLOSE, pos):
                return None
            calls.append(call)
            pos = skip_ws(text, pos + len(_TOOL_CALL_CLOSE))
        return tuple(calls)

    def may_start(self, text: str) -> int:
        return tag_may_start(text, _TOOL_CALL_OPEN)

    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        return "\n".join(
            f"{_TOOL_CALL_OPEN}\n{dumps(call_object(call, 'arguments'))}\n{_TOOL_CALL_CLOSE}"
            for call in calls
        )


class Llama3:
    numbered_ids = False

    name = "llama3"

    def parse(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        tag_at = text.find(_PYTHON_TAG)
        if tag_at != -1:
            calls = self._objects(text, tag_at + len(_PYTHON_TAG), tools)
            return outcome(text, text[:tag_at].rstrip(), calls)
        if text.lstrip().startswith("{"):
            return outcome(text, "", self._objects(text, 0, tools))
        return ParsedOutput(text, ())

    @staticmethod
    def _objects(text: str, pos: int, tools: ToolSchemas) -> tuple[ParsedToolCall, ...] | None:
        calls: list[ParsedToolCall] = []
        while True:
            found = decode_json(text, skip_ws(text, pos))
            call = None if found is None else to_call(found[0], tools)
            if found is None or call is None:
                return None
            calls.append(call)
            pos = skip_ws(text, found[1])
            if pos == len(text):
                return tuple(calls)
            if text[pos] != ";":
                return None
            pos += 1

    def may_start(self, text: str) -> int:
        head = text.lstrip()
        if not head or head.startswith(("{", _PYTHON_TAG)):
            return 0  # the whole output may be calls
        return tag_may_start(text, _PYTHON_TAG)

    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        return _PYTHON_TAG + ";".join(dumps(call_object(call, "parameters")) for call in calls)


class Mistral:
    numbered_ids = False

    name = "mistral"

    def parse(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        tag_at = text.find(_MISTRAL_TAG)
        if tag_at == -1:
            return ParsedOutput(text, ())
        value = load_json(text[tag_at + len(_MISTRAL_TAG) :])
        if isinstance(value, dict):
            value = [value]
        return outcome(text, text[:tag_at].rstrip(), calls_in_list(value, tools))

    def may_start(self, text: str) -> int:
        return tag_may_start(text, _MISTRAL_TAG)

    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        return f"{_MISTRAL_TAG} {dumps([call_object(call, 'arguments') for call in calls])}"


class JsonArray:
    numbered_ids = False

    name = "json_array"

    def parse(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        return outcome(text, "", calls_in_list(load_json(text), tools))

    def may_start(self, text: str) -> int:
        head = text.lstrip()
        return 0 if not head or head.startswith("[") else len(text)

    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        return dumps([call_object(call, "parameters") for call in calls])
