"""JSON read strictly (ostinato/strict_json.py): what Python's json takes that is no JSON,
or that it would write back as no JSON, is refused; everything else reads as json's does."""

from __future__ import annotations

import json

import pytest

from ostinato import strict_json


@pytest.mark.parametrize("text", ["NaN", "[Infinity]", '{"a": -Infinity}', "1e999",
                                  '{"days": -1e400}'])
def test_what_is_no_json_or_would_be_written_as_none_is_refused(text: str) -> None:
    with pytest.raises(strict_json.NotJson):
        strict_json.loads(text)
    json.loads(text)  # (Python's json takes each)


@pytest.mark.parametrize("text", ['{"a": 1.5e300, "b": [1, 2.0, -0.0]}', "1e-400", "12345678901234567890"])
def test_json_reads_as_jsons_does(text: str) -> None:
    assert strict_json.loads(text) == json.loads(text)
