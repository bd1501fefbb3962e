"""Responses API truncation "auto": the oldest turns of a conversation left out until its
prompt fits the model's window. The instructions (system and developer messages) and the last
turn always stay; a tool result goes with the call it answers. Pure: no I/O; the caller
(gateway/responses_api.py) measures what fits.
"""

from __future__ import annotations

from typing import Any

from gateway.responses_format import Sources

_KEPT_ROLES = ("system", "developer")  # the instructions: never left out


def _tail(messages: list[dict[str, Any]]) -> int:
    """Where the turn truncation always keeps begins: the last message, and when it is a
    tool result, the results before it and the assistant message whose calls they answer."""
    start = len(messages) - 1
    while start > 0 and messages[start]["role"] == "tool":
        start -= 1
    return start if messages[start]["role"] == "assistant" and start < len(messages) - 1 \
        else len(messages) - 1


def without_oldest(chat: dict[str, Any], sources: Sources,
                   count: int) -> tuple[dict[str, Any], Sources]:
    """truncation "auto": `chat` without the `count` oldest messages of the conversation
    (at most `oldest_droppable`: the instructions and the last turn stay), and without the
    tool results whose calls went with them; `sources` to match."""
    kept_messages, kept = [], Sources()
    called: set[str] = set()
    left = min(count, oldest_droppable(chat))
    for message, where, calls in zip(chat["messages"], sources.messages, sources.tool_calls,
                                     strict=True):
        if message["role"] not in _KEPT_ROLES and left > 0:
            left -= 1
            continue
        if message["role"] == "tool" and message.get("tool_call_id") not in called:
            continue  # its call was dropped
        called.update(c.get("id") for c in message.get("tool_calls") or ())
        kept_messages.append(message)
        kept.add(where)
        kept.tool_calls[-1] = calls
    return {**chat, "messages": kept_messages}, kept


def oldest_droppable(chat: dict[str, Any]) -> int:
    """How many messages truncation may leave out: those before the last turn (`_tail`),
    but the instructions."""
    messages = chat["messages"]
    return sum(m["role"] not in _KEPT_ROLES for m in messages[:_tail(messages)])
