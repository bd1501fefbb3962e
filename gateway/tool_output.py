"""Splitting a streamed output into content and tool calls, as it arrives.

Content streams as soon as it cannot be the start of a tool call (the parser's
`may_start`) nor whitespace that would end the content before one; the rest is held
back until the output ends, then parsed whole. Output the
parser cannot read as calls (malformed, truncated) is content, never an error.
"""

from __future__ import annotations

import uuid

from ostinato.tool_formats import ToolCallParser
from ostinato.v1 import common_pb2


def new_tool_call_id() -> str:
    return "call_" + uuid.uuid4().hex[:24]


class ToolOutput:
    def __init__(self, parser: ToolCallParser | None, tool_names: frozenset[str],
                 single_call: bool = False) -> None:
        self._parser = parser
        self._names = tool_names
        self._single = single_call
        self._text = ""
        self._sent = 0

    def feed(self, delta: str) -> str:
        """Takes the next piece of output; returns the content that may be streamed now."""
        self._text += delta
        parser = self._parser
        if parser is None:
            cut = len(self._text)
        else:  # trailing whitespace waits too: content before calls loses it
            cut = max(self._sent, len(self._text[:parser.may_start(self._text)].rstrip()))
        out, self._sent = self._text[self._sent:cut], cut
        return out

    def finish(self) -> tuple[str, str, list[common_pb2.ToolCall]]:
        """At the output's end: (content still to stream, the whole content, tool calls)."""
        if self._parser is None:
            return self._text[self._sent:], self._text, []
        parsed = self._parser.parse(self._text, self._names)
        if not parsed.tool_calls:
            return self._text[self._sent:], self._text, []
        calls = parsed.tool_calls[:1] if self._single else parsed.tool_calls
        sent = self._text[:self._sent]
        rest = parsed.content[len(sent):] if parsed.content.startswith(sent) else ""
        return rest, sent + rest, [
            common_pb2.ToolCall(id=new_tool_call_id(), name=c.name, arguments=c.arguments)
            for c in calls]
