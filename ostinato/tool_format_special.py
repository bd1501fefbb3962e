"""The formats framed by the model's special tokens, arguments as JSON: deepseekv3,
deepseekv31 and kimi_k2 (documented in ostinato/tool_formats.py)."""

from __future__ import annotations

import re
from collections.abc import Sequence

from ostinato.tool_call_json import arguments_object, decode_json, dumps, outcome, to_call
from ostinato.tool_call_types import (
    OpenedByTag,
    ParsedOutput,
    ParsedToolCall,
    ToolSchemas,
    calls_before_mark,
    skip_ws,
)


def _deepseek(token: str) -> str:
    """DeepSeek's token: "tool_sep" -> <\uff5ctool\u2581sep\uff5c>, the bars U+FF5C, the
    space U+2581."""
    return "<\uff5c" + token.replace("_", "\u2581") + "\uff5c>"


_DS_BEGIN, _DS_END = _deepseek("tool_calls_begin"), _deepseek("tool_calls_end")
_DS_CALL, _DS_CALL_END = _deepseek("tool_call_begin"), _deepseek("tool_call_end")
_DS_SEP = _deepseek("tool_sep")
_FENCE_OPEN, _FENCE_CLOSE = "```json", "```"
_KIMI_BEGIN, _KIMI_END = "<|tool_calls_section_begin|>", "<|tool_calls_section_end|>"
_KIMI_CALL, _KIMI_CALL_END = "<|tool_call_begin|>", "<|tool_call_end|>"
_KIMI_ARGS = "<|tool_call_argument_begin|>"
_KIMI_ID = re.compile(r"(?:functions\.)?([\w.\-]+):\d+")


class _Sectioned(OpenedByTag):
    """Calls between a section's begin and end tokens (the end may be cut off by the end of
    the output: the model's end of turn follows it), each call between its own tokens."""

    name: str
    numbered_ids = False
    end: str
    call_tag: str

    def parse(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        start = text.find(self.opening)
        if start == -1:
            return ParsedOutput(text, ())
        calls: list[ParsedToolCall] = []
        pos = skip_ws(text, start + len(self.opening))
        while text.startswith(self.call_tag, pos):
            found = self._call(text, pos + len(self.call_tag), tools, len(calls))
            if found is None:
                return ParsedOutput(text, ())
            calls.append(found[0])
            pos = skip_ws(text, found[1])
        if text.startswith(self.end, pos):
            pos = skip_ws(text, pos + len(self.end))
        well_formed = calls and pos == len(text)
        return outcome(text, text[:start].rstrip(), tuple(calls) if well_formed else None)

    def complete_calls(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        return calls_before_mark(self.parse, text, tools, self.opens_at(text), self.call_tag)

    def _call(self, text: str, pos: int, tools: ToolSchemas,
              index: int) -> tuple[ParsedToolCall, int] | None:
        raise NotImplementedError

    @staticmethod
    def _json_call(text: str, pos: int, name: str, tools: ToolSchemas,
                   closing: Sequence[str]) -> tuple[ParsedToolCall, int] | None:
        """The call whose JSON arguments start at pos, then the ``closing`` marks in turn."""
        found = decode_json(text, skip_ws(text, pos))
        call = None if found is None else to_call({"name": name, "arguments": found[0]}, tools)
        if found is None or call is None:
            return None
        pos = found[1]
        for mark in closing:
            pos = skip_ws(text, pos)
            if not text.startswith(mark, pos):
                return None
            pos += len(mark)
        return call, pos


class DeepSeekV3(_Sectioned):
    """tool_calls_begin (tool_call_begin "function" tool_sep NAME, a newline, ```json
    ARGUMENTS ``` tool_call_end)* tool_calls_end (DeepSeek's tokens, _deepseek)."""

    name = "deepseekv3"
    opening, end, call_tag = _DS_BEGIN, _DS_END, _DS_CALL

    def _call(self, text: str, pos: int, tools: ToolSchemas,
              index: int) -> tuple[ParsedToolCall, int] | None:
        head = "function" + _DS_SEP
        line_end = text.find("\n", pos)
        if not text.startswith(head, pos) or line_end == -1:
            return None
        name = text[pos + len(head):line_end].strip()
        pos = skip_ws(text, line_end)
        if not text.startswith(_FENCE_OPEN, pos):
            return None
        return self._json_call(text, pos + len(_FENCE_OPEN), name, tools,
                               (_FENCE_CLOSE, _DS_CALL_END))

    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        return _DS_BEGIN + "\n".join(
            f"{_DS_CALL}function{_DS_SEP}{call.name}\n{_FENCE_OPEN}\n{dumps(arguments_object(call))}\n"
            f"{_FENCE_CLOSE}{_DS_CALL_END}" for call in calls) + _DS_END


class DeepSeekV31(_Sectioned):
    """tool_calls_begin (tool_call_begin NAME tool_sep ARGUMENTS tool_call_end)*
    tool_calls_end (DeepSeek's tokens, _deepseek): DeepSeek V3.1 and later."""

    name = "deepseekv31"
    opening, end, call_tag = _DS_BEGIN, _DS_END, _DS_CALL

    def _call(self, text: str, pos: int, tools: ToolSchemas,
              index: int) -> tuple[ParsedToolCall, int] | None:
        sep = text.find(_DS_SEP, pos)
        if sep == -1:
            return None
        return self._json_call(text, sep + len(_DS_SEP), text[pos:sep].strip(), tools,
                               (_DS_CALL_END,))

    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        return _DS_BEGIN + "".join(
            f"{_DS_CALL}{call.name}{_DS_SEP}{dumps(arguments_object(call))}{_DS_CALL_END}"
            for call in calls) + _DS_END


class KimiK2(_Sectioned):
    """<|tool_calls_section_begin|> (<|tool_call_begin|>functions.NAME:N
    <|tool_call_argument_begin|>ARGUMENTS<|tool_call_end|>)* <|tool_calls_section_end|>.
    N counts the conversation's calls; SGLang's server makes "functions.NAME:N" the call's
    id. A bare counter for an id is read as the one tool's call when only one is offered."""

    name = "kimi_k2"
    numbered_ids = True
    opening, end, call_tag = _KIMI_BEGIN, _KIMI_END, _KIMI_CALL

    def _call(self, text: str, pos: int, tools: ToolSchemas,
              index: int) -> tuple[ParsedToolCall, int] | None:
        args = text.find(_KIMI_ARGS, pos)
        if args == -1:
            return None
        call_id = text[pos:args].strip()
        named = _KIMI_ID.fullmatch(call_id)
        if named:
            name = named.group(1)
        elif call_id.isdigit() and len(tools) == 1:
            name = next(iter(tools))
        else:
            return None
        return self._json_call(text, args + len(_KIMI_ARGS), name, tools, (_KIMI_CALL_END,))

    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        return _KIMI_BEGIN + "".join(
            f"{_KIMI_CALL}functions.{call.name}:{i}{_KIMI_ARGS}{dumps(arguments_object(call))}"
            f"{_KIMI_CALL_END}" for i, call in enumerate(calls)) + _KIMI_END
