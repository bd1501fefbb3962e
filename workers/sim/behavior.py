"""What the simulated model decides to answer, read from its prompt like a model would.

- Under constrained decoding (SGLang's ``sampling_params.json_schema``) it answers with a
  valid instance of the schema; for tool_choice "required" or a named function this is
  the JSON array of calls the gateway asked for. Under a structural tag
  (``sampling_params.structural_tag``: a JSON answer or tool calls) it writes the branch
  it would have chosen free.
- When the prompt declares tools (workers/sim/chat_template.py) and the last turn is the
  user's, it calls one of the tools, chosen deterministically from the prompt, with
  arguments valid against that tool's parameters (a JSON object), in the configured
  family's format; a tool whose parameters admit no object gets a text answer instead.
- Otherwise (after a tool result, or without tools) it answers in free text (None here:
  the decoder's word stream).
So agent loops end, and every test exercises the real parsing path. Deterministic: the
same prompt and seed give the same answer.

A thinking model (sim_engine.reasoning_format) first thinks, in its family's format
(ostinato/reasoning_formats.py), before every answer to a chat turn: `thinking`, the longer
the harder the effort its prompt names (the template's ``Reasoning:`` line, as gpt-oss reads
its own): THINKING_WORDS.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from ostinato.harmony import START, HarmonyFormat
from ostinato.reasoning_formats import REASONING_FORMATS
from ostinato.tool_formats import ParsedToolCall, render_tool_calls
from workers.sim.chat_template import (
    GENERATION_PROMPT,
    declared_tools,
    last_turn_role,
    reasoning_effort_of,
)
from workers.sim.json_instance import UnsupportedSchema, instance
from workers.sim.structural_tag import written_for


def _choice(prompt: str, seed: int) -> int:
    digest = hashlib.blake2b(f"{seed}:{prompt}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _object_of(params: object) -> dict[str, Any]:
    """A tool's parameters as the schema of its arguments: a JSON object (a call's arguments
    always are one; a schema that does not say so, e.g. {"title": ...} alone, would let any
    value through). Definitions stay at the root, where its "$ref"s resolve. Raises
    UnsupportedSchema for parameters of another type."""
    if not isinstance(params, dict) or not params:
        return {"type": "object", "properties": {}}
    kind = params.get("type", "object")
    if kind != "object" and not (isinstance(kind, list) and "object" in kind):
        raise UnsupportedSchema("/type", f"parameters of type {kind!r} admit no object")
    return {**params, "type": "object"}


def scripted_answer(prompt: str, *, json_schema: str | None, tool_format: str,
                    seed: int = 0, structural_tag: str | None = None) -> str | None:
    """The answer's text, or None for free text. Raises UnsupportedSchema (a ValueError) for a
    schema or structural tag the simulated model cannot satisfy, and ValueError for one that
    is not JSON. Under a structural tag (workers/sim/structural_tag.py) it writes what the
    grammar admits: calls where it would call a tool, else the answer."""
    if json_schema is not None:
        schema = json.loads(json_schema)
        return json.dumps(instance(schema, _choice(prompt, seed)), ensure_ascii=False)
    tools = declared_tools(prompt)
    wants_call = bool(tools) and last_turn_role(prompt) == "user"
    if structural_tag is not None:
        return written_for(structural_tag, _choice(prompt, seed), wants_call)
    if not wants_call:
        return None
    pick = _choice(prompt, seed)
    tool = tools[pick % len(tools)]
    try:
        args = instance(_object_of(tool.get("parameters")), pick)
    except UnsupportedSchema:
        return None  # its parameters admit no object: no call a parser would take
    return render_tool_calls(tool_format, [ParsedToolCall(tool["name"],
                                                          json.dumps(args, ensure_ascii=False))])


# Words of thinking (fewest, most) by the effort the prompt names. No effort, or one the
# model does not know, is its default: medium's. "none" (thinking switched back on by the
# caller's enable_thinking) thinks as briefly as minimal; high and up several times longer.
THINKING_WORDS: dict[str, tuple[int, int]] = {
    "none": (2, 7), "minimal": (2, 7), "low": (3, 14), "medium": (6, 29),
    "high": (24, 119), "xhigh": (48, 239), "max": (96, 479)}


def thinking_words(prompt: str) -> tuple[int, int]:
    """The fewest and most words the model thinks for this prompt's effort (THINKING_WORDS)."""
    return THINKING_WORDS.get(reasoning_effort_of(prompt), THINKING_WORDS["medium"])


def thinking(prompt: str, reasoning_format: str, seed: int = 0, answer: str | None = None) -> str:
    """What a thinking model writes before its answer to a chat turn (a prompt ending in the
    template's generation prompt): as many words as the prompt's effort asks (6 to 29 without
    one: thinking_words) between the format's tags, the opening one left to the template where
    the family's is (deepseek-r1); in gpt-oss's harmony an analysis message, then the final
    message's header unless the `answer` (scripted_answer's) is a call. "" for a raw prompt,
    or a model that does not think."""
    if not reasoning_format or not prompt.endswith(GENERATION_PROMPT):
        return ""
    fmt = REASONING_FORMATS[reasoning_format]
    fewest, most = thinking_words(prompt)
    state = pick = _choice(prompt, seed + 7)
    words = []
    for _ in range(fewest + pick % (most - fewest + 1)):  # (the generator of workers/sim/text.py)
        state = (state * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        words.append(_THOUGHT[(state >> 33) % len(_THOUGHT)])
    thought = " ".join(words).capitalize() + "."
    if isinstance(fmt, HarmonyFormat):
        return fmt.thinking(thought, before_call=(answer or "").startswith(START))
    return ("" if fmt.starts_inside else fmt.start + "\n") + thought + "\n" + fmt.end + "\n\n"


_THOUGHT = ("the", "user", "asks", "so", "first", "check", "what", "is", "known", "then",
            "decide", "whether", "a", "tool", "helps", "and", "answer", "briefly")
