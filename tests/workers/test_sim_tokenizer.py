"""The sim model's tokenizer over a growing text (workers/sim/tokenizer.py GrowingText): the
same ids as the whole text's, however it is cut, each piece tokenized about once."""

from __future__ import annotations

import random

import pytest

from workers.sim import tokenizer
from workers.sim.tokenizer import GrowingText, tokenize

TEXTS = ["Hello, world! It's  a test:\n\n  done.", "naïve café — 😀😀 end", "a" * 40 + " b",
         "   ", "x,y;z", ""]


@pytest.mark.parametrize("text", TEXTS)
@pytest.mark.parametrize("seed", range(5))
def test_a_growing_text_has_the_whole_texts_ids(text: str, seed: int) -> None:
    rng = random.Random(seed)
    growing, end = GrowingText(), 0
    while end < len(text):
        end = min(len(text), end + rng.randint(1, 4))
        assert growing.ids(text[:end]) == tokenize(text[:end])
    assert growing.ids(text) == tokenize(text)


def test_a_text_that_is_not_an_extension_is_read_afresh() -> None:
    growing = GrowingText()
    growing.ids("The answer is 42 and more")
    assert growing.ids("The answer is 4") == tokenize("The answer is 4")  # (a stop cut it)
    assert growing.ids("Other") == tokenize("Other")


def test_each_piece_is_tokenized_about_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A long output streamed a word at a time: work in its length, not its square (a
    review's call with top_logprobs took 14 s of engine CPU for 800 tokens)."""
    pieces: list[str] = []
    real = tokenizer._piece_ids.__wrapped__
    monkeypatch.setattr(tokenizer, "_piece_ids", lambda p: pieces.append(p) or real(p))
    growing, text = GrowingText(), ""
    for i in range(500):
        text += f" word{i}"
        growing.ids(text)
    assert len(pieces) <= 2 * 500
