"""Forced calls read past thinking kept in the text.

With tool_choice required or a named function the whole answer is a JSON array of calls
(`json_array`), and a reasoning model writes it after its thinking (SGLang's reasoning gate,
require_reasoning). Where the client keeps the thinking in the text (SGLang's
`separate_reasoning: false`) the output is `<think>...</think>` then the array, which the
array's reader alone takes for content (SGLang's own server does so too: its
`_process_tool_calls` loads the whole text as JSON). Here the calls are read from what
follows the thinking's end tag, and the thinking is the content. Pure.
"""

from __future__ import annotations

from collections.abc import Callable

from ostinato.tool_call_types import ParsedOutput, ToolCallParser, ToolSchemas


class CallsAfterThinking:
    """`inner` (the forced calls' parser) applied past the first `end` tag (the thinking's);
    an output without one (thinking switched off, or cut by max_tokens) is read whole."""

    def __init__(self, inner: ToolCallParser, end: str) -> None:
        self.inner = inner
        self.end = end
        self.name = inner.name
        self.numbered_ids = inner.numbered_ids

    def _cut(self, text: str) -> int:
        at = text.find(self.end)
        return -1 if at < 0 else at + len(self.end)

    def parse(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        return self._past_thinking(self.inner.parse, text, tools)

    def complete_calls(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        return self._past_thinking(self.inner.complete_calls, text, tools)

    def _past_thinking(self, read: Callable[[str, ToolSchemas], ParsedOutput], text: str,
                       tools: ToolSchemas) -> ParsedOutput:
        cut = self._cut(text)
        if cut < 0:
            return read(text, tools)
        after = read(text[cut:], tools)
        if not after.tool_calls:
            return ParsedOutput(text, ())
        return ParsedOutput(text[:cut] + after.content, after.tool_calls)

    def opens_at(self, text: str) -> int:
        cut = self._cut(text)
        if cut < 0:
            return self.inner.opens_at(text)
        at = self.inner.opens_at(text[cut:])
        return -1 if at < 0 else cut + at

    def may_start(self, text: str, continued: bool = False) -> int:
        """All of it held: the thinking, then the calls, are read when the output ends."""
        return 0
