"""What the tool-call formats (ostinato/tool_formats.py) take and give: pure data, no parsing."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

# The tools a call offers: each one's name -> its parameters' JSON schema ({} for none given).
# Empty: any name is taken, and no argument has a declared type.
ToolSchemas = Mapping[str, Mapping[str, Any]]


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
    # the model names its calls "functions.NAME:N", N counting the conversation's calls
    # (Kimi K2; SGLang's server gives the calls these ids); else the ids are the server's
    numbered_ids: bool

    def parse(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        """The content and the tool calls of a whole output; see ostinato/tool_formats.py."""
        ...

    def opens_at(self, text: str) -> int:
        """Where calls plainly begin in ``text`` (their opening tag, or what can only be a
        call); -1 when nowhere. An output cut off (max_tokens) after that point is a call
        cut short, not content."""
        ...

    def may_start(self, text: str, continued: bool = False) -> int:
        """For streaming: the index in ``text`` (the output so far) from which it is, or may become, a
        tool call; len(text) when nothing at its end can start one. The caller streams text[:index]
        as content and holds back the rest until more text arrives or the output ends.
        ``continued``: ``text`` is what follows content already streamed (no call starts in
        that), not the output's start, so that the caller scans only what it still holds."""
        ...

    def complete_calls(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        """Of an output cut short (max_tokens or a stop string ended it, not the model), the
        calls complete before the one that was cut, and the content before them, as SGLang's
        detectors keep them; none: ``ParsedOutput(text, ())``."""
        ...


class ToolFormat(ToolCallParser, Protocol):
    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        """The text a model of this family writes for ``calls`` (at least one)."""
        ...


class OpenedByTag:
    """opens_at, may_start and complete_calls of a format whose calls open with one tag,
    `opening`, each of them (a format whose calls are in one section that the tag begins
    overrides complete_calls)."""

    opening: str

    def parse(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        raise NotImplementedError

    def opens_at(self, text: str) -> int:
        return text.find(self.opening)

    def may_start(self, text: str, continued: bool = False) -> int:
        return tag_may_start(text, self.opening)

    def complete_calls(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        return calls_before_mark(self.parse, text, tools, self.opens_at(text), self.opening)


# How many of the last call marks an output cut short is tried before (each try parses
# what precedes the mark: a mark inside the cut call's own arguments costs one more)
MARKS_TRIED = 16


def calls_before_mark(parse: Callable[[str, ToolSchemas], ParsedOutput], text: str,
                      tools: ToolSchemas, start: int, mark: str) -> ParsedOutput:
    """complete_calls by `parse`: the calls of the text before the last `mark` after `start`
    (where the calls begin) that it reads as calls, the cut call's text left out."""
    end = len(text)
    for _ in range(MARKS_TRIED if start != -1 else 0):
        end = text.rfind(mark, start + 1, end)
        if end == -1:
            break
        parsed = parse(text[:end], tools)
        if parsed.tool_calls:
            return parsed
    return ParsedOutput(text, ())


def tag_may_start(text: str, tag: str) -> int:
    """Where ``tag`` first occurs in text, else where a suffix that is a proper prefix of it starts."""
    at = text.find(tag)
    if at != -1:
        return at
    for length in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:length]):
            return len(text) - length
    return len(text)


def skip_ws(text: str, pos: int) -> int:
    while pos < len(text) and text[pos].isspace():
        pos += 1
    return pos
