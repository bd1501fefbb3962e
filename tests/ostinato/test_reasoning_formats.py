"""Splitting a reasoning model's thinking from its answer as the output streams (pure)."""

from __future__ import annotations

import pytest

from ostinato.reasoning_formats import REASONING_FORMATS, ReasoningSplitter


def split_whole(fmt: str, text: str) -> tuple[str, str]:
    s = ReasoningSplitter(REASONING_FORMATS[fmt])
    thinking, answer = s.feed(text)
    t2, a2 = s.finish()
    assert (thinking + t2, answer + a2) == (s.reasoning, s.content)
    return s.reasoning, s.content


CASES = [
    # (format, output, thinking, answer)
    ("qwen3", "<think>\nLet me see.\n</think>\n\nIt is 4.", "Let me see.", "It is 4."),
    ("qwen3", "It is 4.", "", "It is 4."),  # thinking off: all answer
    ("qwen3", "  It is <b>4</b>.", "", "  It is <b>4</b>."),
    ("qwen3", "<think>cut short by max_tokens", "cut short by max_tokens", ""),
    ("qwen3", "<think></think>Hi", "", "Hi"),
    ("qwen3", "<thi", "", "<thi"),  # a start tag never completed: the answer
    ("qwen3", "<think>a</think>b</think>c", "a", "b</think>c"),  # one thinking only
    ("qwen3", "<think>x</think>\n<tool_call>\n{}\n</tool_call>", "x",
     "<tool_call>\n{}\n</tool_call>"),
    ("deepseek-r1", "Hmm.</think>\n\nFour.", "Hmm.", "Four."),  # the template opened it
    ("deepseek-r1", "<think>\nHmm.</think>Four.", "Hmm.", "Four."),  # or the model repeats it
    ("deepseek-r1", "no end tag at all", "no end tag at all", ""),
    ("deepseek-r1", "\n", "", ""),
    ("kimi", "◁think▷plan◁/think▷done", "plan", "done"),
]


@pytest.mark.parametrize(("fmt", "text", "thinking", "answer"), CASES)
def test_whole_outputs(fmt: str, text: str, thinking: str, answer: str) -> None:
    assert split_whole(fmt, text) == (thinking, answer)


@pytest.mark.parametrize(("fmt", "text", "thinking", "answer"), CASES)
def test_any_cut_into_pieces_gives_the_same_split(fmt: str, text: str, thinking: str,
                                                  answer: str) -> None:
    """Tags cut across pieces (as a tokenizer cuts them) are still found."""
    for size in (1, 2, 3, 5):
        s = ReasoningSplitter(REASONING_FORMATS[fmt])
        got_t, got_a = "", ""
        for i in range(0, len(text), size):
            t, a = s.feed(text[i:i + size])
            got_t, got_a = got_t + t, got_a + a
        t, a = s.finish()
        assert (got_t + t, got_a + a) == (thinking, answer), size


def test_thinking_streams_before_it_ends() -> None:
    s = ReasoningSplitter(REASONING_FORMATS["qwen3"])
    assert s.feed("<think>\nFirst") == ("First", "")
    assert s.feed(" idea\n</th") == (" idea", "")  # "\n</th" may be the end tag: held
    assert s.feed("ink>\n\nAns") == ("", "Ans")
    assert s.feed("wer") == ("", "wer")
    assert s.finish() == ("", "")
