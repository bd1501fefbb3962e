"""The configuration reference is generated from the config dataclasses: it must be current,
and every field must be documented by a comment in its dataclass (ostinato/config.py,
ostinato/gateway_config.py, ostinato/service_config.py)."""

from __future__ import annotations

from dataclasses import dataclass

from ostinato.config_reference import OUT, _comments, fields, render


def test_every_config_field_is_documented() -> None:
    missing = [f"{fd.section}.{fd.name}".lstrip(".") for fd in fields() if not fd.doc]
    assert not missing, f"config fields without a comment: {missing}"


def test_reference_is_current() -> None:
    assert OUT.read_text() == render(), \
        "docs/reference/config.md is stale: run `make docs`"


@dataclass
class Example:
    # above a: one
    # and two
    a: int = 1  # trailing a
    b: int = 2  # only trailing
    c: int = 3

    # above d, after a blank line
    d: str = "x"


def test_comments_above_and_trailing_document_the_field_below() -> None:
    assert _comments(Example) == {"a": "above a: one and two trailing a", "b": "only trailing",
                                  "c": "", "d": "above d, after a blank line"}
