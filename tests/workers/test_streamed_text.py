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
