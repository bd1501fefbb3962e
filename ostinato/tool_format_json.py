"""The formats whose calls are JSON objects: hermes / qwen25, llama3, mistral, json_array
(documented in ostinato/tool_formats.py)."""

from __future__ import annotations

import re
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
from ostinato.tool_call_types import (
    OpenedByTag,
    ParsedOutput,
    ParsedToolCall,
    ToolSchemas,
    calls_before_mark,
    skip_ws,
    tag_may_start,
)

_TOOL_CALL_OPEN = "<tool_call>"
_TOOL_CALL_CLOSE = "</tool_call>"
_PYTHON_TAG = "<|python_tag|>"
_MISTRAL_TAG, _MISTRAL_ARGS = "[TOOL_CALLS]", "[ARGS]"
_NAMED_OBJECT = re.compile(r'\s*\{\s*"name"')  # what only a llama3 call begins with


class Hermes(OpenedByTag):
    numbered_ids = False
    opening = _TOOL_CALL_OPEN

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
            value = found[0]  # one call, or a list of them (as SGLang also reads)
            one = to_call(value, tools)
            block = calls_in_list(value, tools) if isinstance(value, list) else (
                None if one is None else (one,))
            pos = skip_ws(text, found[1])
            if block is None or not text.startswith(_TOOL_CALL_CLOSE, pos):
                return None
            calls.extend(block)
            pos = skip_ws(text, pos + len(_TOOL_CALL_CLOSE))
        return tuple(calls)

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
            if pos < len(text) and text[pos] == ";":  # the separator (also after the last)
                pos = skip_ws(text, pos + 1)
            if pos == len(text):
                return tuple(calls)

    def complete_calls(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        return calls_before_mark(self.parse, text, tools, self.opens_at(text), ";")

    def opens_at(self, text: str) -> int:
        at = text.find(_PYTHON_TAG)
        return 0 if at == -1 and _NAMED_OBJECT.match(text) else at

    def may_start(self, text: str, continued: bool = False) -> int:
        if not continued:
            head = skip_ws(text, 0)
            if head == len(text) or text.startswith(("{", _PYTHON_TAG), head):
                return 0  # the whole output may be calls
        return tag_may_start(text, _PYTHON_TAG)

    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        return _PYTHON_TAG + ";".join(dumps(call_object(call, "parameters")) for call in calls)


class Mistral(OpenedByTag):
    numbered_ids = False
    opening = _MISTRAL_TAG

    name = "mistral"

    def parse(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        tag_at = text.find(_MISTRAL_TAG)
        if tag_at == -1:
            return ParsedOutput(text, ())
        after = skip_ws(text, tag_at + len(_MISTRAL_TAG))
        if text.startswith(("[", "{"), after):
            value = load_json(text[after:])
            calls = calls_in_list([value] if isinstance(value, dict) else value, tools)
        else:
            calls = self._compact(text, tag_at, tools)
        return outcome(text, text[:tag_at].rstrip(), calls)

    def complete_calls(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        """An array's calls complete before the cut, or the compact form's (one tag a call)."""
        tag_at = text.find(_MISTRAL_TAG)
        after = skip_ws(text, tag_at + len(_MISTRAL_TAG))
        if tag_at != -1 and text.startswith("[", after):
            return outcome(text, text[:tag_at].rstrip(),
                           calls_in_list(_leading_items(text[after:]), tools))
        return super().complete_calls(text, tools)

    @staticmethod
    def _compact(text: str, pos: int, tools: ToolSchemas) -> tuple[ParsedToolCall, ...] | None:
        """Newer Mistral models' (Small 3.2, Magistral, Devstral): [TOOL_CALLS]NAME[ARGS]{...}
        per call, one after another."""
        calls: list[ParsedToolCall] = []
        while pos < len(text):
            args_at = text.find(_MISTRAL_ARGS, pos)
            if not text.startswith(_MISTRAL_TAG, pos) or args_at == -1:
                return None
            found = decode_json(text, skip_ws(text, args_at + len(_MISTRAL_ARGS)))
            call = None if found is None else to_call(
                {"name": text[pos + len(_MISTRAL_TAG):args_at].strip(), "arguments": found[0]},
                tools)
            if found is None or call is None:
                return None
            calls.append(call)
            pos = skip_ws(text, found[1])
        return tuple(calls)

    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        return f"{_MISTRAL_TAG} {dumps([call_object(call, 'arguments') for call in calls])}"


class JsonArray:
    numbered_ids = False

    name = "json_array"

    def parse(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        return outcome(text, "", calls_in_list(load_json(text), tools))

    def complete_calls(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        return outcome(text, "", calls_in_list(_leading_items(text), tools))

    def opens_at(self, text: str) -> int:
        return 0 if text.lstrip().startswith("[") else -1

    def may_start(self, text: str, continued: bool = False) -> int:
        if continued:
            return len(text)
        head = skip_ws(text, 0)
        return 0 if head == len(text) or text.startswith("[", head) else len(text)

    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        return dumps([call_object(call, "parameters") for call in calls])


def _leading_items(text: str) -> list[object] | None:
    """The items complete before the end of an array that `text` opens and does not close
    (none: None)."""
    pos = skip_ws(text, 0)
    if not text.startswith("[", pos):
        return None
    items: list[object] = []
    pos += 1
    while (found := decode_json(text, skip_ws(text, pos))) is not None:
        items.append(found[0])
        pos = skip_ws(text, found[1])
        if not text.startswith(",", pos):
            # closed, with text after it: not cut short (what follows is no call's)
            return None if pos < len(text) else items
        pos += 1
    return items or None
