"""How reasoning models write their thinking, and splitting it from the answer as it streams.

A family's format is SGLang's `--reasoning-parser` of the same name
(sglang/srt/parser/reasoning_parser.py): the thinking sits between a start and an end tag
before the answer. `deepseek-r1` models start inside the thinking (their chat template opens
it: the output may or may not repeat the start tag); `qwen3` models open it themselves, or
write no thinking at all; `gpt-oss` models write OpenAI's harmony messages
(ostinato/harmony.py). The gateway hands the thinking back as `reasoning_content` and
parses tool calls from the answer only; the sim engine's model thinks in the same format.
Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from ostinato.harmony import HarmonyFormat
from ostinato.split_output import SplitOutput


@dataclass(frozen=True)
class ReasoningFormat:
    start: str  # the tag that opens the thinking
    end: str  # the tag that closes it; the answer follows
    starts_inside: bool  # the output begins inside the thinking (the template opened it)
    special_tokens = False  # the tags are plain text to the engine's detokenizer

    def splitter(self) -> ReasoningSplitter:
        return ReasoningSplitter(self)


Reasoning = ReasoningFormat | HarmonyFormat  # gpt-oss's messages: ostinato/harmony.py

REASONING_FORMATS: dict[str, Reasoning] = {
    "deepseek-r1": ReasoningFormat("<think>", "</think>", starts_inside=True),
    "qwen3": ReasoningFormat("<think>", "</think>", starts_inside=False),
    "kimi": ReasoningFormat("◁think▷", "◁/think▷", starts_inside=False),
    "gpt-oss": HarmonyFormat(),
}


def _held_back(text: str, tag: str) -> int:
    """How many trailing characters of `text` could begin `tag` (kept until the next piece)."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


class ReasoningSplitter(SplitOutput):
    """One output's pieces in, (thinking, answer) pieces out, as soon as each is certain.

    A piece that could be the start of a tag is held until the next one settles it; the
    tags are dropped, and so is whitespace around the thinking and before the answer (held
    until text follows). An output cut before its end tag (max_tokens) is all thinking, as
    SGLang reads it; one that opens no thinking (qwen3) is all answer.
    """

    def __init__(self, fmt: ReasoningFormat) -> None:
        super().__init__()
        self._fmt = fmt
        self._buffer = ""
        self._state = "thinking" if fmt.starts_inside else "before"  # -> answer
        self._opened = False  # the start tag was seen (or may no longer come)

    def feed(self, piece: str) -> tuple[str, str]:
        """The next piece of output -> (thinking, answer) that may be passed on now."""
        self._buffer += piece
        thinking, answer = "", ""
        while self._buffer:
            if self._state == "answer":
                answer += self._buffer
                self._buffer = ""
            elif self._state == "before":  # before anything but whitespace
                text = self._buffer.lstrip()
                if not text:
                    break
                if text.startswith(self._fmt.start):
                    self._buffer = text[len(self._fmt.start):]
                    self._state, self._opened = "thinking", True
                elif self._fmt.start.startswith(text):
                    break  # may still become the start tag
                else:
                    self._state = "answer"  # no thinking: the output is the answer
            elif self._state == "thinking":
                if not self._opened:  # a template-opened thinking may repeat the start tag
                    text = self._buffer.lstrip()
                    if not text or (self._fmt.start.startswith(text) and text != self._fmt.start):
                        break
                    if text.startswith(self._fmt.start):
                        self._buffer = text[len(self._fmt.start):]
                    self._opened = True
                    continue
                if not (self._reasoning or thinking):  # whitespace before the thinking: dropped
                    self._buffer = self._buffer.lstrip()
                    if not self._buffer:
                        break
                end = self._buffer.find(self._fmt.end)
                if end == -1:  # held back: what may begin the end tag, whitespace before it
                    keep = _held_back(self._buffer, self._fmt.end)
                    cut = len(self._buffer[:len(self._buffer) - keep].rstrip())
                    thinking += self._buffer[:cut]
                    self._buffer = self._buffer[cut:]
                    break
                thinking += self._buffer[:end].rstrip()
                self._buffer = self._buffer[end + len(self._fmt.end):]
                self._state = "after"
            else:  # "after": whitespace between the end tag and the answer is dropped
                text = self._buffer.lstrip()
                self._buffer = text
                if not text:
                    break
                self._state = "answer"
        return self._passed_on(thinking, answer)

    def finish(self) -> tuple[str, str]:
        """At the output's end: whatever was held back, (thinking, answer)."""
        rest, self._buffer = self._buffer, ""
        if self._state == "thinking":
            return self._passed_on(rest.rstrip() if self._reasoning else rest.strip(), "")
        if self._state in ("before", "answer"):  # a start tag never completed: the answer
            return self._passed_on("", rest)
        return "", ""
