"""Which attempt an admission of a known call id starts: a retry (the next attempt), the
re-admission of a call a restarted planner restored, or a duplicate (refused)."""

from __future__ import annotations

from dataclasses import dataclass

from planner.core.model import CallRecord, CallState, DuplicateCall


def is_retry(existing: CallRecord, retry_of_attempt: int, resend: bool = False) -> bool:
    """Whether admitting `existing`'s id again starts its next attempt (see
    `PlannerCore.submit`)."""
    if resend:
        return True
    if existing.state is CallState.DONE:
        return False
    if retry_of_attempt:
        return retry_of_attempt == existing.attempt
    return existing.state in (CallState.FAILED, CallState.CANCELLED)


@dataclass(frozen=True, slots=True)
class Readmission:
    """What a call admitted again continues from: its attempt number, whether that is a
    new attempt (`retry`), the workers it avoids and its first arrival."""

    attempt: int
    retry: bool
    excluded: frozenset[str]
    arrival: float


def readmission(existing: CallRecord, retry_of_attempt: int, resend: bool,
                excluded: frozenset[str]) -> Readmission | CallRecord:
    """A known call id admitted again: the attempt it starts, or `existing` itself when
    it still runs and its caller re-admits it after a planner restart (its grant was
    lost: the caller gets the same one). DuplicateCall otherwise."""
    if existing.recovered and retry_of_attempt > existing.attempt:
        # its caller ran an attempt whose grant was lost with the planner (the record kept
        # its admission: an early start granted elsewhere), and that attempt failed
        existing.attempt, existing.started_on = retry_of_attempt, ""
    if is_retry(existing, retry_of_attempt, resend):
        excluded |= existing.excluded
        if existing.state is CallState.RUNNING and not resend:
            excluded |= {existing.worker_id}
        return Readmission(existing.attempt + 1, True, excluded, existing.arrival)
    if not existing.recovered:
        raise DuplicateCall(
            f"call {existing.call_id!r} already exists in program {existing.program_id!r}")
    if existing.state is CallState.RUNNING:
        existing.recovered = False
        return existing
    return Readmission(existing.attempt, False, excluded | existing.excluded, existing.arrival)


def started_early(call: CallRecord, worker_id: str, priority: int | None = None) -> None:
    """`call`, sent to a worker by its gateway ahead of its grant (`started_on`: an early
    start), starts on `worker_id` at engine `priority` (None: as it is known to run): there,
    at no higher a priority than that, the early run is the call's attempt; elsewhere, or
    above it (no run may keep a priority its grant did not give: another tenant's
    isolation boost), it runs as the next attempt, so the early run's reports are of an
    attempt replaced. One below runs on as it is (an engine cannot lift a running request):
    the call itself is the one that waits longer where its engine queues requests."""
    if call.started_on != worker_id or (priority is not None
                                        and call.started_priority > priority):
        call.attempt += 1
    else:
        call.ran_early = True
    call.started_on = ""
