"""The decision path's builders (planner/core/model.py) make the objects the dataclasses'
own constructors make: `new_grant` a Grant, `call_changed` a CallChanged; both stay frozen."""

from __future__ import annotations

import dataclasses

import pytest

from planner.core.model import CallChanged, CallRecord, Grant, call_changed, new_grant


def test_new_grant_is_the_grant_the_constructor_makes() -> None:
    values = ("p1", "c7", "w003", "10.0.0.3:50061", 40, 1.25, 12, 0.5, 2)
    built, made = new_grant(*values), Grant(*values)
    assert built == made and hash(built) == hash(made) and repr(built) == repr(made)
    assert dataclasses.astuple(built) == values
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.priority = 0  # type: ignore[misc]


def test_call_changed_is_the_event_the_constructor_makes() -> None:
    call = CallRecord("p", "c", "t", "main", (), 10, 4, 0.0)
    built = call_changed(call)
    assert built == CallChanged(call) and built.call is call
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.call = call  # type: ignore[misc]
