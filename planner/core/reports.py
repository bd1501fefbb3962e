"""The reports on calls: a worker's completion and progress reports, and a caller's cancel.
A mixin of PlannerCore (planner/core/planner.py), whose state it reads and changes; the
calls' end itself (`_finish`) is there.
"""

from __future__ import annotations

from collections.abc import Callable

from ostinato.clock import Clock
from planner.core.admission import ProgramAdmission
from planner.core.estimates import OutputEstimator
from planner.core.model import (
    CallChanged,
    CallRecord,
    CallState,
    Event,
    NoSuchCall,
    Program,
    call_key,
    work_of,
)
from planner.core.queue import MultiLevelQueue

# How much more service than the planner's time since its grant a worker may report for a
# call (clock granularity; a restored grant's time, mapped through the wall clock)
SERVICE_SLACK_S = 1.0


class CallReports:
    _clock: Clock
    _programs: dict[str, Program]
    _calls: dict[str, CallRecord]  # live (unfinished) calls by key
    _orphans: dict[str, tuple[CallRecord, float]]  # restored waiting calls: key -> (call, since)
    _queue: MultiLevelQueue
    _admission: ProgramAdmission
    estimator: OutputEstimator
    _finish: Callable[[CallRecord, CallState], None]  # PlannerCore's: ends a call
    _events: list[Event]

    def complete(
        self,
        program_id: str,
        call_id: str,
        *,
        state: CallState = CallState.DONE,
        service_s: float = 0.0,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
        cached_tokens: int = 0,
        reasoning_tokens: int = 0,
        attempt: int = 0,
        cut: bool | None = None,
        worker_id: str = "",
        granted: bool = False,
    ) -> CallRecord:
        """Records the end of a running call. Repeated reports of one call are ignored, and
        so are reports of an `attempt` that a retry replaced (0: whichever runs).
        `service_s` is held to [0, the time since its grant + SERVICE_SLACK_S] (nan: 0): a
        worker's implausible report must not take a tenant's fair share for good. `cut`: the
        call was ended from its caller's side (cancelled, or its deadline passed) while its
        worker may still run it (default: whether `state` is CANCELLED). `worker_id`: the
        worker the report names; the one a waiting call was started on early (`started_on`)
        reports that run, which counts only once the call is granted there. `granted`: the
        report is its gateway's, of the grant it holds (`_live`)."""
        if not state.finished:
            raise ValueError(f"complete() needs a finished state, got {state}")
        call = self._live(program_id, call_id, attempt, worker_id, granted)
        if call is not None and call.started_on and worker_id == call.started_on:
            raise NoSuchCall(f"call {call_id!r} was started on {worker_id!r} ahead of its "
                             "grant: that run counts once it is granted there")
        if call is None:
            ended = self._cut_unreported(program_id, call_id, attempt)
            if ended is None:
                raise NoSuchCall(f"no live call {call_id!r} in program {program_id!r}"
                                 + (f" at attempt {attempt}" if attempt else ""))
            # its caller's side ended it first: what it used until its engine stopped counts
            ended.usage_to_come = False
            self._used(ended, ended.state, service_s, prompt_tokens, completion_tokens,
                       cached_tokens, reasoning_tokens)
            self._events.append(CallChanged(ended))  # (its record is saved again)
            return ended
        # the gateway's report of a caller gone, or of a deadline passed, while it held the
        # grant (its attempt named: the worker may have started the call) says nothing of
        # what the call used (zeros): its worker's report does, after (_cut_unreported).
        # One gone before its grant came (attempt 0) was never sent to a worker.
        if cut is None:
            cut = state is CallState.CANCELLED
        to_come = call.state is CallState.RUNNING and cut and \
            attempt != 0 and not (service_s or prompt_tokens or completion_tokens)
        self._used(call, state, service_s, prompt_tokens, completion_tokens, cached_tokens,
                   reasoning_tokens)
        self._finish(call, state)
        call.usage_to_come = to_come
        return call

    def _used(self, call: CallRecord, state: CallState, service_s: float, prompt_tokens: int,
              completion_tokens: int, cached_tokens: int, reasoning_tokens: int) -> None:
        """A worker's report of what `call` used: its usage, its program's attained service
        and work, its tenant's fair share."""
        # (an early run confirmed at its grant ran from its admission: a review found one
        # held 10 s at the planner charged 2 s of its 11)
        started = call.arrival if call.dispatched_at is None or call.ran_early \
            else call.dispatched_at
        end = self._clock.now() if call.finished_at is None else call.finished_at
        call.service_s = min(max(0.0, service_s),  # (max(0.0, nan) is 0.0)
                             max(0.0, end - started) + SERVICE_SLACK_S)
        call.prompt_tokens_used = prompt_tokens
        call.completion_tokens = completion_tokens
        call.cached_tokens = cached_tokens
        call.reasoning_tokens = min(reasoning_tokens, completion_tokens)
        program = self._programs.get(call.program_id)
        if program is not None:
            program.attained_service_s += call.service_s
            program.attained_work += work_of(completion_tokens, max(0, prompt_tokens
                                                                    - cached_tokens))
            if state is CallState.DONE:
                self.estimator.observe(program.program_class, completion_tokens)
            self._admission.generated(call.program_id, completion_tokens)
        self._queue.fair_share.account(call.tenant, call.service_s)

    def awaits_usage(self, program_id: str, call_id: str) -> bool:
        """Whether the call was cut (cancelled, or its deadline passed) while it ran and its
        worker's report (what it used) is still to come: that report is no second
        completion of the call."""
        program = self._programs.get(program_id)
        call = program.calls.get(call_id) if program is not None else None
        return call is not None and call.usage_to_come

    def _cut_unreported(self, program_id: str, call_id: str,
                        attempt: int) -> CallRecord | None:
        """The call, if it was cancelled (or cut by its deadline: `usage_to_come`) while it
        ran and no report has yet said what it used: the worker's report follows, and the
        gateway's, which says the caller went away or its time ran out, says nothing of its
        use (zeros; sglang review 2026-12-06: a call cut by its deadline counted none of
        the 1,139 tokens its engine generated). A call restored by a restarted planner
        keeps what it used, so a report replayed to it is not taken twice."""
        program = self._programs.get(program_id)
        call = program.calls.get(call_id) if program is not None else None
        if call is None or call.dispatched_at is None \
                or not (call.state is CallState.CANCELLED or call.usage_to_come) \
                or (attempt and call.attempt != attempt) or call.service_s > 0 \
                or call.prompt_tokens_used > 0 or call.completion_tokens > 0:
            return None
        return call

    def progress(self, program_id: str, call_id: str, generated_tokens: int) -> CallRecord:
        """A worker's mid-stream report: refines the running call's output estimate.

        Late or repeated reports (a count below what is known) change nothing.
        """
        call = self._calls.get(call_key(program_id, call_id))
        if call is None or call.state is not CallState.RUNNING:
            raise NoSuchCall(f"no running call {call_id!r} in program {program_id!r}")
        if generated_tokens > call.generated_tokens:
            program = self._programs.get(program_id)
            key = program.program_class if program is not None else ""
            call.generated_tokens = generated_tokens
            call.expected_output = self.estimator.refine(key, generated_tokens,
                                                         call.max_new_tokens, call.hint)
        return call

    def cancel(self, program_id: str, call_id: str, attempt: int = 0) -> None:
        """The caller gave up: a waiting call is dropped; a running one frees its worker.
        With `attempt`, only while that attempt is the call's current one."""
        call = self._live(program_id, call_id, attempt)
        if call is not None:  # (a grant its caller never got: no worker started it)
            self._finish(call, CallState.CANCELLED)

    def _live(self, program_id: str, call_id: str, attempt: int, worker_id: str = "",
              granted: bool = False) -> CallRecord | None:
        """The unfinished call (an orphan included), if `attempt` (0: any) is its current.
        An orphan started early (`started_on`) whose grant was lost with the planner takes
        where it ran from a report that shows it: its gateway's (`granted`) of the early
        run's attempt, or any report of the attempt after it (only a grant starts that: on
        another worker, or on the early one at another priority). The early worker's own
        report of the early run's attempt shows nothing: that run also runs ungranted."""
        key = call_key(program_id, call_id)
        call = self._calls.get(key)
        if call is None and key in self._orphans:  # it ran, but its grant was not persisted
            call = self._orphans[key][0]
            if call.started_on and attempt and worker_id and (
                    attempt == call.attempt + 1
                    or (granted and worker_id == call.started_on and attempt == call.attempt)):
                call.attempt, call.started_on = attempt, ""
        if call is None or (attempt and call.attempt != attempt):
            return None
        return call
