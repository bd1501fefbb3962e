"""SGLang's stream_reasoning false over the chat stream: the thinking held back and sent
whole with the answer's first piece (table tests over the deltas a call yields)."""

from __future__ import annotations

import pytest

from gateway.call_items import Delta
from gateway.chat_stream import ThinkingHold

T, A = "thinking ", "answer"


@pytest.mark.parametrize(("hold", "deltas", "sent", "rest"), [
    # passed on as it comes
    (False, [Delta("", reasoning=T), Delta("", reasoning=T), Delta(A)], [T, T, ""], ""),
    # held: nothing until the answer's first piece, then all of it
    (True, [Delta("", reasoning=T), Delta("", reasoning=T), Delta(A), Delta(A)],
     [None, None, T + T, ""], ""),
    # the thinking ends with the answer's first piece in one delta
    (True, [Delta("", reasoning=T), Delta(A, reasoning=T)], [None, T + T], ""),
    # the last text (empty) lets it go; so does the call's end (rest)
    (True, [Delta("", reasoning=T), Delta("", last=True)], [None, T], ""),
    (True, [Delta("", reasoning=T), Delta("", reasoning=T)], [None, None], T + T),
    # a restart voids what was held, and holds on: the new attempt's thinking goes whole
    (True, [Delta("", reasoning="old"), Delta("", reasoning=T, restart=True),
            Delta("", reasoning=T), Delta(A)], [None, None, None, T + T], ""),
    (True, [Delta("", reasoning="old"), Delta("", restart=True), Delta(A)],
     [None, None, ""], ""),
    (False, [Delta("", reasoning="old"), Delta("", reasoning=T, restart=True), Delta(A)],
     ["old", T, ""], ""),
])
def test_thinking_held_or_passed_on(hold: bool, deltas: list[Delta], sent: list[str | None],
                                    rest: str) -> None:
    thinking = ThinkingHold(hold)
    assert [thinking.pass_on(d) for d in deltas] == sent
    assert thinking.rest() == rest
