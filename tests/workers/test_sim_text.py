"""The sim engine's synthetic decoder: deterministic, honours max tokens, stop and EOS."""

from __future__ import annotations

import pytest

from workers.sim.text import EOS_TOKEN_ID, Decoder, FixedLengthDecoder, StepCounter
from workers.sim.tokenizer import count_tokens, tokenize


def run(decoder: Decoder) -> Decoder:
    while not decoder.finished:
        decoder.step()
    return decoder


def test_tokenizer_is_deterministic_and_prefix_preserving() -> None:
    a, b = tokenize("The cat sat."), tokenize("The cat sat. Then it slept.")
    assert a == tokenize("The cat sat.") and b[: len(a)] == a
    assert count_tokens("The cat sat.") == len(a) == 4


@pytest.mark.parametrize(
    ("kwargs", "reason", "tokens"),
    [
        ({"max_new_tokens": 0}, {"type": "length", "length": 0}, 0),
        ({"max_new_tokens": 3}, {"type": "length", "length": 3}, 3),
        ({"max_new_tokens": 500, "ignore_eos": True}, {"type": "length", "length": 500}, 500),
    ],
)
def test_length_limits(kwargs: dict, reason: dict, tokens: int) -> None:
    d = run(Decoder([1, 2, 3], **kwargs))
    assert d.finish_reason == reason and d.completion_tokens == tokens


@pytest.mark.parametrize("seed", [0, 1, (1 << 63), (1 << 64) - 2, (1 << 64) - 1])
def test_any_uint64_seed_decodes(seed: int) -> None:
    """The largest seed a request may carry (2**64 - 1) overflowed natural_length's seed + 1
    (the engine answered 500); seeds are taken modulo 2**64, the same answer for the same seed."""
    d1, d2 = run(Decoder([5, 6, 7], max_new_tokens=200, seed=seed)), \
        run(Decoder([5, 6, 7], max_new_tokens=200, seed=seed))
    assert d1.text == d2.text and d1.finish_reason["type"] == "stop"


def test_eos_and_determinism() -> None:
    d1 = run(Decoder([5, 6, 7], max_new_tokens=10_000))
    d2 = run(Decoder([5, 6, 7], max_new_tokens=10_000))
    assert d1.finish_reason == {"type": "stop", "matched": EOS_TOKEN_ID}
    assert d1.text == d2.text and 4 <= d1.completion_tokens < 96
    assert run(Decoder([5, 6, 7], max_new_tokens=10_000, seed=1)).text != d1.text


def test_stop_string_truncates_output_before_it() -> None:
    full = run(Decoder([9], max_new_tokens=40, ignore_eos=True)).text
    word = full.split()[5]
    d = run(Decoder([9], max_new_tokens=40, ignore_eos=True, stop=(" " + word,)))
    assert d.finish_reason == {"type": "stop", "matched": " " + word}
    assert full.startswith(d.text) and (" " + word) not in d.text


def test_no_stop_trim_keeps_the_stop_string_it_ended_at() -> None:
    """SGLang's no_stop_trim: the text ends with the matched stop string, same finish."""
    full = run(Decoder([9], max_new_tokens=40, ignore_eos=True)).text
    stop = " " + full.split()[5]
    kept = run(Decoder([9], max_new_tokens=40, ignore_eos=True, stop=(stop,), no_stop_trim=True))
    assert kept.finish_reason == {"type": "stop", "matched": stop}
    assert kept.text == full[:full.index(stop) + len(stop)]


def test_fixed_length_decoder_follows_a_step_counter_until_settled() -> None:
    counter = StepCounter()
    d = FixedLengthDecoder(5, 100)
    d.advance(1)
    d.follow(counter)
    counter.steps += 3
    assert d.completion_tokens == 4 and d.output_ids == [100, 101, 102, 103]
    assert tuple(d.output_key()) == (100, 101, 102, 103) and d.remaining_upper_bound() == 1
    assert not d.finished
    counter.steps += 1
    assert d.settle() == 4 and d.finished and d.completion_tokens == 5
    counter.steps += 10  # no longer followed
    assert d.completion_tokens == 5 and d.finish_reason == {"type": "length", "length": 5}
