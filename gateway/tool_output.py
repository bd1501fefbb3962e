"""Splitting a streamed output into thinking, content and tool calls, as it arrives.

A reasoning model's thinking (gateway.reasoning_parser) is split off first
(ostinato/reasoning_formats.py) and streams as it comes; tool calls are read from the
answer after it only. Content streams as soon as it cannot be the start of a tool call (the parser's
`may_start`) nor whitespace that would end the content before one; the rest is held
back until the output ends, then parsed whole. Output the
parser cannot read as calls (malformed, truncated) is content, never an error.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ostinato.reasoning_formats import Reasoning, ReasoningFormat
from ostinato.tool_call_types import OpenedByTag, tag_may_start
from ostinato.tool_formats import ToolCallParser, ToolSchemas
from ostinato.v1 import common_pb2

SHORT_ID_FAMILIES = frozenset({"mistral"})  # tool formats whose calls get 9-character ids


@dataclass(frozen=True)
class CallIds:
    """How the served model's tool calls are named: OpenAI's random `call_` ids; the model's
    own numbering "functions.NAME:N" from N = `numbered_from` (kimi_k2, as SGLang's server
    names them); or `short`, 9 letters and digits (mistral: its templates refuse any other id
    in the history, so every agent loop failed at its second turn; vLLM names them so)."""

    numbered_from: int | None = None
    short: bool = False

    def of(self, name: str, i: int) -> str:
        if self.numbered_from is not None:
            return f"functions.{name}:{self.numbered_from + i}"
        return uuid.uuid4().hex[:9] if self.short else f"call_{uuid.uuid4().hex[:24]}"


def tool_calls(calls: Iterable[tuple[str, str]],
               ids: CallIds = CallIds()) -> list[common_pb2.ToolCall]:
    """(name, arguments) -> calls with ids (`ids`)."""
    return [common_pb2.ToolCall(id=ids.of(name, i), name=name, arguments=arguments)
            for i, (name, arguments) in enumerate(calls)]


class ToolOutput:
    def __init__(self, parser: ToolCallParser | None, tools: ToolSchemas,
                 single_call: bool = False, reasoning: Reasoning | None = None,
                 call_ids: CallIds = CallIds()) -> None:
        self._parser = parser
        self._tools = tools
        self._ids = call_ids
        self._single = single_call
        self._thinking = reasoning.splitter() if reasoning is not None else None
        # the tag that ends the thinking, where it is text (harmony's markers are not)
        self._end_tag = reasoning.end if isinstance(reasoning, ReasoningFormat) else ""
        self._streamed: list[str] = []  # the content streamed so far, in its pieces
        self._held = ""  # the output after it, held back: it is, or may begin, a call
        self._fed = self._answered = 0  # characters of output taken, and of them the answer's

    @property
    def reasoning(self) -> str:
        """All the thinking so far."""
        return self._thinking.reasoning if self._thinking is not None else ""

    def feed(self, delta: str) -> tuple[str, str]:
        """Takes the next piece of output; returns (thinking, content) that may be streamed
        now."""
        thinking = ""
        self._fed += len(delta)
        if self._thinking is not None:
            thinking, delta = self._thinking.feed(delta)
        self._answered += len(delta)
        return thinking, self._content(delta)

    def _content(self, delta: str) -> str:
        # Only what is held is looked at again (no call starts in what was streamed): each
        # piece costs its own length and the held text's, not the whole output's.
        held = self._held + delta
        parser = self._parser
        if parser is None:
            cut = len(held)
        else:  # trailing whitespace waits too: content before calls loses it
            cut = parser.may_start(held, continued=bool(self._streamed))
            while cut > 0 and held[cut - 1].isspace():
                cut -= 1
        out, self._held = held[:cut], held[cut:]
        if out:
            self._streamed.append(out)
        return out

    def finish(self, cut: bool = False) -> tuple[str, str, str, list[common_pb2.ToolCall]]:
        """At the output's end: (thinking still to stream, content still to stream, the whole
        content, tool calls). `cut`: the engine stopped it at max_tokens or a stop string;
        calls it cut short are dropped, the content before them kept (as SGLang's DeepSeek,
        Kimi, GLM and Mistral parsers do): no half-written call markup reaches the client as
        text. The calls complete before the cut one are kept (the parser's complete_calls),
        as SGLang's detectors keep them."""
        thinking = ""
        if self._thinking is not None:
            thinking, rest = self._thinking.finish()
            self._held += rest
            self._answered += len(rest)
        return (thinking, *self._calls(cut))

    def answer_logprobs(self, logprobs: Sequence[common_pb2.TokenLogprob]
                        ) -> Sequence[common_pb2.TokenLogprob]:
        """Of the output's tokens' logprobs (after `finish`), those of the answer's: a
        reasoning model's thinking, its tags and the space after them left out, as OpenAI's
        `logprobs.content` is the message content's (a walkthrough found the thinking's
        there). The answer is the output's tail: its tokens follow the one that ends the
        thinking's end tag (found in the tokens' own text: SGLang detokenizes each token
        alone, a character of several tokens a U+FFFD each, so their lengths need not add
        up to the text's), else those that reach past the thinking's characters."""
        skip = self._fed - self._answered
        if not skip:
            return logprobs
        if self._end_tag:
            return _after_tag(logprobs, self._end_tag)
        end = 0
        for i, token in enumerate(logprobs):
            end += len(token.token)
            if end > skip:
                return logprobs[i:]
        return []

    def _calls(self, cut: bool) -> tuple[str, str, list[common_pb2.ToolCall]]:
        sent = "".join(self._streamed)
        text = sent + self._held
        if self._parser is None:
            return self._held, text, []
        parsed = self._parser.parse(text, self._tools)
        if not parsed.tool_calls and cut:  # the calls complete before the one cut short
            parsed = self._parser.complete_calls(text, self._tools)
        if not parsed.tool_calls:
            at = self._cut_at(text) if cut else len(text)
            content = text if at == len(text) else text[:at].rstrip()
            return content[len(sent):], content, []
        calls = parsed.tool_calls[:1] if self._single else parsed.tool_calls
        rest = parsed.content[len(sent):] if parsed.content.startswith(sent) else ""
        return rest, sent + rest, tool_calls(((c.name, c.arguments) for c in calls),
                                             self._ids)

    def _cut_at(self, text: str) -> int:
        """Where a call cut short by max_tokens begins in `text`: its opening, or, in a
        format whose calls open with a tag, that tag itself cut short at the end
        (`<tool_ca`: the tag is several tokens where the tokenizer has no special token for
        it); len(text) when neither is there."""
        parser = self._parser
        assert parser is not None
        opened = parser.opens_at(text)
        if opened != -1:
            return opened
        return tag_may_start(text, parser.opening) if isinstance(parser, OpenedByTag) else len(text)


def _after_tag(logprobs: Sequence[common_pb2.TokenLogprob], tag: str
               ) -> Sequence[common_pb2.TokenLogprob]:
    """The tokens after the one that completes `tag`, the space after it left out (that
    token kept where the answer begins in it); none where the tag never ends."""
    text = ""
    for i, token in enumerate(logprobs):
        before = len(text)
        text += token.token
        at = text.find(tag, max(0, before - len(tag) + 1))  # (ending in this token)
        if at != -1:
            if text[at + len(tag):].strip():
                return logprobs[i:]
            rest = logprobs[i + 1:]
            start = next((j for j, t in enumerate(rest) if t.token.strip()), len(rest))
            return rest[start:]
    return []
