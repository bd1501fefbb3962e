"""The sim model's chat template: what a tokenizer_config.json's chat_template is to a real one.

ChatML turns (``<|im_start|>role\\n...<|im_end|>\\n``). Tools are declared in the system turn,
one JSON object a line between ``<tools>`` and ``</tools>`` (as Qwen 2.5 and Hermes
templates do); an assistant turn's tool calls are written in the model family's format
(ostinato/tool_formats.py), exactly as the model emitted them, so a conversation's next
prompt extends the previous one token for token and the engine's prefix cache reuses it.
Inputs are what ``apply_chat_template`` takes: OpenAI-shaped message dicts (tool call
arguments as dicts) and tools as ``{"type": "function", "function": {...}}``.
A reasoning effort is written as gpt-oss's template writes it: a ``Reasoning: high`` line
opening the system turn (made for it when there is none); without one the prompt is as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ostinato.tool_call_json import load_json
from ostinato.tool_formats import ParsedToolCall, render_tool_calls

TOOLS_OPEN, TOOLS_CLOSE = "<tools>\n", "\n</tools>"
TURN_START, TURN_END = "<|im_start|>", "<|im_end|>\n"
REASONING = TURN_START + "system\nReasoning: "  # how a prompt that names an effort opens
GENERATION_PROMPT = TURN_START + "assistant\n"
NO_THINKING = "<think>\n\n</think>\n\n"  # Qwen3's template, when enable_thinking is false
_TOOLS_PREAMBLE = ("# Tools\n\nYou may call one or more of these functions; write each call in "
                   "the tool-call format you were trained on.\n")


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))


def _an_object(text: str) -> bool:
    """Whether `text` is a JSON object the formats can write (finite numbers, not too deep)."""
    try:
        value = load_json(text)
        return isinstance(value, dict) and bool(json.dumps(value, allow_nan=False))
    except (ValueError, RecursionError):
        return False


def _tool_calls(message: Mapping[str, Any], tool_format: str) -> str:
    calls = []
    for call in message.get("tool_calls") or ():
        fn = call.get("function", call)
        args = fn.get("arguments", {})
        # text that is not a JSON object (a malformed call the model once wrote) is written
        # as a call with no arguments: the sim model's formats write objects only
        text = "{}" if isinstance(args, str) and not _an_object(args) else args
        calls.append(ParsedToolCall(str(fn.get("name", "")),
                                    text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)))
    return render_tool_calls(tool_format, calls) if calls else ""


def _system_turn(rest: list[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None,
                 effort: object) -> str:
    """The system turn when the template writes one of its own (the effort, the tools), taking
    the caller's system message (popped from `rest`) into it; "" otherwise."""
    if not tools and not effort:
        return ""
    sections = [f"Reasoning: {effort}"] if effort else []
    if rest and rest[0].get("role") == "system":
        sections.append(_text(rest.pop(0).get("content")))
    if tools:
        declared = "\n".join(json.dumps(t, ensure_ascii=False, sort_keys=True) for t in tools)
        sections.append(f"{_TOOLS_PREAMBLE}{TOOLS_OPEN}{declared}{TOOLS_CLOSE}")
    return f"{TURN_START}system\n" + "\n\n".join(sections) + TURN_END


def render(messages: Sequence[Mapping[str, Any]], tools: Sequence[Mapping[str, Any]] | None = None,
           *, tool_format: str = "hermes", add_generation_prompt: bool = True,
           enable_thinking: object = True, reasoning_effort: object = None) -> str:
    """The prompt. `enable_thinking` false closes an empty thinking after the generation
    prompt, as Qwen3's template does (a thinking model then answers at once); not for
    gpt-oss, whose template has no such switch (its harmony turn always holds an analysis,
    and SGLang's server reads a gpt-oss turn as thinking first, always). A
    `reasoning_effort` opens the system turn as ``Reasoning: <effort>`` (gpt-oss's line),
    whatever its value, as a Jinja template writes it; None or "" writes nothing."""
    rest = list(messages)
    parts = [_system_turn(rest, tools, reasoning_effort)]
    for m in rest:
        body = _text(m.get("content"))
        calls = _tool_calls(m, tool_format) if m.get("role") == "assistant" else ""
        if body and calls:
            body += "\n"
        parts.append(f"{TURN_START}{m.get('role', 'user')}\n{body}{calls}{TURN_END}")
    if add_generation_prompt:
        closed = enable_thinking is False and tool_format != "gpt-oss"
        parts.append(GENERATION_PROMPT + NO_THINKING if closed else GENERATION_PROMPT)
    return "".join(parts)


def reasoning_effort_of(prompt: str) -> str:
    """The effort a rendered prompt names (its system turn's ``Reasoning:`` line, what the
    simulated model reads); "" if it names none."""
    if not prompt.startswith(REASONING):
        return ""
    line = prompt[len(REASONING):].split("\n", 1)[0]
    return line.split(TURN_END.rstrip("\n"), 1)[0]


def declared_tools(prompt: str) -> list[dict[str, Any]]:
    """The tools a rendered prompt declares (what the simulated model reads); [] if none."""
    start = prompt.find(TOOLS_OPEN)
    end = prompt.find(TOOLS_CLOSE, start + 1)
    if start < 0 or end < 0:
        return []
    tools = []
    for line in prompt[start + len(TOOLS_OPEN):end].splitlines():
        try:
            tool = json.loads(line)
        except json.JSONDecodeError:
            continue
        fn = tool.get("function") if isinstance(tool, dict) else None
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            tools.append(fn)
    return tools


def last_turn_role(prompt: str) -> str:
    """The role of the last complete turn before the generation prompt; "" if none."""
    body = prompt.removesuffix(NO_THINKING).removesuffix(GENERATION_PROMPT)
    start = body.rfind(TURN_START)
    if start < 0:
        return ""
    return body[start + len(TURN_START):].split("\n", 1)[0]
