"""planner/translate.py: the core's refusals as admission ends; only a program past its
deadline is final (no retry of the admission can be granted)."""

from __future__ import annotations

import grpc
import pytest

from planner.core import DeadlineExceeded, DuplicateCall, Overloaded, PlannerError, UnknownProgram
from planner.translate import refused


@pytest.mark.parametrize(("error", "code", "final"), [
    (DeadlineExceeded("past its deadline"), grpc.StatusCode.DEADLINE_EXCEEDED, True),
    (Overloaded("full"), grpc.StatusCode.RESOURCE_EXHAUSTED, False),
    (UnknownProgram("no such program"), grpc.StatusCode.NOT_FOUND, False),
    (DuplicateCall("taken"), grpc.StatusCode.ALREADY_EXISTS, False),
])
def test_refusals(error: PlannerError, code: grpc.StatusCode, final: bool) -> None:
    ended = refused(error)
    assert (ended.code, ended.details, ended.final) == (code, str(error), final)
