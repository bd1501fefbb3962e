"""Forced calls read past thinking kept in the text (ostinato/calls_after_thinking.py)."""

from __future__ import annotations

import pytest

from ostinato.calls_after_thinking import CallsAfterThinking
from ostinato.tool_formats import get_parser

TOOLS = {"f": {"type": "object", "properties": {"x": {"type": "integer"}}}}
CALL = '[{"name": "f", "parameters": {"x": 1}}]'
PARSER = CallsAfterThinking(get_parser("json_array"), "</think>")


@pytest.mark.parametrize(("text", "content", "calls", "opens_at"), [
    # the thinking (opened by the model, or by the template), then the calls
    (f"<think>\nhm\n</think>\n\n{CALL}", "<think>\nhm\n</think>", 1, 19),
    (f"hm\n</think>\n\n{CALL}", "hm\n</think>", 1, 11),
    # thinking switched off: the array alone
    (CALL, "", 1, 0),
    # cut in the thinking (max_tokens), or no array after it: content
    ("<think>\nhm", "<think>\nhm", 0, -1),
    ("hm\n</think>\n\nI cannot.", "hm\n</think>\n\nI cannot.", 0, -1),
])
def test_calls_are_read_after_the_thinking(text: str, content: str, calls: int,
                                           opens_at: int) -> None:
    out = PARSER.parse(text, TOOLS)
    assert out.content == content and len(out.tool_calls) == calls
    if calls:
        assert out.tool_calls[0].name == "f" and out.tool_calls[0].arguments == '{"x": 1}'
    assert PARSER.opens_at(text) == opens_at
    assert PARSER.may_start(text) == 0  # held whole until the output ends
    assert (PARSER.name, PARSER.numbered_ids) == ("json_array", False)
