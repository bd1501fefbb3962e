"""What a streamed answer sends: never text it must take back (workers/streamed_text.py)."""

from __future__ import annotations

import pytest

from workers.streamed_text import StreamedText, stop_strings


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
    # the review's case as pieces: the engine sent " request" before it matched the stop
    # string, and its last piece is empty; what began it was held, and is dropped at the end
    (("request c",), [("consider", False), ("s", False), (" request", False), ("", True)],
     "request c", ["conside", "rs", " ", ""]),
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
    pieces = ["The", " wea", "ther req", ""]  # the token completing it ends it, sending nothing
    incremental = StreamedText(["request c"])
    got = "".join(incremental.piece(p, i == len(pieces) - 1, "request c")
                  for i, p in enumerate(pieces))
    assert got == sent == "The weather "
