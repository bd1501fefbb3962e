"""Call validation and prompt rendering (pure)."""

from __future__ import annotations

import json

import pytest

from gateway.calls import CallLimits, InvalidCall, normalize_call
from ostinato.sdk_types import call_spec

LIMITS = CallLimits(max_prompt_chars=1000, max_messages=4, default_max_new_tokens=64,
                    max_new_tokens_limit=512)
USER = [{"role": "user", "content": "hello"}]


def _tool(name: str, prop: dict, defs: dict) -> dict:
    return {"type": "function", "function": {"name": name, "parameters": {
        "type": "object", "properties": {"p": prop}, "$defs": defs}}}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs messages or a prompt"),
        ({"messages": USER, "prompt": "x"}, "either messages or a prompt"),
        ({"messages": [{"role": "user", "content": ""}]}, "every message is empty"),
        ({"messages": [{"role": "wizard", "content": "x"}]}, "role must be one of"),
        ({"messages": USER * 5}, "too many messages"),
        ({"prompt": "x" * 1001}, "prompt too large"),
        # a tool call's arguments are rendered into the prompt: counted with the text
        ({"messages": [*USER, {"role": "assistant", "content": "", "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f",
                                                         "arguments": json.dumps({"x": "y" * 1000})}}]}]},
         "prompt too large"),
        ({"prompt": "x", "call_id": "a/b"}, "call_id"),
        ({"prompt": "x", "call_id": "a", "parents": ["a"]}, "own parent"),
        ({"prompt": "x", "max_tokens": 513}, "max_new_tokens"),
        ({"prompt": "x", "max_tokens": 0}, "at least 1"),  # set to 0: refused, as over HTTP
        ({"prompt": "x", "thread_id": "t" * 129}, "thread_id"),
        ({"prompt": "x", "temperature": 3.0}, "temperature"),
        ({"prompt": "x", "top_p": 0.0}, "top_p"),
        # forced tool calls: one schema holds every tool's definitions, alike or refused
        ({"messages": USER, "tool_choice": "required", "tools": [
            _tool("a", {"$ref": "#/$defs/X"}, {"X": {"type": "string"}}),
            _tool("b", {"$ref": "#/$defs/X"}, {"X": {"type": "integer"}})]},
         r"tools define \$defs/X differently"),
    ],
)
def test_invalid_calls_are_rejected_with_a_reason(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidCall, match=message):
        normalize_call(call_spec(**kwargs), LIMITS)


def test_normalize_fills_defaults_without_touching_the_input() -> None:
    spec = call_spec(messages=USER)
    out = normalize_call(spec, LIMITS)
    assert out.call_id and out.thread_id == "main" and out.sampling.max_new_tokens == 64
    assert spec.call_id == "" and not spec.sampling.HasField("max_new_tokens")
