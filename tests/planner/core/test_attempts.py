"""Which attempt a known call id admitted again starts (planner/core/attempts.py): table-driven."""

from __future__ import annotations

import pytest

from planner.core.attempts import Readmission, is_retry, readmission
from planner.core.model import NO_WORKERS, CallRecord, CallState, DuplicateCall


def _record(state: CallState, *, attempt: int = 1, recovered: bool = False,
            excluded: frozenset[str] = NO_WORKERS) -> CallRecord:
    call = CallRecord(program_id="acme/p", call_id="c", tenant="acme", thread_id="main",
                      parents=(), prompt_tokens=10, max_new_tokens=10, arrival=5.0,
                      attempt=attempt, recovered=recovered, excluded=excluded)
    call.state, call.worker_id = state, "w1"
    return call


@pytest.mark.parametrize(("state", "attempt", "retry_of", "resend", "expected"), [
    (CallState.DONE, 1, 0, False, False),       # a finished call is not run again...
    (CallState.DONE, 1, 1, False, False),
    (CallState.DONE, 1, 0, True, True),         # ...unless its caller never got the answer
    (CallState.RUNNING, 2, 2, False, True),     # its running attempt failed on the worker
    (CallState.RUNNING, 2, 1, False, False),    # a stale report of an earlier attempt
    (CallState.RUNNING, 1, 0, False, False),    # the same id while it runs: a duplicate
    (CallState.FAILED, 1, 0, False, True),      # ended failed or cancelled: run again
    (CallState.CANCELLED, 1, 0, False, True),
    (CallState.QUEUED, 1, 0, False, False),
])
def test_is_retry(state: CallState, attempt: int, retry_of: int, resend: bool,
                  expected: bool) -> None:
    assert is_retry(_record(state, attempt=attempt), retry_of, resend) is expected


def test_a_retry_avoids_the_worker_its_attempt_failed_on_and_keeps_its_arrival() -> None:
    existing = _record(CallState.RUNNING, attempt=2, excluded=frozenset({"w0"}))
    again = readmission(existing, 2, False, frozenset({"w9"}))
    assert again == Readmission(3, True, frozenset({"w0", "w1", "w9"}), 5.0)


def test_a_resent_call_may_run_on_the_worker_it_ran_on() -> None:
    again = readmission(_record(CallState.DONE), 0, True, NO_WORKERS)
    assert again == Readmission(2, True, NO_WORKERS, 5.0)


def test_a_restored_running_call_readmitted_gets_its_record_back() -> None:
    existing = _record(CallState.RUNNING, recovered=True)
    assert readmission(existing, 0, False, NO_WORKERS) is existing
    assert existing.recovered is False


def test_a_restored_waiting_call_keeps_its_attempt() -> None:
    existing = _record(CallState.QUEUED, attempt=2, recovered=True, excluded=frozenset({"w0"}))
    assert readmission(existing, 0, False, NO_WORKERS) == Readmission(
        2, False, frozenset({"w0"}), 5.0)


def test_the_same_id_again_is_a_duplicate_naming_it() -> None:
    with pytest.raises(DuplicateCall, match="'c' already exists in program 'acme/p'"):
        readmission(_record(CallState.QUEUED), 0, False, NO_WORKERS)
