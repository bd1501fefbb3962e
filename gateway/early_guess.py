"""Early start, the gateway's guess: the worker a call is sent to while its admission is on
its way to the planner, so that the planner's round trip overlaps the worker's instead of
preceding it (gateway/early_run.py runs it; gateway/mesh_run.py wires both). Pure.

The guess: for a call of a program this gateway's grants have placed, the worker of its
last grant (where the planner's affinity routing keeps a program's calls); for a new
program's, the planner's own next choice: each grant names where a call with no home and
no cached prefix would start next (`Grant.next_worker_id`: the least loaded worker with a
free slot). The early run has the lowest engine priority, 0, named in the admission
(`AdmitRequest.started_priority`): the planner runs it again where its grant gives the call
a lower priority than the run's, which 0 never is. A guessed priority would be cut
wherever a program's level moved (PLAS's, as it attains service) or run at another call's
(another tenant's isolation boost); at 0 a confirmed early run waits behind the engine's
other requests only where the engine queues them, which a planner budget within the
engine's capacity keeps from happening. The admission names the worker
(`AdmitRequest.started_on`); the planner starts
the call there when that worker is as good as its own choice (planner/core/routing.py
`early_or`), and the grant decides: the same worker, and the early run is the call's first
attempt (its answer may be there already); another, and the early run is cancelled and the
call runs where granted as its next attempt (planner/core/attempts.py `started_early`: the
early run's reports are of an attempt replaced).

Only where a wrong guess costs little and jumps no queue: a call's first attempt, not
resent, without parents (a continuing call goes to the worker that holds its context),
with a prompt of at most `max_prompt_tokens` (a cancelled early run wasted its prefill),
while the planner's last grant, at most `fresh_s` old (gateway.early_start_fresh_s), said
no call waited there and some worker had a free slot, and no other call of this gateway's
is being admitted (its grant takes the worker named next: a burst of calls would all be
guessed onto it). Not a promise that no queue is jumped: other gateways may fill the
planner's queue within `fresh_s`, and an early run then runs while its call waits (its work
counted once its grant confirms it; cut, if its grant names another worker, without being
charged to its tenant).
"""

from __future__ import annotations

from collections import OrderedDict

from ostinato.v1 import planner_pb2

FIRST_ATTEMPT = 1  # the attempt the planner numbers a call's first run (planner/core/model.py)
EARLY_PRIORITY = 0  # the engine priority of an early run: the lowest level's
# The last grant is news this long: an idle gateway's says nothing of what other gateways
# have queued at the planner since
FRESH_S = 1.0
PROGRAMS_KEPT = 4096  # programs whose last grant's worker is kept (the least recent dropped)


class EarlyGuess:
    def __init__(self, max_prompt_tokens: int, fresh_s: float = FRESH_S) -> None:
        """`max_prompt_tokens`: the longest prompt started early (0: none is); `fresh_s`:
        how long the last grant is news (gateway.early_start_fresh_s)."""
        self.max_prompt_tokens = max_prompt_tokens
        self.fresh_s = fresh_s
        self._next: planner_pb2.Grant | None = None  # what the last grant named next
        self._granted_at = float("-inf")  # when the last grant came
        # program id -> its last grant's (worker id, address), the least recent first
        self._programs: OrderedDict[str, tuple[str, str]] = OrderedDict()
        self.confirmed = 0  # early runs the grant named (the call's first attempt)
        self.missed = 0  # early runs cancelled: granted elsewhere, or not granted

    def granted(self, grant: planner_pb2.Grant, program_id: str, now: float) -> None:
        """A grant of a call of `program_id` ("": of a one-call program) came at `now`:
        where that program's calls go, and where the planner starts a new program's call
        next."""
        self._granted_at = now
        if grant.worker_id and program_id:
            self._programs[program_id] = (grant.worker_id, grant.worker_address)
            self._programs.move_to_end(program_id)
            if len(self._programs) > PROGRAMS_KEPT:
                self._programs.popitem(last=False)
        if grant.next_worker_id:
            self._next = planner_pb2.Grant(worker_id=grant.next_worker_id,
                                           worker_address=grant.next_worker_address,
                                           priority=EARLY_PRIORITY, attempt=FIRST_ATTEMPT)
        elif grant.worker_id:  # every worker full (or a planner that names none)
            self._next = None  # (a grant without a worker: a call recorded only)

    def guess(self, admit: planner_pb2.AdmitRequest, planner_waiting: int, now: float
              ) -> planner_pb2.Grant | None:
        """The grant an early run of `admit`'s call goes by, or None: not started early.
        `planner_waiting`: calls waiting at the planner and this gateway's being admitted."""
        # (a last grant naming no next worker: every worker full, or a planner from before
        # early starts, which ignores started_on: a guess it granted elsewhere would be cut
        # and the cut run's report end the call's attempt there)
        if self._next is None or now - self._granted_at > self.fresh_s \
                or admit.prompt_tokens > self.max_prompt_tokens or planner_waiting \
                or admit.resend or admit.retry_of_attempt or admit.parent_call_ids \
                or admit.served_from_cache:
            return None
        placed = self._programs.get(admit.program_id)
        if placed is not None:
            return planner_pb2.Grant(call_id=admit.call_id, worker_id=placed[0],
                                     worker_address=placed[1], attempt=FIRST_ATTEMPT,
                                     priority=EARLY_PRIORITY)
        if not (admit.HasField("register_program") or admit.end_program_after):
            return None  # (a program another gateway placed: its worker is not known here)
        guess = planner_pb2.Grant()
        guess.CopyFrom(self._next)
        guess.call_id = admit.call_id
        return guess

    def settled(self, guess: planner_pb2.Grant, grant: planner_pb2.Grant | None) -> bool:
        """Whether the early run by `guess` is the call's attempt under `grant` (None: the
        call was not granted); counted."""
        if grant is not None and (grant.worker_id, grant.attempt) == (guess.worker_id,
                                                                      guess.attempt):
            self.confirmed += 1
            return True
        self.missed += 1
        return False
