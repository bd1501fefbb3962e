"""What a streamed answer sends: never text it must take back (workers/streamed_text.py)."""

from __future__ import annotations

import random

import pytest

from workers.streamed_text import StreamedText, stop_strings, untrimmed_stop


@pytest.mark.parametrize(("stops", "events", "deltas"), [
    # no stop strings: each event's new text, as it comes
    ((), [("ab", False), ("abc", False), ("abcd", True)], ["ab", "c", "d"]),
    # the review's case: "request c" split across tokens; the last event drops it (an "r"
    # or " request" at the end may begin it, so each waits for the next text)
    (("request c",), [("consider", False), ("considers", False), ("considers request", False),
                      ("considers ", True)],
     ["conside", "rs", " ", ""]),
    # an end that began a stop string but did not become one is sent once it is clear
    (("\nObservation",), [("Thought", False), ("Thought\nObs", False), ("Thought\nObey", False),
                          ("Thought\nObey.", True)],
     ["Thought", "", "\nObey", "."]),
    # the answer ends (length) on what began a stop string: the held text is sent
    (("END",), [("x E", False), ("x EN", True)], ["x ", "EN"]),
    # several stop strings: the longest held end counts
    (("ab", "xyz"), [("1x", False), ("1xy", False), ("1xya", False), ("1xya", True)],
     ["1", "", "xy", "a"]),
    # the engine's last text shorter than what was sent, and not its start: nothing sent again
    ((), [("hello", False), ("help", True)], ["hello", ""]),
])
def test_deltas(stops: tuple[str, ...], events: list[tuple[str, bool]], deltas: list[str]) -> None:
    streamed = StreamedText(stops)
    assert [streamed.delta(text, finished) for text, finished in events] == deltas


def test_what_was_sent_is_the_final_text_when_the_engine_drops_a_stop_string() -> None:
    streamed = StreamedText(["request c"])
    sent = "".join(streamed.delta(t, f) for t, f in [
        ("consider", False), ("considers", False), ("considers request", False),
        ("considers ", True)])
    assert sent == "considers "


@pytest.mark.parametrize(("params", "stops"), [
    ({}, ()), ({"stop": "x"}, ("x",)), ({"stop": ["a", "", "b"]}, ("a", "", "b")),
    ({"stop": None}, ()), ({"stop": [1, "a"]}, ("a",)),
])
def test_stop_strings(params: dict, stops: tuple[str, ...]) -> None:
    assert stop_strings(params) == stops


@pytest.mark.parametrize(("stops", "pieces", "matched", "deltas"), [
    # SGLang's --incremental-streaming-output: each event its new text only
    ((), [("ab", False), ("c", False), ("d", True)], None, ["ab", "c", "d"]),
    # the review's case as SGLang sends it: nothing while its text may begin the stop
    # string (" request"), then the trimmed last piece, which is the answer's
    (("request c",), [("consider", False), ("s", False), (" ", True)],
     "request c", ["conside", "rs", " "]),
    # a trimmed last piece that begins the stop string is still the answer's ("xE" + "END")
    (("END",), [("x", False), ("E", True)], "END", ["x", "E"]),
    # an end that began a stop string but did not become one is sent once it is clear
    (("\nObservation",), [("Thought", False), ("\nOb", False), ("ey", False), (".", True)],
     None, ["Thought", "", "\nObey", "."]),
    # the answer ends (length) on what began a stop string: the held text is sent
    (("END",), [("x E", False), ("N", True)], None, ["x ", "EN"]),
    # it ends at another stop (an EOS token: no string): the held text is sent
    (("xyz",), [("1x", False), ("y", True)], None, ["1", "xy"]),
])
def test_pieces(stops: tuple[str, ...], pieces: list[tuple[str, bool]], matched: str | None,
                deltas: list[str]) -> None:
    streamed = StreamedText(stops)
    assert [streamed.piece(text, finished, matched if finished else None)
            for text, finished in pieces] == deltas


def test_pieces_and_whole_texts_make_the_same_answer() -> None:
    """A cumulative stream and an incremental one of the same answer send the same text."""
    texts = ["The", "The wea", "The weather req", "The weather "]  # the stop string dropped
    whole = StreamedText(["request c"])
    sent = "".join(whole.delta(t, i == len(texts) - 1) for i, t in enumerate(texts))
    pieces = ["The", " wea", "ther ", ""]  # SGLang held "req" back; the stop ends it
    incremental = StreamedText(["request c"])
    got = "".join(incremental.piece(p, i == len(pieces) - 1, "request c")
                  for i, p in enumerate(pieces))
    assert got == sent == "The weather "


def _sglang_stream(tokens: list[str], stops: list[str], no_stop_trim: bool,
                   ) -> tuple[list[tuple[str, bool, str | None]], str]:
    """What SGLang 0.5.23 streams for these decoded tokens (its scheduler sends no event
    while the text ends in what may begin a stop string, check_match_stop_str_prefix; its
    detokenizer_manager: each event sends the text past what it sent; the finishing one
    sends trim_matched_stop of the whole text past that, nothing if the trim is shorter),
    and its unstreamed answer (the text up to the first stop string, found with str.find)."""
    decoded, sent, increments = "", 0, []
    may_stop = StreamedText(stops)
    for i, token in enumerate(tokens):
        decoded += token
        hits = [(decoded.find(s), s) for s in stops if s in decoded]
        if hits:
            at, stop = min(hits)
            final = decoded[:at + len(stop)] if no_stop_trim else decoded[:at]
            increments.append((final[sent:], True, stop))
            return increments, decoded[:at]
        last = i == len(tokens) - 1
        if last or not may_stop.held(decoded):
            increments.append((decoded[sent:], last, None))
            sent = len(decoded)
    return increments, decoded


@pytest.mark.parametrize(("tokens", "answer"), [
    (["abc", "EN", "D"], "abc"),        # the held "EN" began the stop
    (["x", "E", "END"], "xE"),          # the held "E" did not: it is the answer's
    (["x", "E", "N", "EN", "D"], "xEN"),
    (["Thought: ok\n", "\nObservation:"], "Thought: ok\n"),
])
def test_an_untrimmed_last_event_tells_the_answer_from_the_stop(
        tokens: list[str], answer: str) -> None:
    stops = ["END", "\nObservation:"]
    increments, truth = _sglang_stream(tokens, stops, no_stop_trim=True)
    assert truth == answer
    incremental = StreamedText(stops, untrimmed=True)
    cumulative, whole = StreamedText(stops, untrimmed=True), ""
    pieces, deltas = [], []
    for text, finished, matched in increments:
        pieces.append(incremental.piece(text, finished, matched))
        whole += text
        deltas.append(cumulative.delta(whole, finished, matched))
    assert "".join(pieces) == "".join(deltas) == answer


def test_streams_give_the_unstreamed_answer_for_any_tokens() -> None:
    """Random token streams against SGLang's stop handling (modelled above): untrimmed
    (no_stop_trim) or trimmed, both kinds of stream give exactly the unstreamed answer."""
    rng = random.Random(7)
    alphabet = ["a", "E", "N", "D", "EN", "ND", "END", "xE", "\n", "\n\n", "NE"]
    for i in range(6000):
        untrimmed = i % 2 == 0  # no_stop_trim, or trimmed (special tokens kept)
        stops = rng.sample(["END", "\n\n", "NE", "aND"], rng.randint(1, 2))
        tokens = [rng.choice(alphabet) for _ in range(rng.randint(1, 8))]
        increments, truth = _sglang_stream(tokens, stops, no_stop_trim=untrimmed)
        incremental = StreamedText(stops, untrimmed=untrimmed)
        cumulative, whole, deltas = StreamedText(stops, untrimmed=untrimmed), "", []
        for text, finished, matched in increments:
            whole += text
            deltas.append(cumulative.delta(whole, finished, matched))
        got = "".join(incremental.piece(t, f, m) for t, f, m in increments)
        assert got == "".join(deltas) == truth, (tokens, stops, untrimmed)


@pytest.mark.parametrize(("params", "untrimmed"), [
    ({}, False), ({"stop": ["x"]}, True), ({"stop": "x"}, True), ({"stop": []}, False),
    ({"stop": ["x"], "skip_special_tokens": False}, False),  # an EOS token's text would stay
])
def test_untrimmed_stop(params: dict, untrimmed: bool) -> None:
    assert untrimmed_stop(params) is untrimmed
