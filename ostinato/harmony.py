"""gpt-oss's output format (OpenAI's harmony), read as SGLang's `gpt-oss` reasoning and
tool-call parsers read it (sglang/srt/parser/harmony_parser.py, function_call/gpt_oss_detector.py,
0.5.23), and written back for the sim model and the history. Pure: no I/O.

The model writes messages, each a header and a body, in special tokens the engine keeps in
the text for it (SGLang's skip_special_tokens false, as its server sets it for gpt-oss)::

    <|channel|>analysis<|message|>The user wants the weather.<|end|>
    <|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json
    <|message|>{"city": "Paris"}<|call|>

(without the line breaks), or ``<|start|>assistant<|channel|>final<|message|>It is sunny.``
after the analysis. The analysis channel is the thinking; a final message, a commentary
message to the user (a preamble) and text outside any message are the answer; a message to
``functions.NAME`` (the recipient in the channel's header or the role's) is a tool call, its
body the arguments as JSON. A message ends at ``<|end|>``, ``<|return|>``, ``<|call|>`` or the
end of the output (the engine cuts a stop token: ``<|return|>``, and ``<|call|>`` unless its
own tool parser is gpt-oss). `HarmonySplitter` hands the thinking and the answer on as they
come, a tool call whole, in one form (`CALL_OPEN` ...), which `HarmonyTools` parses.

Where SGLang differs (its results checked by the spec's table): it drops output with no
harmony token at all, everything after a message on an unknown channel, and a call cut off
or without ``<|constrain|>json``; here they are the answer (what the model wrote). A final
message also ends at ``<|end|>`` (SGLang's stream reads it so, its whole answer does not).
With the thinking kept in the text (SGLang's separate_reasoning false) the splitter does not
run: `HarmonyTools` then reads only calls written as ``<|start|>assistant<|channel|>commentary
to=functions.NAME`` (as SGLang does there), and the answer streams up to the first
``<|start|>``, the rest at its end.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from ostinato.split_output import SplitOutput
from ostinato.tool_call_json import arguments_object, calls_after, dumps, load_json, to_call
from ostinato.tool_call_types import ParsedOutput, ParsedToolCall, ToolSchemas, calls_before_mark

START, CHANNEL, MESSAGE = "<|start|>", "<|channel|>", "<|message|>"
END, CALL, RETURN, CONSTRAIN = "<|end|>", "<|call|>", "<|return|>", "<|constrain|>"
MARKERS = (START, CHANNEL, MESSAGE, END, CALL, RETURN, CONSTRAIN)
CALL_OPEN = START + "assistant" + CHANNEL + "commentary to=functions."
FINAL_OPEN = START + "assistant" + CHANNEL + "final" + MESSAGE
ANALYSIS_OPEN = CHANNEL + "analysis" + MESSAGE
_RECIPIENT = re.compile(r"to=(\S+?)(?=\s|<\||$)")


_LONGEST = max(map(len, MARKERS))


def _held_back(text: str) -> int:
    """How many trailing characters of ``text`` could begin a marker (every marker begins
    with "<": only a "<" near the end is looked at)."""
    at = text.find("<", max(0, len(text) - _LONGEST + 1))
    while at != -1:
        rest = text[at:]
        if any(m.startswith(rest) for m in MARKERS):
            return len(text) - at
        at = text.find("<", at + 1)
    return 0


def _next_marker(text: str, markers: Sequence[str]) -> tuple[int, str]:
    """The first of ``markers`` in text: (index, marker); (-1, "") for none."""
    found = [(at, m) for m in markers if (at := text.find(m)) != -1]
    return min(found) if found else (-1, "")


@dataclass(frozen=True)
class HarmonyFormat:
    """The reasoning format `gpt-oss` (ostinato/reasoning_formats.py)."""

    name: str = "gpt-oss"
    starts_inside: bool = False
    special_tokens: bool = True  # its markers are special tokens the engine must keep

    def splitter(self) -> HarmonySplitter:
        return HarmonySplitter()

    def thinking(self, thought: str, before_call: bool) -> str:
        """What the model writes before its answer: the analysis, then the final message's
        header unless the answer is a call (which opens its own message)."""
        return ANALYSIS_OPEN + thought + END + ("" if before_call else FINAL_OPEN)


class HarmonySplitter(SplitOutput):
    """One output's pieces in, (thinking, answer) out as soon as each is certain; a tool
    call goes to the answer whole, in the form `CALL_OPEN`NAME ... MESSAGE ARGS CALL."""

    def __init__(self) -> None:
        super().__init__()
        self._buffer = ""
        self._state = "outside"  # -> header -> body
        self._kind = ""  # the body's: "thinking", "answer" or "call"
        self._header = ""  # the role's and the channel's headers of the open message

    def feed(self, piece: str) -> tuple[str, str]:
        self._buffer += piece
        out = ["", ""]
        while self._step(out):
            pass
        return self._passed_on(out[0], out[1])


    def _emit(self, out: list[str], kind: str, text: str) -> None:
        out[0 if kind == "thinking" else 1] += text

    def _step(self, out: list[str]) -> bool:
        """Reads what it can from the buffer; False when it must wait for more."""
        buf = self._buffer
        if self._state == "outside":
            at, marker = _next_marker(buf, MARKERS)
            if at == -1:
                keep = _held_back(buf)
                self._emit(out, "answer", buf[:len(buf) - keep])
                self._buffer = buf[len(buf) - keep:]
                return False
            self._emit(out, "answer", buf[:at])
            self._buffer = buf[at + len(marker):]
            if marker in (START, CHANNEL):  # a message opens; stray ends are dropped
                self._state, self._header = "header", "" if marker == START else " channel="
            return True
        if self._state == "header":
            at = buf.find(MESSAGE)
            cut, marker = _next_marker(buf, (END, CALL, RETURN))
            if cut != -1 and (at == -1 or cut < at):  # a message without a body: dropped
                self._buffer, self._state = buf[cut + len(marker):], "outside"
                return True
            if at == -1:
                return False
            self._header += buf[:at].replace(CHANNEL, " channel=").replace(CONSTRAIN, " ")
            self._buffer = buf[at + len(MESSAGE):]
            self._state, self._kind = "body", self._body_kind()
            return True
        at, marker = _next_marker(buf, (END, CALL, RETURN))
        if self._kind == "call":
            if at == -1:
                return False
            self._emit(out, "answer", self._call_block(buf[:at]) + CALL)
        elif at == -1:
            keep = _held_back(buf)
            self._emit(out, self._kind, buf[:len(buf) - keep])
            self._buffer = buf[len(buf) - keep:]
            return False
        else:
            self._emit(out, self._kind, buf[:at])
        self._buffer, self._state = buf[at + len(marker):], "outside"
        return True

    def _body_kind(self) -> str:
        channel = self._header.partition(" channel=")[2].split()
        recipient = _RECIPIENT.search(self._header)
        if recipient and recipient.group(1).startswith("functions."):
            return "call"
        if recipient or (channel and channel[0].lower() == "analysis"):
            return "thinking"  # the analysis, or a built-in tool's use (python, browser)
        return "answer"  # final, a commentary preamble, a channel it does not know

    def _call_block(self, body: str) -> str:
        recipient = _RECIPIENT.search(self._header)
        name = recipient.group(1).removeprefix("functions.") if recipient else ""
        return f"{CALL_OPEN}{name} {CONSTRAIN}json{MESSAGE}{body}"

    def finish(self) -> tuple[str, str]:
        """At the output's end: (thinking, answer) still held. A call whose end the engine
        cut (a stop token) goes whole; a header never ended is dropped."""
        rest, self._buffer = self._buffer, ""
        out = ["", ""]
        if self._state == "outside":
            out[1] = rest
        elif self._state == "body":
            self._emit(out, "answer" if self._kind == "call" else self._kind,
                       self._call_block(rest) if self._kind == "call" else rest)
        return self._passed_on(out[0], out[1])


class HarmonyTools:
    """The tool-call format `gpt-oss`: calls in the splitter's form after the content."""

    name = "gpt-oss"
    numbered_ids = False

    def parse(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        return calls_after(text, CALL_OPEN, tools, self._call)

    @staticmethod
    def _call(text: str, pos: int, tools: ToolSchemas) -> tuple[ParsedToolCall, int] | None:
        header_end = text.find(MESSAGE, pos)
        if header_end == -1:
            return None
        name = text[pos + len(CALL_OPEN):header_end].split(" ", 1)[0].split(CONSTRAIN, 1)[0]
        body_start = header_end + len(MESSAGE)
        end = text.find(CALL, body_start)
        body = text[body_start:] if end == -1 else text[body_start:end]
        arguments = load_json(body) if body.strip() else {}
        call = to_call({"name": name, "arguments": arguments}, tools)
        return None if call is None else (call, len(text) if end == -1 else end + len(CALL))

    def opens_at(self, text: str) -> int:
        return text.find(CALL_OPEN)

    def complete_calls(self, text: str, tools: ToolSchemas) -> ParsedOutput:
        return calls_before_mark(self.parse, text, tools, self.opens_at(text), CALL_OPEN)

    def may_start(self, text: str, continued: bool = False) -> int:
        at = text.find(START)
        if at != -1:
            return at
        keep = _held_back(text)
        return len(text) - keep

    def render(self, calls: Sequence[ParsedToolCall]) -> str:
        return "".join(f"{CALL_OPEN}{call.name} {CONSTRAIN}json{MESSAGE}"
                       f"{dumps(arguments_object(call))}{CALL}" for call in calls)
