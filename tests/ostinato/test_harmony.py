"""gpt-oss's harmony messages: thinking, answer and calls apart as they stream, as SGLang's
gpt-oss parsers read them (rows from its own results), and where we read more on purpose."""

from __future__ import annotations

import pytest

from ostinato.harmony import CALL_OPEN, HarmonySplitter
from ostinato.tool_formats import ParsedToolCall, get_parser, render_tool_calls

TOOLS = {"get_weather": {}, "get_time": {}}
A = "<|channel|>analysis<|message|>"
S = "<|start|>assistant"
CALL = (S + '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>'
        '{"location": "Paris"}<|call|>')
PARIS = ("get_weather", '{"location": "Paris"}')

# (text, thinking, content, calls): what SGLang 0.5.23 gives for a whole answer
AS_SGLANG = {
    "final only": ("<|channel|>final<|message|>Hello there.", "", "Hello there.", []),
    "final with return": ("<|channel|>final<|message|>Hi.<|return|>", "", "Hi.", []),
    "analysis, final": (A + "User greets. Reply.<|end|>" + S + "<|channel|>final<|message|>Hi!",
                        "User greets. Reply.", "Hi!", []),
    "whitespace kept": (A + "  line1\nline2  <|end|>" + S + "<|channel|>final<|message|>  x  ",
                        "  line1\nline2  ", "x", []),
    "analysis, call": (A + "Need weather.<|end|>" + CALL, "Need weather.", "", [PARIS]),
    "two calls": (A + "Both.<|end|>" + CALL + S + "<|channel|>commentary to=functions.get_time "
                  "<|constrain|>json<|message|>{}<|call|>", "Both.", "",
                  [PARIS, ("get_time", "{}")]),
    "preamble, call": (A + "Plan.<|end|>" + S + "<|channel|>commentary<|message|>Let me check."
                       "<|end|>" + CALL, "Plan.", "Let me check.", [PARIS]),
    "preamble, final": (A + "a<|end|>" + S + "<|channel|>commentary<|message|>Checking.<|end|>"
                        + S + "<|channel|>final<|message|>Done.", "a", "Checking.Done.", []),
    "cut in analysis": (A + "I am thinking about the", "I am thinking about the", "", []),
    "cut after analysis": (A + "Done thinking.<|end|>" + S, "Done thinking.", "", []),
    "cut in final": (A + "T.<|end|>" + S + "<|channel|>final<|message|>Partial ans", "T.",
                     "Partial ans", []),
    "empty arguments": (A + "T.<|end|>" + S + "<|channel|>commentary to=functions.get_time "
                        "<|constrain|>json<|message|><|call|>", "T.", "", [("get_time", "{}")]),
    "text before a message": ("Hello<|channel|>final<|message|>Hi", "", "HelloHi", []),
    "text after return": ("<|channel|>final<|message|>A<|return|>tail", "", "Atail", []),
    "call's end cut by the engine": (A + "x<|end|>" + CALL.removesuffix("<|call|>"), "x", "",
                                     [PARIS]),
}

# where we read more than SGLang does (its result in the comment)
OURS = {
    # SGLang's whole answer misses the call in the first message (its stream reads it)
    "call without analysis": ('<|channel|>commentary to=functions.get_weather <|constrain|>json'
                              '<|message|>{"location":"Paris"}<|call|>', "", "", [PARIS]),
    # the recipient in the role's header, as the chat template writes past calls (SGLang: text)
    "recipient in the role": (A + "w<|end|>" + S + " to=functions.get_weather<|channel|>"
                              'commentary json<|message|>{"location": "Paris"}<|call|>', "w",
                              "", [PARIS]),
    "no constrain": (A + "x<|end|>" + S + "<|channel|>commentary to=functions.get_weather"
                     '<|message|>{"location": "Paris"}<|call|>', "x", "", [PARIS]),
    # SGLang drops these: the model's text is the answer here, as for any output not calls
    "plain text": ("Just plain text.", "", "Just plain text.", []),
    "unknown channel": ("<|channel|>foo<|message|>x<|end|>" + S
                        + "<|channel|>final<|message|>ok", "", "xok", []),
    "malformed arguments": (A + "T.<|end|>" + CALL.replace('{"location": "Paris"}', "{bad}"),
                            "T.", CALL_OPEN + "get_weather <|constrain|>json<|message|>{bad}"
                            "<|call|>", []),
    "unknown tool": (A + "T.<|end|>" + CALL.replace("get_weather", "send_email"), "T.",
                     CALL_OPEN + 'send_email <|constrain|>json<|message|>{"location": "Paris"}'
                     "<|call|>", []),
    # a final message ends at <|end|> too (SGLang's stream reads it so)
    "two finals": ("<|channel|>final<|message|>One.<|end|>" + S
                   + "<|channel|>final<|message|>Two.", "", "One.Two.", []),
    # a "<|" that begins no marker is text (SGLang's hid the <|end|> after it)
    "text like a marker": (A + "if a<|b then<|end|>" + S + "<|channel|>final<|message|>x <| y",
                           "if a<|b then", "x <| y", []),
    "a built-in tool's use": ("<|channel|>analysis to=python<|message|>print(1)<|call|>",
                              "print(1)", "", []),
    "a header without a body": (A + "a<|end|>" + S + "<|channel|>final<|end|>ok", "a", "ok", []),
}


def split(text: str, size: int) -> tuple[str, str, list[str]]:
    """(thinking, answer) of the output fed in pieces of `size` (0: whole), and every piece
    handed on."""
    splitter = HarmonySplitter()
    pieces = [text[i:i + size] for i in range(0, len(text), size)] if size else [text]
    thinking = answer = ""
    shown = []
    for piece in pieces:
        t, a = splitter.feed(piece)
        thinking, answer, shown = thinking + t, answer + a, [*shown, t, a]
    t, a = splitter.finish()
    assert splitter.reasoning == thinking + t and splitter.content == answer + a
    return thinking + t, answer + a, shown


@pytest.mark.parametrize("size", [0, 1, 4, 9])
@pytest.mark.parametrize(("text", "thinking", "content", "calls"),
                         [*AS_SGLANG.values(), *OURS.values()],
                         ids=[*AS_SGLANG, *(f"ours: {k}" for k in OURS)])
def test_split_then_calls(size: int, text: str, thinking: str, content: str,
                          calls: list[tuple[str, str]]) -> None:
    got_thinking, answer, shown = split(text, size)
    parsed = get_parser("gpt-oss").parse(answer, TOOLS)
    assert got_thinking == thinking
    assert parsed.content.strip() == content
    assert [(c.name, c.arguments) for c in parsed.tool_calls] == calls
    # no piece handed on is part of a marker (a held-back one comes whole, or as text)
    assert not any(p.endswith(("<|", "<|end", "<|start|")) for p in shown)


def test_thinking_streams_as_it_comes() -> None:
    splitter = HarmonySplitter()
    assert splitter.feed(A + "Think") == ("Think", "")
    assert splitter.feed("ing <|e") == ("ing ", "")  # "<|e" may begin <|end|>
    assert splitter.feed("nd|>" + S + "<|channel|>fin") == ("", "")
    assert splitter.feed("al<|message|>Sun") == ("", "Sun")
    assert splitter.finish() == ("", "")


def test_a_call_is_handed_on_whole() -> None:
    splitter = HarmonySplitter()
    head, body = CALL.split("<|message|>")
    assert splitter.feed(head + "<|message|>" + body[:5]) == ("", "")
    assert splitter.feed(body[5:]) == ("", CALL)


@pytest.mark.parametrize(("text", "expected"), [
    ("", 0), ("Let me check.", 13), ("Let me check. <|st", 14), ("x <| y", 6),
    ("Checking." + CALL, 9),
])
def test_may_start(text: str, expected: int) -> None:
    assert get_parser("gpt-oss").may_start(text) == expected


def test_render_is_what_the_splitter_hands_on() -> None:
    calls = [ParsedToolCall("get_weather", '{"location": "Paris"}'), ParsedToolCall("get_time", "{}")]
    rendered = render_tool_calls("gpt-oss", calls)
    assert split(A + "t<|end|>" + rendered, 3)[1] == rendered
