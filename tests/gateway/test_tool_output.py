"""Streaming an output as content and tool calls (table-driven over chunkings)."""

from __future__ import annotations

import re

import pytest

from gateway.prompts import prepare
from gateway.tool_output import CallIds, ToolOutput, tool_calls
from ostinato.calls_after_thinking import CallsAfterThinking
from ostinato.reasoning_formats import REASONING_FORMATS
from ostinato.sdk_types import call_spec
from ostinato.tokenizers import load_renderer, load_tokenizer
from ostinato.tool_call_types import OpenedByTag
from ostinato.tool_formats import PARSERS, ParsedToolCall, get_parser, render_tool_calls
from ostinato.v1 import common_pb2

CALL = '<tool_call>\n{"name": "add", "arguments": {"a": 1}}\n</tool_call>'
NAMES = {"add": {}}


def run(out: ToolOutput, text: str, size: int) -> tuple[str, str, list]:
    streamed = "".join(out.feed(text[i:i + size])[1] for i in range(0, len(text), size))
    thinking, rest, content, calls = out.finish()
    assert thinking == "" and out.reasoning == ""
    return streamed + rest, content, calls


@pytest.mark.parametrize("size", [1, 3, 7, 1000])
@pytest.mark.parametrize(("text", "content", "calls"), [
    ("plain answer", "plain answer", []),
    (CALL, "", [("add", '{"a": 1}')]),
    ("Let me add.\n" + CALL, "Let me add.", [("add", '{"a": 1}')]),
    (CALL + "\n" + CALL.replace("1", "2"), "", [("add", '{"a": 1}'), ("add", '{"a": 2}')]),
    ('<tool_call>\n{"name": "add", "argu', '<tool_call>\n{"name": "add", "argu', []),  # truncated
    ('<tool_call>\n{"name": "nope", "arguments": {}}\n</tool_call>',
     '<tool_call>\n{"name": "nope", "arguments": {}}\n</tool_call>', []),  # unknown tool: text
])
def test_content_streams_and_calls_come_at_the_end(size: int, text: str, content: str,
                                                    calls: list) -> None:
    streamed, final, parsed = run(ToolOutput(get_parser("hermes"), NAMES), text, size)
    assert final == content and [(c.name, c.arguments) for c in parsed] == calls
    assert streamed == content  # every streamed piece is content, and all content streams
    assert all(c.id.startswith("call_") for c in parsed) and len({c.id for c in parsed}) == len(parsed)


def test_no_parser_streams_everything() -> None:
    assert run(ToolOutput(None, {}), CALL, 5) == (CALL, CALL, [])


def test_parallel_calls_off_keeps_the_first() -> None:
    _, _, calls = run(ToolOutput(get_parser("hermes"), NAMES, single_call=True), CALL + "\n" + CALL, 9)
    assert len(calls) == 1


@pytest.mark.parametrize("size", [1, 4, 1000])
@pytest.mark.parametrize(("text", "thinking", "content", "calls"), [
    ("<think>\nI should add.\n</think>\n\n" + CALL, "I should add.", "", [("add", '{"a": 1}')]),
    # a call written while thinking is not a call: only the answer's are
    ("<think>maybe " + CALL + "? no.</think>\n\nNo tool needed.", "maybe " + CALL + "? no.",
     "No tool needed.", []),
    ("Just text.", "", "Just text.", []),
    ("<think>cut off", "cut off", "", []),
])
def test_thinking_streams_apart_and_calls_come_from_the_answer(
        size: int, text: str, thinking: str, content: str, calls: list) -> None:
    out = ToolOutput(get_parser("hermes"), NAMES, reasoning=REASONING_FORMATS["qwen3"])
    pieces = [out.feed(text[i:i + size]) for i in range(0, len(text), size)]
    thought, rest, final, parsed = out.finish()
    assert "".join(t for t, _ in pieces) + thought == thinking == out.reasoning
    assert "".join(c for _, c in pieces) + rest == content == final
    assert [(c.name, c.arguments) for c in parsed] == calls


def test_kimi_calls_take_the_models_numbered_ids() -> None:
    text = ("<|tool_calls_section_begin|><|tool_call_begin|>functions.add:4"
            '<|tool_call_argument_begin|>{"a": 1}<|tool_call_end|><|tool_call_begin|>functions.add:5'
            '<|tool_call_argument_begin|>{"a": 2}<|tool_call_end|><|tool_calls_section_end|>')
    _, _, calls = run(ToolOutput(get_parser("kimi_k2"), NAMES, call_ids=CallIds(4)), text, 5)
    assert [(c.id, c.arguments) for c in calls] == [("functions.add:4", '{"a": 1}'),
                                                    ("functions.add:5", '{"a": 2}')]


@pytest.mark.parametrize(("family", "pattern"), [
    ("mistral", r"[a-zA-Z0-9]{9}"),  # Mistral's templates refuse any other id in the history
    ("hermes", r"call_[0-9a-f]{24}"),
    ("llama3", r"call_[0-9a-f]{24}"),
])
def test_a_familys_calls_are_named_as_its_templates_take_them(family: str, pattern: str) -> None:
    prepared = prepare(call_spec(messages=[{"role": "user", "content": "hi"}], tools=[
        {"type": "function", "function": {"name": "add"}}]), load_renderer("sim", family),
        load_tokenizer("sim"), family)
    calls = tool_calls([("add", "{}"), ("add", '{"a": 1}')], prepared.call_ids)
    assert all(re.fullmatch(pattern, c.id) for c in calls) and calls[0].id != calls[1].id


@pytest.mark.parametrize("family", sorted(set(PARSERS) - {"json_array"}))
@pytest.mark.parametrize("size", [1, 7, 1000])
def test_a_call_cut_short_by_max_tokens_is_dropped_not_shown(family: str, size: int) -> None:
    """Cut (finish_reason length) inside a call: the content before it, no markup, no call;
    the same text ended by the model is content as written (not well-formed calls)."""
    call = render_tool_calls(family, [ParsedToolCall("add", '{"a": 12345, "b": "long text"}')])
    before = "<|channel|>analysis<|message|>t<|end|>" if family == "gpt-oss" else ""
    reasoning = REASONING_FORMATS["gpt-oss"] if family == "gpt-oss" else None
    for end in (len(call) // 3, len(call) - 14):  # (gpt-oss: inside the arguments)
        text = before + "Sure." + ("" if family == "gpt-oss" else "\n") + call[:end]
        out = ToolOutput(get_parser(family), NAMES, reasoning=reasoning)
        streamed = "".join(out.feed(text[i:i + size])[1] for i in range(0, len(text), size))
        _, rest, content, calls = out.finish(cut=True)
        assert (streamed + rest, content, calls) == ("Sure.", "Sure.", [])


# a second call whose arguments hold every format's call marks, to be cut inside them
MARKS = " ; <tool_call> [TOOL_CALLS] <|start|>assistant<|channel|>commentary to=functions."
TYPED = {"add": {"type": "object", "properties": {"a": {"type": "integer"}}}}  # (qwen3_coder)


@pytest.mark.parametrize("family", sorted(set(PARSERS) - {"json_array"}))
@pytest.mark.parametrize("size", [1, 1000])
def test_calls_complete_before_the_cut_one_are_kept(family: str, size: int) -> None:
    """Cut inside a second call (max_tokens or a stop string): the first call is kept, as
    SGLang's detectors keep it (both were lost); the content before them as ever. Ended by
    the model, the same text is not well-formed calls: content as written."""
    first = ParsedToolCall("add", '{"a": 1}')
    second = ParsedToolCall("add", '{"a": 2, "note": "' + MARKS.replace('"', "'") + ' tail"}')
    calls = render_tool_calls(family, [first, second])
    before = "<|channel|>analysis<|message|>t<|end|>" if family == "gpt-oss" else ""
    reasoning = REASONING_FORMATS["gpt-oss"] if family == "gpt-oss" else None
    for end in (len(calls) - 3, calls.rindex("tail"), calls.rindex(";")):
        text = before + "Sure." + ("" if family == "gpt-oss" else "\n") + calls[:end]
        for cut, kept in ((True, [("add", '{"a": 1}')]), (False, [])):
            out = ToolOutput(get_parser(family), TYPED, reasoning=reasoning)
            streamed = "".join(out.feed(text[i:i + size])[1] for i in range(0, len(text), size))
            _, rest, content, got = out.finish(cut=cut)
            assert [(c.name, c.arguments) for c in got] == kept, (end, cut)
            if cut:
                assert (streamed + rest, content) == ("Sure.", "Sure.")


@pytest.mark.parametrize(("family", "text"), [
    ("mistral", '[TOOL_CALLS]add[ARGS]{"a": 1}[TOOL_CALLS]add[ARGS]{"a": '),  # compact form
    ("mistral", '[TOOL_CALLS] [{"name": "add", "arguments": {"a": 1}}, {"name": "add", "ar'),
    ("llama3", '{"name": "add", "parameters": {"a": 1}}; {"name": "add", "parameters": {"a'),
])
def test_each_form_of_a_format_keeps_the_calls_before_the_cut(family: str, text: str) -> None:
    out = ToolOutput(get_parser(family), NAMES)
    out.feed(text)
    assert [(c.name, c.arguments) for c in out.finish(cut=True)[3]] == [("add", '{"a": 1}')]


def test_a_forced_array_after_thinking_cut_short_keeps_its_complete_calls() -> None:
    parser = CallsAfterThinking(get_parser("json_array"), "</think>")
    text = '<think>hm</think>[{"name": "add", "parameters": {"a": 1}}, {"name": "add", "par'
    out = ToolOutput(parser, NAMES)
    out.feed(text)
    _, _, content, got = out.finish(cut=True)
    assert ([(c.name, c.arguments) for c in got], content) == ([("add", '{"a": 1}')],
                                                               "<think>hm</think>")


TAGGED = sorted(f for f in set(PARSERS) - {"json_array"} if isinstance(get_parser(f), OpenedByTag))


@pytest.mark.parametrize("family", TAGGED)
def test_an_opening_tag_cut_short_is_dropped_not_shown(family: str) -> None:
    """Cut inside the tag that opens the calls (several tokens where the tokenizer has no
    special token for it): the content before it, no piece of the tag."""
    opening = get_parser(family).opening  # type: ignore[attr-defined]
    for end in range(1, len(opening)):
        text = "Sure.\n" + opening[:end]
        out = ToolOutput(get_parser(family), NAMES)
        streamed = out.feed(text)[1]
        _, rest, content, calls = out.finish(cut=True)
        assert (streamed + rest, content, calls) == ("Sure.", "Sure.", [])
        out = ToolOutput(get_parser(family), NAMES)  # ended by the model: text as written
        streamed = out.feed(text)[1]
        assert streamed + out.finish()[1] == text


@pytest.mark.parametrize(("family", "text"), [
    ("hermes", "A plain answer, cut sh"),
    ("llama3", '{"answer": 42, "why": "it is'),  # JSON, but no call's
    ("mistral", "Lists like [1, 2"),
])
def test_a_cut_answer_that_opened_no_call_is_kept(family: str, text: str) -> None:
    out = ToolOutput(get_parser(family), NAMES)
    streamed = out.feed(text)[1]
    _, rest, content, calls = out.finish(cut=True)
    assert (streamed + rest, content, calls) == (text, text, [])


def _streamed_whole(family: str, text: str, size: int) -> list[str]:
    """What streams piece by piece when every piece rescans the whole output so far (the
    parser's own rule over the output's start): the reference for the held-only scan."""
    parser, sent, out = get_parser(family), 0, []
    for end in range(size, len(text) + size, size):
        end = min(end, len(text))
        prefix = text[:end]
        cut = max(sent, len(prefix[:parser.may_start(prefix)].rstrip()))
        out.append(prefix[sent:cut])
        sent = cut
    return out


@pytest.mark.parametrize("family", sorted(PARSERS))
@pytest.mark.parametrize("size", [1, 2, 5, 13])
@pytest.mark.parametrize("content", [
    "", "Let me look.  \n", "Use x < y and [1, 2] or {a}; then <tool and [TOOL  ", "  {not json}\n",
])
def test_scanning_only_the_held_text_streams_what_a_whole_rescan_would(
        family: str, size: int, content: str) -> None:
    call = render_tool_calls(family, [ParsedToolCall("add", '{"a": 1}')])
    for text in (content, content + call):
        out = ToolOutput(get_parser(family), NAMES)
        pieces = [out.feed(text[i:i + size])[1] for i in range(0, len(text), size)]
        assert pieces == _streamed_whole(family, text, size)


class _Measured:
    """A parser that remembers the longest text it was asked to scan while streaming."""

    def __init__(self, family: str) -> None:
        self._parser = get_parser(family)
        self.longest = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self._parser, name)

    def may_start(self, text: str, continued: bool = False) -> int:
        self.longest = max(self.longest, len(text))
        return self._parser.may_start(text, continued)


@pytest.mark.parametrize("family", sorted(PARSERS))
def test_a_long_answer_is_not_rescanned_per_piece(family: str) -> None:
    """Each piece is scanned with what is still held, not the whole output so far: a long
    answer streams in time linear in its length (it was quadratic: 320k characters in
    4-character pieces took 5.7 s of the event loop with the hermes parser)."""
    parser = _Measured(family)
    out = ToolOutput(parser, NAMES)  # type: ignore[arg-type]
    words = "Plain prose with x < y, [lists] and {braces}; no call at all. " * 800
    text = "Sure. " + words
    assert "".join(out.feed(text[i:i + 4])[1] for i in range(0, len(text), 4)) \
        + out.finish()[1] == text
    assert parser.longest < 64


@pytest.mark.parametrize(("text", "calls"), [
    # tool_choice required / a named function: the array, cut in its second call
    ('[{"name": "add", "parameters": {"a": 1}}, {"name": "add", "parameters": {"a"',
     [("add", '{"a": 1}')]),
    ('[{"name": "add", "parameters": {"a": 1}}, {"name": "add", "parameters": {"a": 2}}',
     [("add", '{"a": 1}'), ("add", '{"a": 2}')]),
    ('[{"name": "add", "parameters": {"a": 1}}, ', [("add", '{"a": 1}')]),
    ('[{"name": "add", "parameters": {"a"', []),  # the first call cut: none
    ('[{"name": "nope", "parameters": {}}, {"name": "add"', []),  # not a tool: none
])
def test_a_forced_array_cut_short_keeps_its_complete_calls(text: str,
                                                           calls: list[tuple[str, str]]) -> None:
    out = ToolOutput(get_parser("json_array"), NAMES)
    streamed = out.feed(text)[1]
    _, rest, content, got = out.finish(cut=True)
    assert [(c.name, c.arguments) for c in got] == calls
    assert (streamed + rest, content) == ("", "")  # no half-written array as text


@pytest.mark.parametrize("fmt", ["qwen3", None])
@pytest.mark.parametrize(("tokens", "answer"), [
    (["<think>", "\n", "Is it", " so", ".", "\n", "</think>", "\n\n", "with", " answer"],
     ["with", " answer"]),
    (["<think>", "hm", "</think>", " \n", "ok"], ["ok"]),
    (["<think>", "hm", "</think>\n\nok", "!"], ["</think>\n\nok", "!"]),  # a token into it
    (["<think>", "cut by max_tokens"], []),  # no answer: nothing
    (["no", " thinking"], ["no", " thinking"]),
    (["<", "think", ">", "hm", "</", "think", ">", "\n\n", "ok"], ["ok"]),  # tags in pieces
])
def test_logprobs_are_the_answers_tokens_not_the_thinkings(
        fmt: str | None, tokens: list[str], answer: list[str]) -> None:
    """OpenAI's `logprobs.content` holds the message content's tokens: a reasoning model's
    thinking is left out (a walkthrough found it there, streamed and not)."""
    out = ToolOutput(None, {}, reasoning=REASONING_FORMATS[fmt] if fmt else None)
    for token in tokens:
        out.feed(token)
    out.finish()
    logprobs = [common_pb2.TokenLogprob(token=t, logprob=-1.0) for t in tokens]
    kept = [t.token for t in out.answer_logprobs(logprobs)]
    assert kept == (answer if fmt else tokens)


def test_the_answers_logprobs_are_found_past_characters_of_several_tokens() -> None:
    """SGLang detokenizes each token alone: a character of several tokens comes back a
    U+FFFD each, so the tokens' lengths need not add up to the text's (a review)."""
    out = ToolOutput(None, {}, reasoning=REASONING_FORMATS["qwen3"])
    for piece in ["<think>", "Hi ", "\U0001f600" * 4, "</think>", "\n\n", "ok"]:
        out.feed(piece)
    out.finish()
    tokens = ["<think>", "Hi ", *["\ufffd"] * 8, "</think>", "\n\n", "ok"]
    logprobs = [common_pb2.TokenLogprob(token=t, logprob=-1.0) for t in tokens]
    assert [t.token for t in out.answer_logprobs(logprobs)] == ["ok"]
