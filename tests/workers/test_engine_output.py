"""An SGLang output read (workers/engine_output.py): whether it ended at a stop string, the
engine's finish_reason.matched a string, or at an end-of-sequence token, matched a token id
(what tells the gateway an answer was cut: GenerateResult.stop_string)."""

from __future__ import annotations

import pytest

from workers.engine_output import parse_output


@pytest.mark.parametrize(("reason", "stop_string"), [
    ({"type": "stop", "matched": "\nObservation:"}, True),
    ({"type": "stop", "matched": 128009}, False),  # the model's own end
    ({"type": "length", "length": 16}, False),
    (None, False),  # not finished
])
def test_an_end_at_a_stop_string_is_told_from_the_models_own(reason: object,
                                                             stop_string: bool) -> None:
    out = parse_output({"text": "hi", "meta_info": {"finish_reason": reason}})
    assert out.stop_string is stop_string
