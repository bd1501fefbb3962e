"""Tool calls in an LLM's output text: parsed in the model family's format, and rendered back.

The formats follow SGLang's function-call detectors (python/sglang/srt/function_call/ in
sgl-project/sglang), selected there with --tool-call-parser:

hermes, qwen25 (HermesDetector, Qwen25Detector)
    The content, then one ``<tool_call>`` block per call, the blocks separated by a newline::

        Let me look that up.
        <tool_call>
        {"name": "get_weather", "arguments": {"city": "Paris"}}
        </tool_call>

    Parsing also accepts the blocks without the newlines inside and between the tags.

llama3 (Llama32Detector: Llama 3.1/3.2 JSON tool calling)
    The content, ``<|python_tag|>``, then JSON objects separated by ``;`` (the separator SGLang uses;
    parsing allows whitespace around it)::

        <|python_tag|>{"name": "get_weather", "parameters": {"city": "Paris"}};{"name": ...}

    The tag may be left out when the output is only calls: output that starts (after whitespace) with
    ``{`` and parses as calls is calls; any other JSON object (a JSON answer, say) is content.

mistral (MistralDetector)
    The content, then ``[TOOL_CALLS]`` and one JSON array of calls (a single object is accepted too)::

        [TOOL_CALLS] [{"name": "get_weather", "arguments": {"city": "Paris"}}]

json_array
    The whole output is a JSON array of calls: what SGLang's constrained decoding makes any model emit
    for tool_choice "required" or a named function (the schema of function_call/utils.py)::

        [{"name": "get_weather", "parameters": {"city": "Paris"}}]

Every format takes the arguments from either "arguments" or "parameters" (not both), and accepts them
double-encoded, as a JSON string holding the object. Rendering writes the key the family's models
write: "arguments" for hermes, qwen25 and mistral, "parameters" for llama3 and json_array.

Parsing decides per whole output and never raises. Either everything from the start of the calls to
the end of the output is well-formed calls, and the content is the text before them with its trailing
whitespace removed ("" when the output is only calls); or the output has no calls and all of it,
unchanged, is the content. Not well-formed: bad or truncated JSON (max_tokens ran out), a missing or
unclosed tag, a call without a name, arguments that are not an object, a name outside ``tool_names``
when that is non-empty, an empty list of calls, or text after the calls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol


@dataclass(frozen=True)
class ParsedToolCall:
    name: str
    arguments: str  # a JSON object text, canonical: json.dumps(obj, ensure_ascii=False)


@dataclass(frozen=True)
class ParsedOutput:
    content: str
    tool_calls: tuple[ParsedToolCall, ...]


class ToolCallParser(Protocol):
    name: str

    def parse(self, text: str, tool_names: frozenset[str]) -> ParsedOutput:
        """The content and the tool calls of a whole output; see the module docstring."""
        ...

    def may_start(self, text: str) -> int:
        """For streaming: the index in ``text`` (the output so far) from which it is, or may become, a
        tool call; len(text) when nothing at its end can start one. The caller streams text[:index]
        as content and holds back the rest until more text arrives or the output ends."""
        ...


class _Format(ToolCallParser, Protocol):
    def render(self, calls: Sequence[ParsedToolCall]) -> str: ...


# --- JSON helpers -------------------------------------------------------------------------------


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity, which json.dumps would write back


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos


def _decode(text: str, pos: int) -> tuple[object, int] | None:
    """The JSON value that starts at text[pos] and the index just after it; None if there is none."""
    try:
        return _DECODER.raw_decode(text, pos)
    except (ValueError, RecursionError):
        return None


def _load(text: str) -> object:
    """The JSON value that is all of ``text`` (whitespace aside); None if there is none."""
    found = _decode(text, _skip_ws(text, 0))
    if found is None or _skip_ws(text, found[1]) != len(text):
        return None
    return found[0]


# --- calls --------------------------------------------------------------------------------------


def _to_call(obj: object, tool_names: frozenset[str]) -> ParsedToolCall | None:
    """The call a decoded ``{"name": ..., "arguments"|"parameters": {...}}`` is; None if it is not one."""
    if not isinstance(obj, dict):
        return None
    name = obj.get("name")
    if not isinstance(name, str) or not name or (tool_names and name not in tool_names):
        return None
    keys = [key for key in ("arguments", "parameters") if key in obj]
    if len(keys) != 1:
        return None
    arguments = obj[keys[0]]
    if isinstance(arguments, str):  # double-encoded
        arguments = _load(arguments)
    if not isinstance(arguments, dict):
        return None
    return ParsedToolCall(name, json.dumps(arguments, ensure_ascii=False))


def _calls_in_list(value: object, tool_names: frozenset[str]) -> tuple[ParsedToolCall, ...] | None:
    if not isinstance(value, list) or not value:
        return None
    calls: list[ParsedToolCall] = []
    for item in value:
        call = _to_call(item, tool_names)
        if call is None:
            return None
        calls.append(call)
    return tuple(calls)


def _outcome(text: str, content: str, calls: tuple[ParsedToolCall, ...] | None) -> ParsedOutput:
    return ParsedOutput(text, ()) if calls is None else ParsedOutput(content, calls)


def _call_object(call: ParsedToolCall, arguments_key: str) -> dict[str, object]:
    arguments = _load(call.arguments)
    if not isinstance(arguments, dict):
        raise ValueError(f"tool call {call.name!r}: arguments are not a JSON object: {call.arguments!r}")
    return {"name": call.name, arguments_key: arguments}


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _tag_may_start(text: str, tag: str) -> int:
    """Where ``tag`` first occurs in text, else where a suffix that is a proper prefix of it starts."""
    at = text.find(tag)
    if at != -1:
        return at
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:length]):
            return len(text) - length
    return len(text)


# --- the formats --------------------------------------------------------------------------------

_TOOL_CALL_OPEN = "<tool_call>"
_TOOL_CALL_CLOSE = "</tool_call>"
_PYTHON_TAG = "<|python_tag|>"
_MISTRAL_TAG = "[TOOL_CALLS]"


class _Hermes:
    def __init__(self, name: str) -> None:
        self.name = name

    def parse(self, text: str, tool_names: frozenset[str]) -> ParsedOutput:
        start = text.find(_TOOL_CALL_OPEN)
        if start == -1:
            return ParsedOutput(text, ())
        return _outcome(text, text[:start].rstrip(), self._blocks(text, start, tool_names))

    @staticmethod
    def _blocks(text: str, pos: int, tool_names: frozenset[str]) -> tuple[ParsedToolCall, ...] | None:
        calls: list[ParsedToolCall] = []
        while pos < len(text):
            if not text.startswith(_TOOL_CALL_OPEN, pos):
                return None
            found = _decode(text, _skip_ws(text, pos + len(_TOOL_CALL_OPEN)))
            if found is None:
                return None
            call = _to_call(found[0], tool_names)
            pos = _skip_ws(text, found[1])
            if call is None or not text.startswith(_TOOL_CALL_CLOSE, pos):
                return None
            calls.append(call)
            pos = _skip_ws(text, pos + len(_TOOL_CALL_CLOSE))
        return tuple(calls)

    def may_start(self, text: str) -> int:
        return _tag_may_start(text, _TOOL_CALL_OPEN)

    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        return "\n".join(
            f"{_TOOL_CALL_OPEN}\n{_dumps(_call_object(call, 'arguments'))}\n{_TOOL_CALL_CLOSE}"
            for call in calls
        )


class _Llama3:
    name = "llama3"

    def parse(self, text: str, tool_names: frozenset[str]) -> ParsedOutput:
        tag_at = text.find(_PYTHON_TAG)
        if tag_at != -1:
            calls = self._objects(text, tag_at + len(_PYTHON_TAG), tool_names)
            return _outcome(text, text[:tag_at].rstrip(), calls)
        if text.lstrip().startswith("{"):
            return _outcome(text, "", self._objects(text, 0, tool_names))
        return ParsedOutput(text, ())

    @staticmethod
    def _objects(text: str, pos: int, tool_names: frozenset[str]) -> tuple[ParsedToolCall, ...] | None:
        calls: list[ParsedToolCall] = []
        while True:
            found = _decode(text, _skip_ws(text, pos))
            call = None if found is None else _to_call(found[0], tool_names)
            if found is None or call is None:
                return None
            calls.append(call)
            pos = _skip_ws(text, found[1])
            if pos == len(text):
                return tuple(calls)
            if text[pos] != ";":
                return None
            pos += 1

    def may_start(self, text: str) -> int:
        head = text.lstrip()
        if not head or head.startswith(("{", _PYTHON_TAG)):
            return 0  # the whole output may be calls
        return _tag_may_start(text, _PYTHON_TAG)

    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        return _PYTHON_TAG + ";".join(_dumps(_call_object(call, "parameters")) for call in calls)


class _Mistral:
    name = "mistral"

    def parse(self, text: str, tool_names: frozenset[str]) -> ParsedOutput:
        tag_at = text.find(_MISTRAL_TAG)
        if tag_at == -1:
            return ParsedOutput(text, ())
        value = _load(text[tag_at + len(_MISTRAL_TAG) :])
        if isinstance(value, dict):
            value = [value]
        return _outcome(text, text[:tag_at].rstrip(), _calls_in_list(value, tool_names))

    def may_start(self, text: str) -> int:
        return _tag_may_start(text, _MISTRAL_TAG)

    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        return f"{_MISTRAL_TAG} {_dumps([_call_object(call, 'arguments') for call in calls])}"


class _JsonArray:
    name = "json_array"

    def parse(self, text: str, tool_names: frozenset[str]) -> ParsedOutput:
        return _outcome(text, "", _calls_in_list(_load(text), tool_names))

    def may_start(self, text: str) -> int:
        head = text.lstrip()
        return 0 if not head or head.startswith("[") else len(text)

    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        return _dumps([_call_object(call, "parameters") for call in calls])


_FORMATS: Mapping[str, _Format] = MappingProxyType(
    {f.name: f for f in (_Hermes("hermes"), _Hermes("qwen25"), _Llama3(), _Mistral(), _JsonArray())}
)

PARSERS: Mapping[str, ToolCallParser] = _FORMATS


def _format(name: str) -> _Format:
    try:
        return _FORMATS[name]
    except KeyError:
        known = ", ".join(sorted(_FORMATS))
        raise ValueError(f"unknown tool call parser {name!r}; known parsers: {known}") from None


def get_parser(name: str) -> ToolCallParser:
    return _format(name)


def render_tool_calls(family: str, calls: Sequence[ParsedToolCall]) -> str:
    """The text a model of ``family`` emits for ``calls`` ("" for none). Raises ValueError for an unknown
    family or arguments that are not a JSON object text. parse(render(calls)) gives back the calls (with
    their arguments in canonical form)."""
    renderer = _format(family)
    return renderer.render(calls) if calls else ""
