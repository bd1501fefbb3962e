"""Responses API truncation "auto": which messages leave first, and what always stays
(table tests)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.responses_format import translate
from gateway.responses_truncation import oldest_droppable, without_oldest

CALL = {"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}", "id": "fc_1"}


def _said(text: str) -> dict[str, Any]:
    return {"role": "user", "content": text}


def _output(call_id: str) -> dict[str, Any]:
    return {"type": "function_call_output", "call_id": call_id, "output": "42"}


@pytest.mark.parametrize(("drop", "kept"), [
    (0, ["instructions", "input[0]", "input[1]", "input[2]", "input[3]", "input[4]"]),
    (1, ["instructions", "input[1]", "input[2]", "input[3]", "input[4]"]),
    # the call leaves: its output goes with it (no result for a call the model never made)
    (2, ["instructions", "input[3]", "input[4]"]),
    (3, ["instructions", "input[3]", "input[4]"]),
    (4, ["instructions", "input[4]"]),
])
def test_truncation_drops_the_oldest_messages_and_the_results_of_dropped_calls(
        drop: int, kept: list[str]) -> None:
    body = {"instructions": "Be brief.", "input": [
        _said("one"), CALL, _output("c1"), _said("two"), _said("three")]}
    chat, sources = translate(body)
    assert oldest_droppable(chat) == 4  # all but the instructions and the last message
    out, where = without_oldest(chat, sources, drop)
    assert where.messages == kept
    assert out["messages"][0]["role"] == "system" and len(where.tool_calls) == len(kept)
    called: set[str] = set()
    for message in out["messages"]:  # every result kept answers a call kept before it
        assert message["role"] != "tool" or message["tool_call_id"] in called
        called.update(c["id"] for c in message.get("tool_calls") or ())


@pytest.mark.parametrize(("items", "instructions", "most", "kept"), [
    # the last turn is a function's output: its call stays with it
    ([_said("one"), _said("two"), CALL, _output("c1")], None, 2, ["input[2]", "input[3]"]),
    ([_said("one"), CALL, _output("c1")], "Be brief.", 1,
     ["instructions", "input[1]", "input[2]"]),
    # a developer message is an instruction, as the system's: kept
    ([{"role": "developer", "content": "Be brief."}, _said("one"), _said("two")], None, 1,
     ["input[0]", "input[2]"]),
])
def test_truncation_keeps_the_instructions_and_the_last_turn(
        items: list, instructions: str | None, most: int, kept: list[str]) -> None:
    body: dict[str, Any] = {"input": items}
    if instructions is not None:
        body["instructions"] = instructions
    chat, sources = translate(body)
    assert oldest_droppable(chat) == most
    assert without_oldest(chat, sources, most + 5)[1].messages == kept  # never more than most
